//! `counters`: 0.3.0's (with `take`) and 0.1.0's, one implementation
//! behind both; only the error types differ.

use crate::bindings::counters::{self as v3, Bucket as BucketArg, Taken as TakenAnswer};
use crate::bindings::counters_v0_1 as v1;
use crate::counters::gcra::{self, Bucket};
use crate::state::CallState;

const MAX_KEY_BYTES: usize = 200;

/// Why a counter call was refused, before it is put in a version's words.
enum Refused {
    Unavailable(String),
    InvalidKey(String),
    InvalidBucket(String),
}

impl From<Refused> for v3::CounterError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Unavailable(m) => Self::Unavailable(m),
            Refused::InvalidKey(m) => Self::InvalidKey(m),
            Refused::InvalidBucket(m) => Self::InvalidBucket(m),
        }
    }
}

impl From<Refused> for v1::CounterError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Unavailable(m) => Self::Unavailable(m),
            // 0.1.0 has no buckets; the arm only completes the match.
            Refused::InvalidKey(m) | Refused::InvalidBucket(m) => Self::InvalidKey(m),
        }
    }
}

impl CallState {
    /// The plugin's own namespace: plugins never share counters.
    fn counter_key(&self, key: &str) -> Result<String, Refused> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(Refused::InvalidKey(format!(
                "counter keys must be 1 to {MAX_KEY_BYTES} bytes"
            )));
        }
        Ok([self.plugin.name.as_str(), ":", key].concat())
    }

    /// The guest's error for a store that cannot answer, noted for the host.
    fn unavailable(&mut self, e: crate::counters::CounterError) -> Refused {
        self.counters_unavailable = true;
        Refused::Unavailable(e.0)
    }

    async fn count(
        &mut self,
        key: String,
        delta: i64,
        window_ms: u64,
    ) -> Result<(i64, u64), Refused> {
        let key = self.counter_key(&key)?;
        let counted = self
            .plugin
            .services
            .counters
            .increment(&key, delta, window_ms)
            .await;
        counted.map_err(|e| self.unavailable(e))
    }

    async fn read(&mut self, key: String) -> Result<Option<i64>, Refused> {
        let key = self.counter_key(&key)?;
        let value = self.plugin.services.counters.get(&key).await;
        value.map_err(|e| self.unavailable(e))
    }

    async fn swap(
        &mut self,
        key: String,
        expected: Option<i64>,
        new: i64,
        ttl_ms: u64,
    ) -> Result<bool, Refused> {
        let key = self.counter_key(&key)?;
        let swapped = self
            .plugin
            .services
            .counters
            .compare_and_swap(&key, expected, new, ttl_ms)
            .await;
        swapped.map_err(|e| self.unavailable(e))
    }

    /// Checks every bucket before any is charged, so a bad one in the list
    /// never leaves the ones before it taken.
    async fn take_tokens(&mut self, buckets: Vec<BucketArg>) -> Result<Vec<TakenAnswer>, Refused> {
        if buckets.is_empty() || buckets.len() > gcra::MAX_BUCKETS {
            return Err(Refused::InvalidBucket(format!(
                "a take names 1 to {} buckets (got {})",
                gcra::MAX_BUCKETS,
                buckets.len()
            )));
        }
        let mut checked = Vec::with_capacity(buckets.len());
        for b in buckets {
            gcra::check(b.interval_us, b.burst).map_err(Refused::InvalidBucket)?;
            checked.push(Bucket {
                key: self.counter_key(&b.key)?,
                interval_us: i64::try_from(b.interval_us).unwrap_or(i64::MAX),
                burst: b.burst,
            });
        }
        let now_us = i64::try_from(self.plugin.services.clock.now_ms())
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        let taken = self.plugin.services.counters.take(&checked, now_us).await;
        let taken = taken.map_err(|e| self.unavailable(e))?;
        Ok(taken
            .into_iter()
            .map(|t| TakenAnswer {
                allowed: t.allowed,
                remaining: t.remaining,
                reset_ms: t.reset_ms,
                retry_after_ms: t.retry_after_ms,
            })
            .collect())
    }
}

/// 0.1.0's three functions, the same in both versions but for their
/// types: `$v` is the version's bindings module.
macro_rules! counters_of_0_1 {
    ($v:ident) => {
        #[tracing::instrument(
            name = "host_import",
            level = "debug",
            skip_all,
            fields(import = "counters.increment")
        )]
        async fn increment(
            &mut self,
            key: String,
            delta: i64,
            window_ms: u64,
        ) -> Result<$v::Window, $v::CounterError> {
            let (value, reset_ms) = self.count(key, delta, window_ms).await?;
            Ok($v::Window { value, reset_ms })
        }

        #[tracing::instrument(
            name = "host_import",
            level = "debug",
            skip_all,
            fields(import = "counters.get")
        )]
        async fn get(&mut self, key: String) -> Result<Option<i64>, $v::CounterError> {
            Ok(self.read(key).await?)
        }

        #[tracing::instrument(
            name = "host_import",
            level = "debug",
            skip_all,
            fields(import = "counters.compare_and_swap")
        )]
        async fn compare_and_swap(
            &mut self,
            key: String,
            expected: Option<i64>,
            new: i64,
            ttl_ms: u64,
        ) -> Result<bool, $v::CounterError> {
            Ok(self.swap(key, expected, new, ttl_ms).await?)
        }
    };
}

impl v3::Host for CallState {
    #[tracing::instrument(
        name = "host_import",
        level = "debug",
        skip_all,
        fields(import = "counters.take")
    )]
    async fn take(
        &mut self,
        buckets: Vec<BucketArg>,
    ) -> Result<Vec<TakenAnswer>, v3::CounterError> {
        Ok(self.take_tokens(buckets).await?)
    }

    counters_of_0_1!(v3);
}

impl v1::Host for CallState {
    counters_of_0_1!(v1);
}
