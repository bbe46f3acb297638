//! A circuit breaker per provider alias, in Redis (`cb:<alias>`) so every
//! replica sees the same state. Closed: calls pass, consecutive failures are
//! counted. Open (threshold reached): calls are refused until the cooldown
//! ends. Half-open: one probe passes; its success closes the circuit, its
//! failure opens it again.
//!
//! Every call asks its breaker first; the asks of concurrent calls share
//! one script call ([`crate::redis_batch`]), which runs them in the order
//! they came, so of the calls that find a circuit half-open exactly one is
//! the probe, batched or not.

use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::config::{CircuitSettings, RedisDownPolicy};
use crate::plugins::Clock;
use crate::redis_batch::{BatchStats, Batched, Batcher};

/// Most acquires in one script call.
const MAX_ACQUIRES_PER_CALL: usize = 64;

/// The acquire step for each ask of a batch, in order. ARGV holds, per ask,
/// its instant (ms) and how long a probe it is granted holds the half-open
/// circuit; KEYS holds each ask's breaker. A breaker's fields are read once
/// per call (a table keeps them, and a granted probe updates it), since the
/// asks of one call mostly name the same few aliases. The answer is flat,
/// two numbers per ask: `0, failures` closed, `1, 0` the probe, `2, ms`
/// open for that much longer.
const ACQUIRE: &str = r"
local seen, out = {}, {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local now = tonumber(ARGV[2 * i - 1])
  local s = seen[key]
  if not s then
    local v = redis.call('HMGET', key, 'open_until', 'failures', 'probe_until')
    s = {tonumber(v[1] or '0'), tonumber(v[2] or '0'), tonumber(v[3] or '0')}
    seen[key] = s
  end
  if s[1] == 0 then
    out[2 * i - 1], out[2 * i] = 0, s[2]
  elseif now < s[1] then
    out[2 * i - 1], out[2 * i] = 2, s[1] - now
  elseif now < s[3] then
    out[2 * i - 1], out[2 * i] = 2, s[3] - now
  else
    s[3] = now + tonumber(ARGV[2 * i])
    redis.call('HSET', key, 'probe_until', s[3])
    out[2 * i - 1], out[2 * i] = 1, 0
  end
end
return out
";

/// One call's ask of its breaker.
struct Acquire {
    key: String,
    now_ms: u64,
    probe_ms: u64,
}

/// The script's answer for one ask, as it said it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Acquired {
    Closed { failures: u64 },
    Probe,
    Open { ms: u64 },
}

impl Batched for Acquire {
    type Answer = Acquired;

    fn encode(&self, call: &mut redis::ScriptInvocation<'_>) {
        call.key(&self.key).arg(self.now_ms).arg(self.probe_ms);
    }

    fn decode(&self, rest: &mut &[i64]) -> Option<Acquired> {
        let (pair, tail) = rest.split_at_checked(2)?;
        *rest = tail;
        let value = u64::try_from(pair[1]).ok()?;
        match pair[0] {
            0 => Some(Acquired::Closed { failures: value }),
            1 => Some(Acquired::Probe),
            2 => Some(Acquired::Open { ms: value }),
            _ => None,
        }
    }
}

/// The breaker's answer before a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitState {
    /// Go ahead.
    Closed,
    /// Go ahead: this call is the half-open probe.
    Probe,
    /// Refuse; retry after this long.
    Open { retry_after: Duration },
    /// Redis cannot say and the policy is to fail closed: refuse, the
    /// state store (not the provider) is unavailable.
    Unknown,
}

/// What an alias's breaker says, as operators see it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CircuitView {
    /// `closed`, `open`, `half-open` (the cooldown is over: the next call
    /// is the probe) or `unknown` (Redis cannot say).
    pub state: &'static str,
    /// Consecutive failures counted since the last success.
    pub failures: u64,
    /// While open: how long until the probe.
    pub retry_in_ms: Option<u64>,
}

/// The breakers of all aliases.
pub struct CircuitBreaker {
    conn: ConnectionManager,
    prefix: String,
    settings: CircuitSettings,
    acquires: Batcher<Acquire>,
    failure: redis::Script,
    /// Aliases whose breaker this host last saw closed with no failure
    /// counted (at its `acquire`, or after its own reset): a success there
    /// has nothing to reset, so it costs no round trip. A failure on
    /// another replica since is reset at this host's next success after
    /// its next `acquire` sees it, one call later than before.
    clean: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Past this many aliases the clean set starts again (aliases are few;
/// the bound only keeps it from growing).
const CLEAN_CAP: usize = 1024;

impl CircuitBreaker {
    /// The breakers under `prefix`; their acquires' script calls are
    /// counted in `acquires` (the sending task starts on the current Tokio
    /// runtime).
    pub fn new(
        conn: ConnectionManager,
        prefix: &str,
        settings: CircuitSettings,
        acquires: BatchStats,
    ) -> Self {
        Self {
            acquires: Batcher::start(conn.clone(), ACQUIRE, MAX_ACQUIRES_PER_CALL, acquires),
            conn,
            prefix: format!("{prefix}cb:"),
            settings,
            // Counts a failure; opens the circuit at the threshold or when a probe failed.
            failure: redis::Script::new(
                "local n = redis.call('HINCRBY', KEYS[1], 'failures', 1) \
                 local probing = redis.call('HEXISTS', KEYS[1], 'probe_until') == 1 \
                 if n >= tonumber(ARGV[2]) or probing then \
                   redis.call('HSET', KEYS[1], 'open_until', tonumber(ARGV[1]) + tonumber(ARGV[3])) \
                   redis.call('HDEL', KEYS[1], 'probe_until') \
                 end \
                 redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 10 + 60000) \
                 return n",
            ),
            clean: Default::default(),
        }
    }

    fn mark(&self, alias: &str, clean: bool) {
        let mut set = self.clean.lock().unwrap_or_else(|e| e.into_inner());
        if !clean {
            set.remove(alias);
        } else if !set.contains(alias) {
            if set.len() >= CLEAN_CAP {
                set.clear();
            }
            set.insert(alias.to_owned());
        }
    }

    fn is_clean(&self, alias: &str) -> bool {
        let set = self.clean.lock().unwrap_or_else(|e| e.into_inner());
        set.contains(alias)
    }

    fn key(&self, alias: &str) -> String {
        format!("{}{alias}", self.prefix)
    }

    /// May a call to `alias` go ahead? If Redis cannot answer, the
    /// `circuit-on-redis-down` setting decides.
    pub async fn acquire(&self, alias: &str) -> CircuitState {
        let cooldown_ms = self.settings.cooldown.as_millis() as u64;
        let result = self
            .acquires
            .ask(Acquire {
                key: self.key(alias),
                now_ms: Clock::System.now_ms(),
                probe_ms: cooldown_ms.max(1000),
            })
            .await;
        // Only a closed breaker with no failure counted is clean; a probe
        // or an open one must be reset by the next success.
        self.mark(alias, result == Ok(Acquired::Closed { failures: 0 }));
        match result {
            Ok(Acquired::Closed { .. }) => CircuitState::Closed,
            Ok(Acquired::Probe) => CircuitState::Probe,
            Ok(Acquired::Open { ms }) => CircuitState::Open {
                retry_after: Duration::from_millis(ms),
            },
            Err(e) => {
                let policy = self.settings.on_redis_down;
                tracing::warn!(%alias, error = %e, ?policy, "circuit breaker state unavailable");
                match policy {
                    RedisDownPolicy::Open => CircuitState::Closed,
                    RedisDownPolicy::Closed => CircuitState::Unknown,
                }
            }
        }
    }

    /// The breaker of `alias` as it stands, read without changing it.
    pub async fn inspect(&self, alias: &str) -> CircuitView {
        let read: Result<(Option<u64>, Option<u64>), _> = redis::cmd("HMGET")
            .arg(self.key(alias))
            .arg("failures")
            .arg("open_until")
            .query_async(&mut self.conn.clone())
            .await;
        let Ok((failures, open_until)) = read else {
            return CircuitView {
                state: "unknown",
                failures: 0,
                retry_in_ms: None,
            };
        };
        let (now, open_until) = (Clock::System.now_ms(), open_until.unwrap_or(0));
        let state = match open_until {
            0 => "closed",
            until if now < until => "open",
            _ => "half-open",
        };
        CircuitView {
            state,
            failures: failures.unwrap_or(0),
            retry_in_ms: (state == "open").then(|| open_until - now),
        }
    }

    /// A call succeeded: the circuit closes and the count starts again
    /// (nothing to do where this host saw no failure counted).
    pub async fn success(&self, alias: &str) {
        if self.is_clean(alias) {
            return;
        }
        let result: Result<(), _> = redis::cmd("DEL")
            .arg(self.key(alias))
            .query_async(&mut self.conn.clone())
            .await;
        match result {
            Ok(()) => self.mark(alias, true),
            Err(e) => tracing::warn!(%alias, error = %e, "could not reset circuit breaker"),
        }
    }

    /// A call failed in a way that says the provider is unwell.
    pub async fn failure(&self, alias: &str) {
        self.mark(alias, false);
        let result: Result<i64, _> = self
            .failure
            .key(self.key(alias))
            .arg(Clock::System.now_ms())
            .arg(self.settings.failure_threshold.max(1))
            .arg(self.settings.cooldown.as_millis() as u64)
            .invoke_async(&mut self.conn.clone())
            .await;
        match result {
            Ok(n) if n as u32 >= self.settings.failure_threshold => {
                tracing::warn!(%alias, failures = n, "circuit open");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(%alias, error = %e, "could not count provider failure"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask() -> Acquire {
        Acquire {
            key: "cb:a".to_owned(),
            now_ms: 0,
            probe_ms: 1000,
        }
    }

    #[test]
    fn each_ask_reads_its_own_pair_of_the_flat_answer() {
        let flat = [0, 2, 1, 0, 2, 750];
        let mut rest = &flat[..];
        let read: Vec<_> = (0..3).map(|_| ask().decode(&mut rest)).collect();
        assert_eq!(
            read,
            [
                Some(Acquired::Closed { failures: 2 }),
                Some(Acquired::Probe),
                Some(Acquired::Open { ms: 750 }),
            ]
        );
        assert!(rest.is_empty());
    }

    #[test]
    fn an_answer_of_the_wrong_shape_is_refused() {
        // An unknown state, a negative number, a lone number.
        for flat in [&[3, 0][..], &[2, -5][..], &[0][..], &[][..]] {
            assert_eq!(ask().decode(&mut &flat[..]), None, "{flat:?}");
        }
    }
}
