//! A lock-free latency histogram: plugin calls record into it, and the
//! host renders it in the Prometheus text format.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds: up to the longest
/// timeout a request or a delivery may reach (60 s), so that a slow tail
/// shows in a bucket rather than only past the last one.
const BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 5.0, 10.0,
    30.0, 60.0,
];

/// A latency histogram with fixed buckets, updated without locks.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// The `q` quantile (0 to 1) of what was observed, as the upper bound
    /// of the bucket it falls in (past the last bucket: that bucket's
    /// bound); `None` before the first observation.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            if cumulative >= rank {
                return Some(Duration::from_secs_f64(*bound));
            }
        }
        BUCKETS.last().map(|b| Duration::from_secs_f64(*b))
    }

    /// What was observed, for an exposition: the sum in seconds, the
    /// count, and each bucket's own count (not cumulative) by its upper
    /// bound, the last one `f64::INFINITY` for what lies past every bound.
    pub fn snapshot(&self) -> Snapshot {
        let mut buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, n)| (*bound, n.load(Ordering::Relaxed)))
            .collect();
        let count = self.count.load(Ordering::Relaxed);
        let bounded: u64 = buckets.iter().map(|(_, n)| n).sum();
        buckets.push((f64::INFINITY, count.saturating_sub(bounded)));
        Snapshot {
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            count,
            buckets,
        }
    }
}

/// A [`Histogram`] as read at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub sum_seconds: f64,
    pub count: u64,
    /// `(upper bound in seconds, observations in this bucket alone)`.
    pub buckets: Vec<(f64, u64)>,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_bucket_bounds() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for _ in 0..98 {
            h.observe(Duration::from_micros(80));
        }
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        assert_eq!(h.quantile(0.5), Some(Duration::from_micros(100)));
        assert_eq!(h.quantile(0.99), Some(Duration::from_millis(5)));
        assert_eq!(h.quantile(1.0), Some(Duration::from_secs(10)));
    }

    #[test]
    fn a_snapshot_counts_each_bucket_once_and_the_tail_past_the_last() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(40));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        h.observe(Duration::from_secs(90));
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets.len(), BUCKETS.len() + 1);
        let at = |bound: f64| s.buckets.iter().find(|(b, _)| *b == bound).unwrap().1;
        assert_eq!(at(0.00005), 1);
        assert_eq!(at(0.005), 1);
        assert_eq!(at(0.0025), 0);
        assert_eq!(at(10.0), 1);
        assert_eq!(at(f64::INFINITY), 1, "past 60 s");
        assert!(
            (s.sum_seconds - 100.00304).abs() < 1e-9,
            "{}",
            s.sum_seconds
        );
    }
}
