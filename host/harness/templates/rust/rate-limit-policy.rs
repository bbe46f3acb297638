//! {{name}}: a paygate rate-limit policy (world `rate-limit-policy`), made
//! by `paygate plugin new`.
//!
//! A fixed window per API key, or per client IP for requests without one:
//! at most `limit` requests (setting, default 100) in each window of
//! `window-ms` milliseconds (setting, default 1000). The counters live in
//! Redis, shared by every host replica. When they cannot be reached the
//! request is allowed, unless the setting `fail-open` is `false`.

use exports::paygate::plugins0_1_0::policy::{self as api, Decision, LimitRequest};
use paygate::plugins0_1_0::{config, log};
use paygate::plugins0_3_0::counters;

wit_bindgen::generate!({
    path: "wit",
    world: "rate-limit-policy",
    // wit/ holds 0.3.0 and, in wit/deps/, the 0.1.0 interfaces it uses.
    generate_all,
});

struct Policy;

impl api::Guest for Policy {
    fn decide(request: LimitRequest) -> Decision {
        let limit = setting("limit", 100).clamp(1, u64::from(u32::MAX));
        let window_ms = setting("window-ms", 1000).max(1);
        let key = match &request.key_id {
            Some(key_id) => format!("key:{key_id}"),
            None => format!("ip:{}", request.client_ip),
        };
        match counters::increment(&key, 1, window_ms) {
            Ok(window) => {
                let used = u64::try_from(window.value).unwrap_or(0);
                let allowed = used <= limit;
                Decision {
                    allowed,
                    limit: limit as u32,
                    remaining: limit.saturating_sub(used) as u32,
                    reset_ms: window.reset_ms,
                    retry_after_ms: (!allowed).then_some(window.reset_ms.max(1)),
                }
            }
            Err(error) => {
                let allowed = config::get("fail-open").as_deref() != Some("false");
                log::write(log::Level::Warn, &format!("counters unavailable: {error:?}"));
                Decision {
                    allowed,
                    limit: limit as u32,
                    remaining: 0,
                    reset_ms: window_ms,
                    retry_after_ms: (!allowed).then_some(window_ms),
                }
            }
        }
    }
}

/// A numeric setting, or `default` when it is absent or not a number.
fn setting(key: &str, default: u64) -> u64 {
    config::get(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

export!(Policy);
