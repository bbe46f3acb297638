//! paygate rate-limit policy: GCRA token buckets per client IP and per API
//! key id, shared by all replicas through the host's counters.
//!
//! Settings: `ip-rate` (requests/s, default 20), `ip-burst` (40),
//! `key-rate` (100), `key-burst` (200), `fail-open` (`true`). No secrets.
//!
//! Built without Rust's standard library: on `wasm32-wasip2`, `std` brings
//! in the WASI interfaces (stdio, terminals, environment, exit, streams)
//! although the policy calls none, and every fresh instance (one per
//! request) sets them up again. Without them, and with the arena allocator
//! of `no_std.rs`, a call costs about a fifth less
//! (docs/benchmarks/notes/plugins.md). The component imports only its
//! world's `config`, `log` and `counters`.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

mod gcra;
mod limits;
#[cfg(target_arch = "wasm32")]
mod no_std;
/// guest-common's settings parsing, which needs only `core` and `alloc`.
#[path = "../../guest-common/src/settings.rs"]
#[allow(dead_code)] // `required`: a policy has no secrets.
mod settings;

wit_bindgen::generate!({
    path: "../../wit",
    world: "rate-limit-policy",
    // wit/ holds 0.3.0 (its `counters`) and, in wit/deps/, the 0.1.0
    // interfaces it also imports.
    generate_all,
});

use exports::paygate::plugins0_1_0::policy::{Decision, Guest, LimitRequest};
use gcra::Outcome;
use limits::{Checked, Limits};
use paygate::plugins0_1_0::config;
use paygate::plugins0_1_0::log::{self, Level};
use paygate::plugins0_3_0::counters::{self, CounterError};

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

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
        match check_all(&request, &limits) {
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

/// Takes from the IP bucket, then the key bucket, in one call to the
/// host: one round trip to the shared store. The host stops at a bucket
/// that refuses, so a request the IP bucket denies is not charged to its key.
fn check_all(request: &LimitRequest, limits: &Limits) -> Result<Vec<Checked>, CounterError> {
    let mut buckets = vec![(format!("ip:{}", request.client_ip), limits.ip)];
    if let Some(key_id) = &request.key_id {
        buckets.push((format!("key:{key_id}"), limits.key));
    }
    let asked: Vec<counters::Bucket> = buckets
        .iter()
        .map(|(key, b)| counters::Bucket {
            key: key.clone(),
            interval_us: b.interval_us,
            burst: b.burst,
        })
        .collect();
    let taken = counters::take(&asked)?;
    Ok(taken
        .into_iter()
        .zip(&buckets)
        .map(|(t, (_, bucket))| Checked {
            burst: bucket.burst,
            outcome: Outcome {
                allowed: t.allowed,
                remaining: t.remaining,
                reset_ms: t.reset_ms,
                retry_after_ms: t.retry_after_ms,
            },
        })
        .collect())
}

export!(TokenBucket);
