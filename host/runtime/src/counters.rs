//! The counter store behind the `counters` import: memory for one host, the
//! harness and benchmarks; any shared [`CounterStore`] (the gateway's is
//! Redis) so limits hold across host replicas.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

/// Why a counter operation failed.
#[derive(Debug, thiserror::Error)]
#[error("counter store unavailable: {0}")]
pub struct CounterError(pub String);

/// Where counters live.
pub enum Counters {
    Memory(MemoryCounters),
    /// A store shared by every replica of the host.
    Shared(Arc<dyn CounterStore>),
}

/// A counter store outside the process, shared by host replicas. Every
/// operation is atomic in the store.
pub trait CounterStore: Send + Sync {
    /// Adds `delta` to `key` in the fixed window of `window_ms` that holds
    /// now; answers the new value and the ms until the window ends.
    fn increment<'a>(
        &'a self,
        key: &'a str,
        delta: i64,
        window_ms: u64,
    ) -> BoxFuture<'a, Result<(i64, u64), CounterError>>;

    /// The value of `key`, if it is set and has not expired.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<i64>, CounterError>>;

    /// Stores `new` for `ttl_ms` only if the current value is `expected`.
    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<i64>,
        new: i64,
        ttl_ms: u64,
    ) -> BoxFuture<'a, Result<bool, CounterError>>;

    /// Takes a token from each bucket in order at `now_us`, as one atomic
    /// step in the store, stopping at the first bucket without one
    /// ([`gcra::step`] is the arithmetic the store must do).
    fn take<'a>(
        &'a self,
        buckets: &'a [Bucket],
        now_us: i64,
    ) -> BoxFuture<'a, Result<Vec<Taken>, CounterError>>;
}

pub use gcra::{Bucket, Taken};

/// The generic cell rate algorithm (GCRA): a token bucket kept as one
/// number, the theoretical arrival time (TAT) of the next request in
/// microseconds. The bucket is full when the TAT is not in the future; each
/// request pushes it one interval further; a request is allowed while the
/// TAT stays within `burst` intervals of now. Stores share the stored value
/// with `compare-and-swap` (a TAT with a TTL), so a policy that moves from
/// its own get/swap loop to `take` keeps its buckets.
pub mod gcra {
    /// Longest interval between two tokens: one an hour.
    pub const MAX_INTERVAL_US: u64 = 3_600_000_000;
    /// Most tokens a bucket holds.
    pub const MAX_BURST: u32 = 1_000_000;
    /// Most buckets one `take` names.
    pub const MAX_BUCKETS: usize = 8;
    /// How long a full bucket's key outlives the moment it became full, so
    /// clocks a little apart still find it.
    pub const TTL_SLACK_MS: u64 = 1_000;

    /// One bucket to take a token from; keys are already the plugin's own.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Bucket {
        pub key: String,
        /// Microseconds between two tokens, within 1..=[`MAX_INTERVAL_US`].
        pub interval_us: i64,
        /// Within 1..=[`MAX_BURST`].
        pub burst: u32,
    }

    /// One bucket's answer.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Taken {
        pub allowed: bool,
        pub remaining: u32,
        pub reset_ms: u64,
        pub retry_after_ms: Option<u64>,
    }

    /// Why a bucket's shape cannot be used.
    pub fn check(interval_us: u64, burst: u32) -> Result<(), String> {
        if !(1..=MAX_INTERVAL_US).contains(&interval_us) {
            return Err(format!(
                "interval-us must be 1 to {MAX_INTERVAL_US} (got {interval_us})"
            ));
        }
        if !(1..=MAX_BURST).contains(&burst) {
            return Err(format!("burst must be 1 to {MAX_BURST} (got {burst})"));
        }
        Ok(())
    }

    /// Applies one request at `now_us` to a bucket whose stored TAT is
    /// `tat`: the answer, and the TAT to store with its TTL in ms when the
    /// request is allowed (a refused one changes nothing). The Redis store
    /// runs the same arithmetic in Lua; a test holds the two together.
    pub fn step(bucket: &Bucket, now_us: i64, tat: Option<i64>) -> (Taken, Option<(i64, u64)>) {
        let interval = bucket.interval_us;
        let tat = tat.map_or(now_us, |t| t.max(now_us));
        let next = tat.saturating_add(interval);
        let horizon = now_us.saturating_add(interval.saturating_mul(i64::from(bucket.burst)));
        if next <= horizon {
            let reset_ms = micros_to_ms(next - now_us);
            let taken = Taken {
                allowed: true,
                remaining: u32::try_from((horizon - next) / interval).unwrap_or(u32::MAX),
                reset_ms,
                retry_after_ms: None,
            };
            (taken, Some((next, reset_ms + TTL_SLACK_MS)))
        } else {
            let taken = Taken {
                allowed: false,
                remaining: 0,
                reset_ms: micros_to_ms(tat - now_us),
                retry_after_ms: Some(micros_to_ms(next - horizon).max(1)),
            };
            (taken, None)
        }
    }

    /// Rounds up, so a client told to wait never comes back too early.
    fn micros_to_ms(us: i64) -> u64 {
        u64::try_from(us.max(0)).unwrap_or(0).div_ceil(1000)
    }
}

impl Counters {
    /// In-process counters (one host only).
    pub fn memory() -> Self {
        Counters::Memory(MemoryCounters::default())
    }

    /// In-process counters whose windows follow `clock`, the clock the
    /// plugins see: the harness moves it to show that a window ends.
    pub fn memory_on(clock: crate::services::Clock) -> Self {
        Counters::Memory(MemoryCounters {
            clock,
            ..MemoryCounters::default()
        })
    }

    /// Adds `delta` to `key` in the fixed window of `window_ms` that holds
    /// now; returns the new value and the ms until the window ends.
    pub async fn increment(
        &self,
        key: &str,
        delta: i64,
        window_ms: u64,
    ) -> Result<(i64, u64), CounterError> {
        match self {
            Counters::Memory(m) => Ok(m.increment(key, delta, window_ms)),
            Counters::Shared(r) => r.increment(key, delta, window_ms).await,
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<i64>, CounterError> {
        match self {
            Counters::Memory(m) => Ok(m.get(key)),
            Counters::Shared(r) => r.get(key).await,
        }
    }

    /// Stores `new` for `ttl_ms` only if the current value is `expected`.
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<i64>,
        new: i64,
        ttl_ms: u64,
    ) -> Result<bool, CounterError> {
        match self {
            Counters::Memory(m) => Ok(m.compare_and_swap(key, expected, new, ttl_ms)),
            Counters::Shared(r) => r.compare_and_swap(key, expected, new, ttl_ms).await,
        }
    }

    /// Takes a token from each bucket in order at `now_us`, atomically,
    /// stopping at the first bucket without one.
    pub async fn take(&self, buckets: &[Bucket], now_us: i64) -> Result<Vec<Taken>, CounterError> {
        match self {
            Counters::Memory(m) => Ok(m.take(buckets, now_us)),
            Counters::Shared(r) => r.take(buckets, now_us).await,
        }
    }
}

/// Values by key, each until its own deadline, behind a mutex. Expired
/// entries are never answered, and are swept once the map holds `sweep_at`
/// keys. Counter stores use it for values and for what they last saw.
pub struct Expiring<V> {
    entries: Mutex<Entries<V>>,
    sweep_at: usize,
}

type Entries<V> = HashMap<String, (V, Instant)>;

impl<V: Copy> Expiring<V> {
    pub fn new(sweep_at: usize) -> Self {
        Self {
            entries: Mutex::default(),
            sweep_at,
        }
    }

    /// Runs `f` on the entries under the lock, with the time it took it.
    fn with<R>(&self, f: impl FnOnce(&mut Entries<V>, Instant) -> R) -> R {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if entries.len() >= self.sweep_at {
            entries.retain(|_, (_, until)| *until > now);
        }
        f(&mut entries, now)
    }

    /// The value of `key` in `entries`, unless it expired by `now`.
    fn live(entries: &Entries<V>, key: &str, now: Instant) -> Option<V> {
        entries
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(value, _)| *value)
    }

    pub fn get(&self, key: &str) -> Option<V> {
        self.with(|entries, now| Self::live(entries, key, now))
    }

    pub fn insert(&self, key: &str, value: V, for_at_most: Duration) {
        self.with(|entries, now| entries.insert(key.to_owned(), (value, now + for_at_most)));
    }
}

/// Counters in memory; expired entries are dropped on access and swept
/// when the map grows.
pub struct MemoryCounters {
    map: Expiring<i64>,
    /// What windows are cut from.
    clock: crate::services::Clock,
}

impl Default for MemoryCounters {
    fn default() -> Self {
        Self {
            map: Expiring::new(100_000),
            clock: crate::services::Clock::System,
        }
    }
}

impl MemoryCounters {
    fn increment(&self, key: &str, delta: i64, window_ms: u64) -> (i64, u64) {
        let window_ms = window_ms.max(1);
        let wall_ms = self.clock.now_ms();
        let reset_ms = window_ms - wall_ms % window_ms;
        // The window's number is in the key, so a new window starts at zero
        // whatever the entry's own deadline; that deadline (real time) only
        // frees memory, and under a clock that stands still it must outlast
        // the window the clock is in.
        let slot = format!("{key}\u{0}{}", wall_ms / window_ms);
        let keep = Duration::from_millis(reset_ms.saturating_add(window_ms));
        self.map.with(|map, now| {
            let value = Expiring::live(map, &slot, now)
                .unwrap_or(0)
                .saturating_add(delta);
            map.insert(slot, (value, now + keep));
            (value, reset_ms)
        })
    }

    fn get(&self, key: &str) -> Option<i64> {
        self.map.get(key)
    }

    fn compare_and_swap(&self, key: &str, expected: Option<i64>, new: i64, ttl_ms: u64) -> bool {
        self.map.with(|map, now| {
            if Expiring::live(map, key, now) != expected {
                return false;
            }
            map.insert(
                key.to_owned(),
                (new, now + Duration::from_millis(ttl_ms.max(1))),
            );
            true
        })
    }

    fn take(&self, buckets: &[Bucket], now_us: i64) -> Vec<Taken> {
        self.map.with(|map, now| {
            let mut answers = Vec::with_capacity(buckets.len());
            for bucket in buckets {
                let tat = Expiring::live(map, &bucket.key, now);
                let (taken, store) = gcra::step(bucket, now_us, tat);
                answers.push(taken);
                let Some((tat, ttl_ms)) = store else { break };
                let until = now + Duration::from_millis(ttl_ms);
                map.insert(bucket.key.clone(), (tat, until));
            }
            answers
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_cas_only_swaps_the_expected_value() {
        let c = Counters::memory();
        assert!(c.compare_and_swap("k", None, 5, 10_000).await.unwrap());
        assert!(!c.compare_and_swap("k", None, 6, 10_000).await.unwrap());
        assert!(!c.compare_and_swap("k", Some(4), 6, 10_000).await.unwrap());
        assert!(c.compare_and_swap("k", Some(5), 6, 10_000).await.unwrap());
        assert_eq!(c.get("k").await.unwrap(), Some(6));
    }

    #[tokio::test]
    async fn memory_values_expire() {
        let c = Counters::memory();
        assert!(c.compare_and_swap("k", None, 1, 1).await.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(c.get("k").await.unwrap(), None);
    }

    #[tokio::test]
    async fn memory_windows_follow_the_clock_they_are_given() {
        let clock = crate::services::Clock::fixed(1_000_000);
        let c = Counters::memory_on(clock.clone());
        assert_eq!(c.increment("w", 1, 1000).await.unwrap(), (1, 1000));
        clock.set_ms(1_000_400);
        assert_eq!(c.increment("w", 1, 1000).await.unwrap(), (2, 600));
        // The window ends when the clock says so, however little real time passed.
        clock.set_ms(1_001_000);
        assert_eq!(c.increment("w", 1, 1000).await.unwrap(), (1, 1000));
    }

    #[tokio::test]
    async fn memory_increment_counts_within_a_window() {
        let c = Counters::memory();
        let (a, reset) = c.increment("w", 1, 60_000).await.unwrap();
        let (b, _) = c.increment("w", 2, 60_000).await.unwrap();
        // The window may roll over between the two calls; either way b counts a's window or starts anew.
        assert!(b == a + 2 || b == 2, "a={a} b={b}");
        assert!(reset <= 60_000);
    }

    const NOW: i64 = 1_700_000_000_000_000;

    fn bucket(key: &str, rate: i64, burst: u32) -> Bucket {
        Bucket {
            key: key.into(),
            interval_us: 1_000_000 / rate,
            burst,
        }
    }

    /// `count` single-bucket takes at `now`.
    fn takes(c: &MemoryCounters, b: &Bucket, now: i64, count: usize) -> Vec<Taken> {
        (0..count)
            .map(|_| c.take(std::slice::from_ref(b), now)[0])
            .collect()
    }

    #[test]
    fn a_full_bucket_gives_exactly_its_burst_counting_down() {
        let c = MemoryCounters::default();
        let b = bucket("ip", 20, 40);
        let answers = takes(&c, &b, NOW, 41);
        assert!(answers[..40].iter().all(|t| t.allowed));
        let remaining: Vec<u32> = answers.iter().map(|t| t.remaining).collect();
        assert_eq!(remaining, (0..40).rev().chain([0]).collect::<Vec<_>>());
        assert_eq!((answers[0].reset_ms, answers[39].reset_ms), (50, 2_000));
        let refused = answers[40];
        assert!(!refused.allowed);
        assert_eq!(
            (refused.reset_ms, refused.retry_after_ms),
            (2_000, Some(50))
        );
    }

    #[test]
    fn then_one_token_per_interval_and_full_again_when_idle() {
        let c = MemoryCounters::default();
        let b = bucket("ip", 20, 40);
        takes(&c, &b, NOW, 40);
        assert!(!takes(&c, &b, NOW + 49_999, 1)[0].allowed);
        let later = takes(&c, &b, NOW + 50_000, 2);
        assert!(later[0].allowed && !later[1].allowed);
        assert_eq!((later[0].remaining, later[1].retry_after_ms), (0, Some(50)));
        let idle = takes(&c, &b, NOW + 2_050_000, 41);
        assert_eq!(idle.iter().filter(|t| t.allowed).count(), 40);
    }

    #[test]
    fn retry_after_rounds_up() {
        let c = MemoryCounters::default();
        let b = Bucket {
            key: "slow".into(),
            interval_us: 333_333,
            burst: 1,
        };
        takes(&c, &b, NOW, 1);
        assert_eq!(takes(&c, &b, NOW + 1, 1)[0].retry_after_ms, Some(334));
    }

    #[test]
    fn a_take_stops_at_the_first_refusal_and_charges_nothing_after_it() {
        let c = MemoryCounters::default();
        let ip = bucket("ip", 1, 1);
        let key = bucket("key", 1, 5);
        let both = [ip.clone(), key.clone()];
        let first = c.take(&both, NOW);
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|t| t.allowed));
        assert_eq!(first[1].remaining, 4);
        let refused = c.take(&both, NOW);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(!refused[0].allowed);
        // The key bucket still has its four tokens.
        assert_eq!(c.take(std::slice::from_ref(&key), NOW)[0].remaining, 3);
    }

    #[test]
    fn a_take_stores_what_compare_and_swap_reads() {
        let c = MemoryCounters::default();
        let b = bucket("ip", 20, 40);
        takes(&c, &b, NOW, 1);
        // The TAT, one interval ahead: a 0.1.0 policy's get/swap loop on the
        // same key carries on from it.
        assert_eq!(c.get("ip"), Some(NOW + 50_000));
    }

    #[test]
    fn shapes_out_of_range_are_named() {
        assert!(gcra::check(1, 1).is_ok());
        assert!(gcra::check(gcra::MAX_INTERVAL_US, gcra::MAX_BURST).is_ok());
        assert!(gcra::check(0, 1).unwrap_err().contains("interval-us"));
        assert!(gcra::check(gcra::MAX_INTERVAL_US + 1, 1).is_err());
        assert!(gcra::check(1, 0).unwrap_err().contains("burst"));
        assert!(gcra::check(1, gcra::MAX_BURST + 1).is_err());
    }
}
