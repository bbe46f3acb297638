//! Settings of the two buckets and the merge of their outcomes into one
//! decision, free of WIT imports.

use crate::exports::paygate::plugins0_1_0::policy::Decision;
use crate::gcra::{Bucket, Outcome};
use crate::settings::parse_or;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// What the manifest configures.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Bucket per client IP.
    pub ip: Bucket,
    /// Bucket per API key id.
    pub key: Bucket,
    /// Allow requests when the counter store is down.
    pub fail_open: bool,
}

impl Limits {
    /// Reads the settings through `get`. A bad value falls back to its
    /// default (a policy cannot refuse to run) and is reported in the second
    /// element so the caller can log it.
    pub fn load(get: impl Fn(&str) -> Option<String>) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let mut bucket = |rate_key: &str, rate: f64, burst_key: &str, burst: u32| {
            let rate = parse_or(rate_key, get(rate_key), rate)
                .and_then(|r| positive(rate_key, r))
                .unwrap_or_else(|problem| {
                    problems.push(problem);
                    rate
                });
            let burst = parse_or(burst_key, get(burst_key), burst)
                .and_then(|b| positive(burst_key, b))
                .unwrap_or_else(|problem| {
                    problems.push(problem);
                    burst
                });
            Bucket::new(rate, burst)
        };
        let ip = bucket("ip-rate", 20.0, "ip-burst", 40);
        let key = bucket("key-rate", 100.0, "key-burst", 200);
        let fail_open = parse_or("fail-open", get("fail-open"), true).unwrap_or_else(|problem| {
            problems.push(problem);
            true
        });
        (Self { ip, key, fail_open }, problems)
    }
}

fn positive<T: PartialOrd + Default>(key: &str, value: T) -> Result<T, String> {
    // Compared this way round so that a NaN rate fails too.
    if value > T::default() {
        Ok(value)
    } else {
        Err(format!("setting `{key}` must be greater than zero"))
    }
}

/// One bucket's outcome with the burst it was measured against.
#[derive(Debug, Clone, Copy)]
pub struct Checked {
    /// The bucket's burst, reported as the limit when it binds.
    pub burst: u32,
    /// The bucket's outcome.
    pub outcome: Outcome,
}

/// Merges the outcomes: the request passes only if every bucket allowed it,
/// and the headers describe the bucket that binds — the one that denied, or
/// else the one with the fewest requests left.
pub fn combine(checked: &[Checked]) -> Decision {
    let binding = checked
        .iter()
        .find(|c| !c.outcome.allowed)
        .or_else(|| checked.iter().min_by_key(|c| c.outcome.remaining))
        .expect("at least the IP bucket is checked");
    Decision {
        allowed: binding.outcome.allowed,
        limit: binding.burst,
        remaining: checked
            .iter()
            .map(|c| c.outcome.remaining)
            .min()
            .unwrap_or(0),
        reset_ms: binding.outcome.reset_ms,
        retry_after_ms: binding.outcome.retry_after_ms,
    }
}

/// The decision when the counter store failed.
pub fn store_down(limits: &Limits) -> Decision {
    let limit = limits.ip.burst;
    if limits.fail_open {
        Decision {
            allowed: true,
            limit,
            remaining: limit,
            reset_ms: 0,
            retry_after_ms: None,
        }
    } else {
        Decision {
            allowed: false,
            limit,
            remaining: 0,
            reset_ms: 1000,
            retry_after_ms: Some(1000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(remaining: u32, reset_ms: u64) -> Outcome {
        Outcome {
            allowed: true,
            remaining,
            reset_ms,
            retry_after_ms: None,
        }
    }

    fn settings(pairs: &[(&str, &str)]) -> (Limits, Vec<String>) {
        Limits::load(|key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn loads_defaults_and_overrides() {
        let (limits, problems) = settings(&[]);
        assert!(problems.is_empty());
        assert_eq!(limits.ip, Bucket::new(20.0, 40));
        assert_eq!(limits.key, Bucket::new(100.0, 200));
        assert!(limits.fail_open);
        let (limits, _) = settings(&[
            ("ip-rate", "0.5"),
            ("key-burst", "3"),
            ("fail-open", "false"),
        ]);
        assert_eq!(limits.ip.interval_us, 2_000_000);
        assert_eq!(limits.key.burst, 3);
        assert!(!limits.fail_open);
    }

    #[test]
    fn reports_bad_settings() {
        let (limits, problems) = settings(&[
            ("ip-rate", "0"),
            ("ip-burst", "x"),
            ("key-rate", "NaN"),
            ("fail-open", "maybe"),
        ]);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert_eq!(limits.ip, Bucket::new(20.0, 40));
        assert!(limits.fail_open);
    }

    #[test]
    fn combines_buckets() {
        // What `take` answers for a first request on a 20/s burst-40 IP
        // bucket and a 1/s burst-2 key bucket, then for a full key bucket.
        let ip_ok = Checked {
            burst: 40,
            outcome: allowed(39, 50),
        };
        let key_ok = Checked {
            burst: 2,
            outcome: allowed(1, 1000),
        };
        let both = combine(&[ip_ok, key_ok]);
        assert!(both.allowed);
        assert_eq!((both.limit, both.remaining, both.reset_ms), (2, 1, 1000));
        let key_full = Checked {
            burst: 2,
            outcome: Outcome {
                allowed: false,
                remaining: 0,
                reset_ms: 2000,
                retry_after_ms: Some(1000),
            },
        };
        let denied = combine(&[ip_ok, key_full]);
        assert!(!denied.allowed);
        assert_eq!((denied.limit, denied.remaining), (2, 0));
        assert_eq!(denied.retry_after_ms, Some(1000));
        let alone = combine(&[ip_ok]);
        assert_eq!(
            (alone.limit, alone.remaining, alone.retry_after_ms),
            (40, 39, None)
        );
    }

    #[test]
    fn store_failure_follows_fail_open() {
        let (open, _) = settings(&[]);
        assert!(store_down(&open).allowed);
        let (closed, _) = settings(&[("fail-open", "false")]);
        let decision = store_down(&closed);
        assert!(!decision.allowed);
        assert_eq!(decision.retry_after_ms, Some(1000));
    }
}
