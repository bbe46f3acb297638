//! A token bucket's shape, as the host's `counters.take` runs it: the
//! generic cell rate algorithm (GCRA), which keeps a bucket as one stored
//! time, the theoretical arrival of the next request. The arithmetic lives
//! in the host (`paygate_runtime::gcra`), so the step is one atomic round
//! trip to the shared store whatever the replicas do at the same moment.

/// The host's bounds on a bucket (`counters.bucket` in wit/counters.wit).
const MAX_INTERVAL_US: f64 = 3_600_000_000.0;
const MAX_BURST: u32 = 1_000_000;

/// A bucket's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Microseconds between two tokens, i.e. one over the rate.
    pub interval_us: u64,
    /// Requests allowed at once from a full bucket.
    pub burst: u32,
}

impl Bucket {
    /// A bucket refilling at `rate` tokens per second, holding `burst`.
    /// Callers validate the inputs; the clamps keep the shape within what
    /// the host accepts (one token an hour to one a microsecond, a million
    /// at most at once).
    pub fn new(rate: f64, burst: u32) -> Self {
        // Rounded to the nearest microsecond, halves up, after the clamp:
        // `f64::round` is not in `core`, and within the clamp's range adding
        // one half and truncating is exact.
        let interval_us = (1_000_000.0 / rate).clamp(1.0, MAX_INTERVAL_US) + 0.5;
        Self {
            interval_us: interval_us as u64,
            burst: burst.clamp(1, MAX_BURST),
        }
    }
}

/// The outcome of one request against one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Requests still allowed right now.
    pub remaining: u32,
    /// Milliseconds until the bucket is full again.
    pub reset_ms: u64,
    /// When denied: milliseconds until one request would be allowed.
    pub retry_after_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_the_rate_within_the_hosts_bounds() {
        assert_eq!(
            Bucket::new(20.0, 40),
            Bucket {
                interval_us: 50_000,
                burst: 40
            }
        );
        assert_eq!(Bucket::new(3.0, 1).interval_us, 333_333);
        assert_eq!(Bucket::new(1.5, 1).interval_us, 666_667);
        assert_eq!(Bucket::new(400_000.0, 1).interval_us, 3, "2.5 rounds up");
        assert_eq!(
            Bucket::new(1e9, 0),
            Bucket {
                interval_us: 1,
                burst: 1
            }
        );
        let slow = Bucket::new(1e-9, u32::MAX);
        assert_eq!((slow.interval_us, slow.burst), (3_600_000_000, 1_000_000));
    }
}
