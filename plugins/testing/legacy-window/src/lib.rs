//! A rate-limit policy built from WIT 0.1.0 alone: `limit` requests (the
//! setting, default 3) per client IP in each fixed window of `window-ms`
//! (default a second), counted with
//! 0.1.0's `counters.increment`. It stands for the policies operators
//! already run, which a host serving 0.3.0 must keep serving.

wit_bindgen::generate!({
    path: "../../../wit/deps/paygate-plugins-0.1.0",
    world: "rate-limit-policy",
});

use exports::paygate::plugins::policy::{Decision, Guest, LimitRequest};
use paygate::plugins::{config, counters};

struct Window;

impl Guest for Window {
    fn decide(request: LimitRequest) -> Decision {
        let limit: u32 = config::get("limit")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3);
        let window_ms: u64 = config::get("window-ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000);
        match counters::increment(&format!("ip:{}", request.client_ip), 1, window_ms) {
            Ok(window) => {
                let used = u32::try_from(window.value.max(0)).unwrap_or(u32::MAX);
                let allowed = used <= limit;
                Decision {
                    allowed,
                    limit,
                    remaining: limit.saturating_sub(used),
                    reset_ms: window.reset_ms,
                    retry_after_ms: (!allowed).then_some(window.reset_ms.max(1)),
                }
            }
            Err(_) => Decision {
                allowed: true,
                limit,
                remaining: limit,
                reset_ms: 0,
                retry_after_ms: None,
            },
        }
    }
}

export!(Window);
