//! The Redis counter store behind the plugins' `counters` import, so rate
//! limits hold across host replicas.

use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;

use crate::plugins::{Bucket, Clock, CounterError, CounterStore, Expiring, Taken};

mod takes;

use takes::Takes;

use crate::redis_batch::BatchStats;

/// Counters in Redis, every operation one atomic command or script; the
/// `take`s of concurrent requests share one script call (`takes`).
///
/// `get` answers from what this host last read or stored for the key, when
/// that is younger than `SEEN_FOR`: a plugin's read-modify-swap loop then
/// costs one round trip, the swap, instead of two. The swap is always
/// checked in Redis; one that fails hands back the current value, so a
/// stale read (another replica wrote meanwhile) costs a retry, never a
/// wrong result.
pub struct RedisCounters {
    conn: ConnectionManager,
    prefix: String,
    increment: redis::Script,
    cas: redis::Script,
    takes: Takes,
    seen: Expiring<Option<i64>>,
}

/// How long a value read or stored by this host is answered from memory.
const SEEN_FOR: Duration = Duration::from_millis(250);

/// Past this many keys, expired entries are swept from the seen values.
const SEEN_SWEEP_AT: usize = 10_000;

impl RedisCounters {
    /// Connects to `url`; every key is stored under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, CounterError> {
        let client = redis::Client::open(url).map_err(|e| CounterError(e.to_string()))?;
        Self::connect_client(client, prefix, BatchStats::default()).await
    }

    /// Connects with `client` (a TLS one, say); every key is stored under
    /// `prefix`, and the script calls of `take` are counted in `takes`.
    pub async fn connect_client(
        client: redis::Client,
        prefix: &str,
        takes: BatchStats,
    ) -> Result<Self, CounterError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| CounterError(e.to_string()))?;
        Ok(Self {
            takes: Takes::start(conn.clone(), takes),
            conn,
            prefix: prefix.to_owned(),
            // INCRBY and its expiry in one step, so a crash between the two
            // can never leave a counter without an end.
            increment: redis::Script::new(
                "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) \
                 if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end \
                 return v",
            ),
            // Swaps and answers {1, new}, or answers {0, current} (current
            // absent when the key is), so a loser learns the value at once.
            cas: redis::Script::new(
                "local cur = redis.call('GET', KEYS[1]) \
                 if (ARGV[1] == '' and not cur) or cur == ARGV[1] then \
                   redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return {1, ARGV[2]} end \
                 return {0, cur}",
            ),
            seen: Expiring::new(SEEN_SWEEP_AT),
        })
    }

    fn recall(&self, key: &str) -> Option<Option<i64>> {
        self.seen.get(key)
    }

    fn remember(&self, key: &str, value: Option<i64>, for_at_most: Duration) {
        self.seen.insert(key, value, for_at_most.min(SEEN_FOR));
    }

    fn key(&self, key: &str) -> String {
        [self.prefix.as_str(), key].concat()
    }

    async fn increment_in_redis(
        &self,
        key: &str,
        delta: i64,
        window_ms: u64,
    ) -> Result<(i64, u64), CounterError> {
        let window_ms = window_ms.max(1);
        let wall_ms = Clock::System.now_ms();
        let reset_ms = window_ms - wall_ms % window_ms;
        let slot = format!("{}:{}", self.key(key), wall_ms / window_ms);
        let value: i64 = self
            .increment
            .key(slot)
            .arg(delta)
            .arg(reset_ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| CounterError(e.to_string()))?;
        Ok((value, reset_ms))
    }

    async fn get_in_redis(&self, key: &str) -> Result<Option<i64>, CounterError> {
        if let Some(value) = self.recall(key) {
            return Ok(value);
        }
        let value: Option<i64> = redis::cmd("GET")
            .arg(self.key(key))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| CounterError(e.to_string()))?;
        self.remember(key, value, SEEN_FOR);
        Ok(value)
    }

    async fn compare_and_swap_in_redis(
        &self,
        key: &str,
        expected: Option<i64>,
        new: i64,
        ttl_ms: u64,
    ) -> Result<bool, CounterError> {
        let expected = expected.map(|v| v.to_string()).unwrap_or_default();
        let answer: (i64, Option<i64>) = self
            .cas
            .key(self.key(key))
            .arg(expected)
            .arg(new)
            .arg(ttl_ms.max(1))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| CounterError(e.to_string()))?;
        match answer {
            (1, _) => {
                self.remember(key, Some(new), Duration::from_millis(ttl_ms));
                Ok(true)
            }
            (_, current) => {
                self.remember(key, current, SEEN_FOR);
                Ok(false)
            }
        }
    }
}

impl RedisCounters {
    async fn take_in_redis(
        &self,
        buckets: &[Bucket],
        now_us: i64,
    ) -> Result<Vec<Taken>, CounterError> {
        let buckets = buckets
            .iter()
            .map(|b| Bucket {
                key: self.key(&b.key),
                interval_us: b.interval_us,
                burst: b.burst,
            })
            .collect();
        self.takes.take(buckets, now_us).await
    }

    /// The script calls `take` has made and the takes they carried.
    pub fn take_stats(&self) -> &BatchStats {
        self.takes.stats()
    }
}

impl CounterStore for RedisCounters {
    fn increment<'a>(
        &'a self,
        key: &'a str,
        delta: i64,
        window_ms: u64,
    ) -> BoxFuture<'a, Result<(i64, u64), CounterError>> {
        self.increment_in_redis(key, delta, window_ms).boxed()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<i64>, CounterError>> {
        self.get_in_redis(key).boxed()
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<i64>,
        new: i64,
        ttl_ms: u64,
    ) -> BoxFuture<'a, Result<bool, CounterError>> {
        self.compare_and_swap_in_redis(key, expected, new, ttl_ms)
            .boxed()
    }

    fn take<'a>(
        &'a self,
        buckets: &'a [Bucket],
        now_us: i64,
    ) -> BoxFuture<'a, Result<Vec<Taken>, CounterError>> {
        self.take_in_redis(buckets, now_us).boxed()
    }
}
