//! The generic cell rate algorithm (GCRA), a token bucket kept as a single
//! number: the theoretical arrival time (TAT) of the next request, in
//! microseconds. The bucket is full when the TAT is not in the future; each
//! request pushes it one emission interval further; a request is allowed
//! while the TAT stays within `burst` intervals of now.

/// Attempts at the get/compare-and-swap loop before giving up on a key that
/// other replicas keep changing under us.
pub const MAX_ATTEMPTS: usize = 4;

/// A bucket's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Microseconds between two tokens, i.e. one over the rate.
    pub interval_us: i64,
    /// Requests allowed at once from a full bucket.
    pub burst: u32,
}

impl Bucket {
    /// A bucket refilling at `rate` tokens per second, holding `burst`.
    /// Callers validate the inputs; the clamps only keep the math finite.
    pub fn new(rate: f64, burst: u32) -> Self {
        Self {
            interval_us: (1_000_000.0 / rate).round().max(1.0) as i64,
            burst: burst.max(1),
        }
    }

    fn capacity_us(self) -> i64 {
        self.interval_us.saturating_mul(i64::from(self.burst))
    }
}

/// The outcome of one request against one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The TAT to store when allowed; a denied request changes nothing.
    pub store: Option<i64>,
    /// Requests still allowed right now.
    pub remaining: u32,
    /// Milliseconds until the bucket is full again.
    pub reset_ms: u64,
    /// When denied: milliseconds until one request would be allowed.
    pub retry_after_ms: Option<u64>,
}

/// Applies one request at `now_us` to a bucket whose stored TAT is `tat`.
pub fn decide(bucket: Bucket, now_us: i64, tat: Option<i64>) -> Outcome {
    let tat = tat.map_or(now_us, |t| t.max(now_us));
    let next = tat.saturating_add(bucket.interval_us);
    let horizon = now_us.saturating_add(bucket.capacity_us());
    if next <= horizon {
        let remaining = (horizon - next) / bucket.interval_us;
        Outcome {
            allowed: true,
            store: Some(next),
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset_ms: micros_to_ms(next - now_us),
            retry_after_ms: None,
        }
    } else {
        Outcome {
            allowed: false,
            store: None,
            remaining: 0,
            reset_ms: micros_to_ms(tat - now_us),
            retry_after_ms: Some(micros_to_ms(next - horizon).max(1)),
        }
    }
}

/// Runs [`decide`] against a shared store through `get` and
/// `compare_and_swap(expected, new, ttl_ms)`, retrying when another replica
/// changed the value in between. The TTL lets an idle bucket's key expire
/// once it would be full anyway, with a second of slack for clock skew.
///
/// When the swap keeps losing (many requests on one hot key at once), the
/// answer is the decision on the latest value read: a request the bucket
/// had room for is let through rather than refused for losing a race. The
/// overshoot is bounded by the requests racing at that moment, and the
/// winners' updates still drain the bucket.
pub fn acquire<E>(
    bucket: Bucket,
    now_us: i64,
    mut get: impl FnMut() -> Result<Option<i64>, E>,
    mut compare_and_swap: impl FnMut(Option<i64>, i64, u64) -> Result<bool, E>,
) -> Result<Outcome, E> {
    let mut latest = None;
    for _ in 0..MAX_ATTEMPTS {
        let current = get()?;
        let outcome = decide(bucket, now_us, current);
        let Some(new) = outcome.store else {
            return Ok(outcome);
        };
        if compare_and_swap(current, new, outcome.reset_ms + 1000)? {
            return Ok(outcome);
        }
        latest = Some(outcome);
    }
    Ok(latest.expect("MAX_ATTEMPTS is at least 1"))
}

/// Rounds up, so a client told to wait never comes back too early.
fn micros_to_ms(us: i64) -> u64 {
    u64::try_from(us.max(0)).unwrap_or(0).div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000;

    /// Applies `count` requests at `now`, returning the outcomes and the TAT.
    fn burst(
        bucket: Bucket,
        now: i64,
        mut tat: Option<i64>,
        count: usize,
    ) -> (Vec<Outcome>, Option<i64>) {
        let mut outcomes = Vec::new();
        for _ in 0..count {
            let outcome = decide(bucket, now, tat);
            tat = outcome.store.or(tat);
            outcomes.push(outcome);
        }
        (outcomes, tat)
    }

    #[test]
    fn full_bucket_allows_exactly_the_burst() {
        let bucket = Bucket::new(20.0, 40);
        assert_eq!(bucket.interval_us, 50_000);
        let (outcomes, _) = burst(bucket, NOW, None, 41);
        assert!(outcomes[..40].iter().all(|o| o.allowed));
        assert!(!outcomes[40].allowed);
    }

    #[test]
    fn remaining_counts_down() {
        let (outcomes, _) = burst(Bucket::new(20.0, 40), NOW, None, 41);
        let remaining: Vec<u32> = outcomes.iter().map(|o| o.remaining).collect();
        let expected: Vec<u32> = (0..40).rev().chain([0]).collect();
        assert_eq!(remaining, expected);
        assert_eq!(outcomes[0].reset_ms, 50);
        assert_eq!(outcomes[39].reset_ms, 2_000);
    }

    #[test]
    fn then_one_per_interval() {
        let bucket = Bucket::new(20.0, 40);
        let (_, tat) = burst(bucket, NOW, None, 40);
        let denied = decide(bucket, NOW, tat);
        assert_eq!(denied.retry_after_ms, Some(50));
        assert_eq!(denied.reset_ms, 2_000);
        assert!(!decide(bucket, NOW + 49_999, tat).allowed);
        let (later, tat) = burst(bucket, NOW + 50_000, tat, 2);
        assert!(later[0].allowed && !later[1].allowed);
        assert_eq!(later[0].remaining, 0);
        assert_eq!(later[1].retry_after_ms, Some(50));
        assert!(decide(bucket, NOW + 100_000, tat).allowed);
    }

    #[test]
    fn refills_completely_when_idle() {
        let bucket = Bucket::new(20.0, 40);
        let (_, tat) = burst(bucket, NOW, None, 40);
        let (outcomes, _) = burst(bucket, NOW + 2_000_000, tat, 41);
        assert_eq!(outcomes.iter().filter(|o| o.allowed).count(), 40);
    }

    #[test]
    fn retry_after_rounds_up() {
        let bucket = Bucket::new(3.0, 1);
        assert_eq!(bucket.interval_us, 333_333);
        let (_, tat) = burst(bucket, NOW, None, 1);
        assert_eq!(decide(bucket, NOW + 1, tat).retry_after_ms, Some(334));
    }

    #[test]
    fn acquire_stores_with_ttl() {
        let bucket = Bucket::new(20.0, 40);
        let mut writes = Vec::new();
        let outcome = acquire::<()>(
            bucket,
            NOW,
            || Ok(None),
            |old, new, ttl| {
                writes.push((old, new, ttl));
                Ok(true)
            },
        );
        assert!(outcome.unwrap().allowed);
        assert_eq!(writes, vec![(None, NOW + 50_000, 1_050)]);
    }

    #[test]
    fn acquire_retries_until_a_swap_wins() {
        let bucket = Bucket::new(20.0, 40);
        let mut attempts = 0;
        let mut flaky = |_: Option<i64>, _: i64, _: u64| {
            attempts += 1;
            Ok::<_, ()>(attempts == 3)
        };
        assert!(
            acquire(bucket, NOW, || Ok(None), &mut flaky)
                .unwrap()
                .allowed
        );
        assert_eq!(attempts, 3);
    }

    #[test]
    fn acquire_skips_the_write_when_denied_and_passes_errors() {
        let bucket = Bucket::new(1.0, 1);
        let full = Some(NOW + 1_000_000);
        let denied = acquire::<()>(bucket, NOW, || Ok(full), |_, _, _| panic!("wrote"));
        assert!(!denied.unwrap().allowed);
        let failed = acquire(bucket, NOW, || Err("down"), |_, _, _| Ok(true));
        assert_eq!(failed, Err("down"));
    }

    #[test]
    fn losing_every_race_still_decides_on_the_latest_value() {
        let bucket = Bucket::new(20.0, 40);
        let calls = std::cell::Cell::new(0);
        // Room in the bucket: allowed, though no swap ever won.
        let lost = acquire::<()>(
            bucket,
            NOW,
            || Ok(None),
            |_, _, _| {
                calls.set(calls.get() + 1);
                Ok(false)
            },
        );
        assert!(lost.unwrap().allowed);
        assert_eq!(calls.get(), MAX_ATTEMPTS);
        // A full bucket: denied without any swap.
        let full = Some(NOW + bucket.interval_us * 40);
        let denied = acquire::<()>(bucket, NOW, || Ok(full), |_, _, _| Ok(false)).unwrap();
        assert!(!denied.allowed);
        assert!(denied.retry_after_ms.is_some());
    }
}
