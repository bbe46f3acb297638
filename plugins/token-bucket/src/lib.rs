//! paygate rate-limit policy: GCRA token buckets per client IP and per API
//! key id, shared by all replicas through the host's counters.
//!
//! Settings: `ip-rate` (requests/s, default 20), `ip-burst` (40),
//! `key-rate` (100), `key-burst` (200), `fail-open` (`true`). No secrets.

mod gcra;
mod limits;

wit_bindgen::generate!({
    path: "../../wit/deps/paygate-plugins-0.1.0",
    world: "rate-limit-policy",
});

use exports::paygate::plugins::policy::{Decision, Guest, LimitRequest};
use gcra::{Bucket, Outcome};
use limits::{Checked, Limits};
use paygate::plugins::counters::{self, CounterError};
use paygate::plugins::log::{self, Level};
use paygate::plugins::{clock, config};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether bad settings were already reported by this instance.
static WARNED: AtomicBool = AtomicBool::new(false);

/// The exported policy.
struct TokenBucket;

impl Guest for TokenBucket {
    fn decide(request: LimitRequest) -> Decision {
        let (limits, problems) = Limits::load(config::get);
        // Settings do not change within an instance; one warning is enough
        // and keeps a typo from costing a log line on every request.
        if !problems.is_empty() && !WARNED.swap(true, Ordering::Relaxed) {
            for problem in problems {
                log::write(Level::Warn, &format!("{problem}; using the default"));
            }
        }
        let now_us = i64::try_from(clock::now_ms())
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        match check_all(&request, &limits, now_us) {
            Ok(checked) => limits::combine(&checked),
            Err(err) => {
                let what = if limits.fail_open {
                    "allowing"
                } else {
                    "denying"
                };
                log::write(
                    Level::Warn,
                    &format!("rate-limit counters failed ({err:?}); {what} the request"),
                );
                limits::store_down(&limits)
            }
        }
    }
}

/// Checks the IP bucket, then the key bucket; a request the IP bucket
/// denies is not charged to its key.
fn check_all(
    request: &LimitRequest,
    limits: &Limits,
    now_us: i64,
) -> Result<Vec<Checked>, CounterError> {
    let ip = take(&format!("ip:{}", request.client_ip), limits.ip, now_us)?;
    let mut checked = vec![ip];
    if let (true, Some(key_id)) = (ip.outcome.allowed, &request.key_id) {
        checked.push(take(&format!("key:{key_id}"), limits.key, now_us)?);
    }
    Ok(checked)
}

fn take(key: &str, bucket: Bucket, now_us: i64) -> Result<Checked, CounterError> {
    let outcome: Outcome = gcra::acquire(
        bucket,
        now_us,
        || counters::get(key),
        |expected, new, ttl_ms| counters::compare_and_swap(key, expected, new, ttl_ms),
    )?;
    Ok(Checked {
        burst: bucket.burst,
        outcome,
    })
}

export!(TokenBucket);
