//! The rate-limit policy plugin, asked before any authentication work.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, current_request_id};
use crate::config::{RateLimitSettings, RedisDownPolicy};
use crate::merchants::ApiKey;
use crate::plugins::bindings::{Decision, LimitRequest};
use crate::plugins::{PluginError, PluginSet};

/// The rate-limit policy in front of the merchant routes, built once at
/// start; the plugin itself is looked up per request, so a hot swap
/// takes effect on the next one.
pub struct RateLimiter {
    pub plugins: Arc<PluginSet>,
    pub settings: RateLimitSettings,
}

/// Denies with 429 when the policy says so; otherwise adds the
/// `RateLimit-*` headers to the response. A missing or failing policy
/// lets the request through (logged). When the policy's counters (Redis)
/// could not answer, `PAYGATE_RATE_LIMIT_ON_REDIS_DOWN` decides, whatever
/// the policy made of it: through without headers, or 503.
pub async fn rate_limit(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let settings = &limiter.settings;
    let plugin = (!settings.plugin.is_empty())
        .then(|| limiter.plugins.get(&settings.plugin))
        .flatten();
    let Some(plugin) = plugin else {
        return next.run(request).await;
    };

    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let limit_request = LimitRequest {
        route: request.extensions().get::<MatchedPath>().map_or_else(
            || request.uri().path().to_owned(),
            |m| m.as_str().to_owned(),
        ),
        method: request.method().as_str().to_owned(),
        client_ip: client_ip(peer, request.headers(), &settings.trusted_proxies)
            .map_or_else(String::new, |ip| ip.to_string()),
        merchant_id: None,
        key_id: request
            .headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(|k| ApiKey(k).key_id()),
    };
    let decided = match plugin
        .decide_observed(&current_request_id(), &limit_request)
        .await
    {
        Ok(d) => d,
        Err(e) => {
            return match on_policy_error(&e, settings.on_policy_error) {
                None => {
                    tracing::warn!(error = %e, "rate-limit policy failed; allowing the request");
                    next.run(request).await
                }
                Some(refusal) => {
                    tracing::warn!(error = %e, "rate-limit policy failed; refusing the request");
                    refusal.into_response()
                }
            };
        }
    };
    if decided.counters_unavailable {
        // The policy already logged the store's error; /health shows it too.
        return match settings.on_redis_down {
            RedisDownPolicy::Open => next.run(request).await,
            RedisDownPolicy::Closed => {
                ApiError::ServiceUnavailable("rate-limit counters (Redis) unavailable".into())
                    .into_response()
            }
        };
    }
    let decision = decided.decision;
    if !decision.allowed {
        let mut response = ApiError::RateLimited {
            retry_after_secs: retry_after_secs(&decision),
        }
        .into_response();
        add_headers(response.headers_mut(), &decision);
        return response;
    }
    let mut response = next.run(request).await;
    add_headers(response.headers_mut(), &decision);
    response
}

/// What a failed policy call means for the request: `None` lets it
/// through, `Some` refuses it. No free sandbox for the policy is always a
/// refusal (an attacker can fill them); any other failure follows
/// `PAYGATE_RATE_LIMIT_ON_POLICY_ERROR`.
pub fn on_policy_error(error: &PluginError, policy: RedisDownPolicy) -> Option<ApiError> {
    match (error, policy) {
        (PluginError::Busy { .. }, _) | (_, RedisDownPolicy::Closed) => Some(
            ApiError::ServiceUnavailable("the rate-limit policy could not decide".into()),
        ),
        (_, RedisDownPolicy::Open) => None,
    }
}

/// `Retry-After` of a denial in whole seconds, rounded up so a client never
/// comes back early; a policy that names no wait gets one second.
pub fn retry_after_secs(d: &Decision) -> u64 {
    d.retry_after_ms.unwrap_or(1000).div_ceil(1000)
}

/// The `RateLimit-*` headers of a decision; the reset is rounded up to seconds.
pub fn add_headers(headers: &mut HeaderMap, d: &Decision) {
    headers.insert("ratelimit-limit", HeaderValue::from(d.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(d.remaining));
    headers.insert(
        "ratelimit-reset",
        HeaderValue::from(d.reset_ms.div_ceil(1000)),
    );
}

/// The socket's peer, or the last untrusted hop of `X-Forwarded-For` when
/// the peer is a trusted proxy.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    forwarded
        .split(',')
        .rev()
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .find(|ip| !trusted.contains(ip))
        .or(Some(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Security review, finding 11: a policy with no free sandbox (which
    /// an attacker can cause) never lets a request through.
    #[test]
    fn a_busy_policy_refuses_whatever_the_setting() {
        let busy = PluginError::Busy {
            plugin: "rate-limit".into(),
        };
        let trapped = PluginError::Trap {
            plugin: "rate-limit".into(),
            message: "unreachable".into(),
        };
        for policy in [RedisDownPolicy::Open, RedisDownPolicy::Closed] {
            let refusal = on_policy_error(&busy, policy).expect("refused");
            assert_eq!(refusal.code(), "service_unavailable");
        }
        assert!(on_policy_error(&trapped, RedisDownPolicy::Open).is_none());
        assert!(on_policy_error(&trapped, RedisDownPolicy::Closed).is_some());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.1, 203.0.113.5, 10.0.0.2"),
        );
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let other: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(client_ip(Some(other), &headers, &[proxy]), Some(other));
        assert_eq!(
            client_ip(Some(proxy), &headers, &[proxy]),
            Some("203.0.113.5".parse().unwrap())
        );
        assert_eq!(
            client_ip(Some(proxy), &HeaderMap::new(), &[proxy]),
            Some(proxy)
        );
    }
}
