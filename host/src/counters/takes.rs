//! `take` in Redis, with the takes of concurrent requests sent together.
//!
//! Every request's rate-limit policy takes its tokens in one `take`; under
//! load, many are waiting at once, and they share script calls
//! ([`crate::redis_batch`], up to [`MAX_TAKES_PER_CALL`] a call). Each take
//! stops at its own first refusal, and a later take of a batch sees what an
//! earlier one stored.

use redis::aio::ConnectionManager;

use crate::plugins::{Bucket, CounterError, Taken};
use crate::redis_batch::{BatchStats, Batched, Batcher};

/// Most takes in one script call: the batch's KEYS stay within a few
/// hundred (each take names at most `gcra::MAX_BUCKETS`).
const MAX_TAKES_PER_CALL: usize = 64;

/// The GCRA step of `plugins::gcra::step` for each take of a batch, in
/// order. ARGV holds, per take, its instant (µs), its number of buckets and
/// each bucket's interval and burst; KEYS holds every take's bucket keys in
/// the same order. For each bucket in order, the step takes a token when one
/// is left and stops that take at the first bucket without one.
///
/// The TATs are read once (one `MGET`) and kept in a table while the steps
/// run, so a key that several takes of the batch name (one client's
/// address, one API key) is read and stored once, not per take: each key
/// that gained a token is stored at the end with its last TAT and the TTL of
/// the step that set it, which is what the same steps one call each would
/// have left. The answer is flat: per take, the number of buckets answered,
/// then `allowed, remaining, reset_ms, retry_after_ms or -1` for each. Every
/// number stays below 2^53, so Lua's doubles hold it exactly. (All keys in
/// one script: one Redis, or one hash slot of a cluster.)
const TAKE: &str = r"
local tats, ttls, changed = {}, {}, {}
local stored = redis.call('MGET', unpack(KEYS))
for i = 1, #KEYS do
  if tats[KEYS[i]] == nil then tats[KEYS[i]] = tonumber(stored[i]) or false end
end
local out, o, k, a = {}, 0, 0, 0
local nargs = #ARGV
while a < nargs do
  local now = tonumber(ARGV[a + 1])
  local count = tonumber(ARGV[a + 2])
  local head = o + 1
  o = o + 1
  local answered = 0
  for j = 1, count do
    local interval = tonumber(ARGV[a + 2 * j + 1])
    local burst = tonumber(ARGV[a + 2 * j + 2])
    local key = KEYS[k + j]
    local tat = tats[key]
    if not tat or tat < now then tat = now end
    local nxt = tat + interval
    local horizon = now + interval * burst
    answered = j
    if nxt <= horizon then
      local reset = math.ceil((nxt - now) / 1000)
      if not ttls[key] then changed[#changed + 1] = key end
      tats[key] = nxt
      ttls[key] = reset + 1000
      out[o + 1] = 1
      out[o + 2] = math.floor((horizon - nxt) / interval)
      out[o + 3] = reset
      out[o + 4] = -1
      o = o + 4
    else
      out[o + 1] = 0
      out[o + 2] = 0
      out[o + 3] = math.ceil((tat - now) / 1000)
      out[o + 4] = math.max(1, math.ceil((nxt - horizon) / 1000))
      o = o + 4
      break
    end
  end
  out[head] = answered
  k = k + count
  a = a + 2 + 2 * count
end
for _, key in ipairs(changed) do
  redis.call('SET', key, string.format('%d', tats[key]), 'PX', ttls[key])
end
return out
";

/// One request's take: its buckets, their keys already under the store's
/// prefix, at its instant.
struct Take {
    buckets: Vec<Bucket>,
    now_us: i64,
}

impl Batched for Take {
    type Answer = Vec<Taken>;

    fn encode(&self, call: &mut redis::ScriptInvocation<'_>) {
        call.arg(self.now_us).arg(self.buckets.len());
        for bucket in &self.buckets {
            call.key(&bucket.key)
                .arg(bucket.interval_us)
                .arg(bucket.burst);
        }
    }

    fn decode(&self, rest: &mut &[i64]) -> Option<Vec<Taken>> {
        split_one(rest, self.buckets.len())
    }
}

/// The handle the store keeps: the batcher of its takes.
pub struct Takes(Batcher<Take>);

impl Takes {
    /// Starts the sending task on the current Tokio runtime (it ends when
    /// the handle is dropped); its calls and takes are counted in `stats`.
    pub fn start(conn: ConnectionManager, stats: BatchStats) -> Self {
        Self(Batcher::start(conn, TAKE, MAX_TAKES_PER_CALL, stats))
    }

    /// Takes `buckets` (keys already prefixed) at `now_us`, in the next
    /// batch.
    pub async fn take(
        &self,
        buckets: Vec<Bucket>,
        now_us: i64,
    ) -> Result<Vec<Taken>, CounterError> {
        self.0
            .ask(Take { buckets, now_us })
            .await
            .map_err(|e| CounterError(e.0))
    }

    /// The calls made and the takes they carried so far.
    pub fn stats(&self) -> &BatchStats {
        self.0.stats()
    }
}

/// One take's answers from the front of `rest`: its count, then four
/// numbers per bucket answered (at most `asked`).
fn split_one(rest: &mut &[i64], asked: usize) -> Option<Vec<Taken>> {
    let (&count, tail) = rest.split_first()?;
    let count = usize::try_from(count).ok().filter(|&c| c <= asked)?;
    let numbers = tail.get(..count * 4)?;
    *rest = &tail[count * 4..];
    Some(
        numbers
            .chunks_exact(4)
            .map(|n| Taken {
                allowed: n[0] == 1,
                remaining: u32::try_from(n[1]).unwrap_or(0),
                reset_ms: u64::try_from(n[2]).unwrap_or(0),
                retry_after_ms: u64::try_from(n[3]).ok(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_answer_is_split_take_by_take() {
        // Two takes: the first answered for both its buckets, the second
        // refused at its first.
        let flat = [2, 1, 5, 100, -1, 1, 9, 20, -1, 1, 0, 0, 300, 250];
        let mut rest = &flat[..];
        let first = split_one(&mut rest, 2).unwrap();
        assert_eq!(first.len(), 2);
        assert!(first[0].allowed && first[0].remaining == 5 && first[0].retry_after_ms.is_none());
        assert_eq!(first[1].remaining, 9);
        let second = split_one(&mut rest, 3).unwrap();
        assert_eq!(second.len(), 1);
        assert!(!second[0].allowed);
        assert_eq!(second[0].retry_after_ms, Some(250));
        assert!(rest.is_empty());
    }

    #[test]
    fn an_answer_of_the_wrong_shape_is_refused() {
        // More buckets than asked, a short answer, a negative count.
        assert!(split_one(&mut &[3, 1, 1, 1, -1][..], 2).is_none());
        assert!(split_one(&mut &[1, 1, 1][..], 1).is_none());
        assert!(split_one(&mut &[-1][..], 1).is_none());
        assert!(split_one(&mut &[][..], 1).is_none());
    }
}
