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
}
