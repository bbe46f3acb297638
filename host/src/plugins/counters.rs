//! The counter store behind the `counters` import: Redis in production, so
//! limits hold across host replicas; memory for tests and benchmarks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

/// Why a counter operation failed.
#[derive(Debug, thiserror::Error)]
#[error("counter store unavailable: {0}")]
pub struct CounterError(pub String);

/// Where counters live.
pub enum Counters {
    Memory(MemoryCounters),
    Redis(RedisCounters),
}

impl Counters {
    /// In-process counters (one host only).
    pub fn memory() -> Self {
        Counters::Memory(MemoryCounters::default())
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
            Counters::Redis(r) => r.increment(key, delta, window_ms).await,
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<i64>, CounterError> {
        match self {
            Counters::Memory(m) => Ok(m.get(key)),
            Counters::Redis(r) => r.get(key).await,
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
            Counters::Redis(r) => r.compare_and_swap(key, expected, new, ttl_ms).await,
        }
    }
}

/// Values by key, each until its own deadline, behind a mutex. Expired
/// entries are never answered, and are swept once the map holds `sweep_at`
/// keys.
struct Expiring<V> {
    entries: Mutex<Entries<V>>,
    sweep_at: usize,
}

type Entries<V> = HashMap<String, (V, Instant)>;

impl<V: Copy> Expiring<V> {
    fn new(sweep_at: usize) -> Self {
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

    fn get(&self, key: &str) -> Option<V> {
        self.with(|entries, now| Self::live(entries, key, now))
    }

    fn insert(&self, key: &str, value: V, for_at_most: Duration) {
        self.with(|entries, now| entries.insert(key.to_owned(), (value, now + for_at_most)));
    }
}

/// Counters in memory; expired entries are dropped on access and swept
/// when the map grows.
pub struct MemoryCounters {
    map: Expiring<i64>,
}

impl Default for MemoryCounters {
    fn default() -> Self {
        Self {
            map: Expiring::new(100_000),
        }
    }
}

impl MemoryCounters {
    fn increment(&self, key: &str, delta: i64, window_ms: u64) -> (i64, u64) {
        let window_ms = window_ms.max(1);
        let wall_ms = super::services::Clock::System.now_ms();
        let reset_ms = window_ms - wall_ms % window_ms;
        let slot = format!("{key}\u{0}{}", wall_ms / window_ms);
        self.map.with(|map, now| {
            let value = Expiring::live(map, &slot, now)
                .unwrap_or(0)
                .saturating_add(delta);
            map.insert(slot, (value, now + Duration::from_millis(reset_ms)));
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

/// Counters in Redis, every operation one atomic command or script.
///
/// `get` answers from what this host last read or stored for the key, when
/// that is younger than [`SEEN_FOR`]: a plugin's read-modify-swap loop then
/// costs one round trip, the swap, instead of two. The swap is always
/// checked in Redis; one that fails hands back the current value, so a
/// stale read (another replica wrote meanwhile) costs a retry, never a
/// wrong result.
pub struct RedisCounters {
    conn: ConnectionManager,
    prefix: String,
    increment: redis::Script,
    cas: redis::Script,
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
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| CounterError(e.to_string()))?;
        Ok(Self {
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
        format!("{}{key}", self.prefix)
    }

    async fn increment(
        &self,
        key: &str,
        delta: i64,
        window_ms: u64,
    ) -> Result<(i64, u64), CounterError> {
        let window_ms = window_ms.max(1);
        let wall_ms = super::services::Clock::System.now_ms();
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

    async fn get(&self, key: &str) -> Result<Option<i64>, CounterError> {
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

    async fn compare_and_swap(
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
    async fn memory_increment_counts_within_a_window() {
        let c = Counters::memory();
        let (a, reset) = c.increment("w", 1, 60_000).await.unwrap();
        let (b, _) = c.increment("w", 2, 60_000).await.unwrap();
        // The window may roll over between the two calls; either way b counts a's window or starts anew.
        assert!(b == a + 2 || b == 2, "a={a} b={b}");
        assert!(reset <= 60_000);
    }
}
