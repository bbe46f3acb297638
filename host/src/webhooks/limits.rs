//! How many webhooks a client IP and an alias may send in a window,
//! counted in Redis so the limits hold across replicas. Asked before the
//! verifier runs and before anything is stored: a refused webhook costs
//! one Redis round trip.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::{RedisDownPolicy, WebhookSettings};
use crate::counters::RedisCounters;
use crate::plugins::CounterStore as _;

/// The webhook limits of one host, built once at start.
pub struct WebhookLimits {
    counters: RedisCounters,
    per_ip: u32,
    per_alias: u32,
    window: Duration,
    on_redis_down: RedisDownPolicy,
}

/// Why a webhook may not go on.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("too many webhooks from {scope}")]
    Exceeded {
        /// "this client" or "this alias", for the log line.
        scope: &'static str,
        /// When the window ends, in whole seconds rounded up.
        retry_after_secs: u64,
    },
    /// Redis could not count and the setting is to fail closed.
    #[error("webhook rate-limit counters (Redis) unavailable")]
    CountersUnavailable,
}

/// What the limits count: a client IP or a route's alias.
#[derive(Clone, Copy, Debug)]
pub enum Counted<'a> {
    Client(IpAddr),
    /// `None` is the internal route.
    Alias(Option<&'a str>),
}

impl WebhookLimits {
    /// `counters` should have a key prefix of its own; a limit of 0 is no limit.
    pub fn new(
        counters: RedisCounters,
        settings: &WebhookSettings,
        on_redis_down: RedisDownPolicy,
    ) -> Self {
        Self {
            counters,
            per_ip: settings.per_ip,
            per_alias: settings.per_alias,
            window: settings.window,
            on_redis_down,
        }
    }

    /// Counts one webhook against `what`'s limit and says whether it may go on.
    pub async fn check(&self, what: Counted<'_>) -> Result<(), LimitError> {
        let (limit, key, scope) = match what {
            Counted::Client(ip) => (self.per_ip, format!("ip:{ip}"), "this client"),
            // No alias holds a colon, so the internal route's key is its own.
            Counted::Alias(alias) => (
                self.per_alias,
                format!("alias:{}", alias.unwrap_or(":internal")),
                "this alias",
            ),
        };
        if limit == 0 {
            return Ok(());
        }
        let window_ms = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        match self.counters.increment(&key, 1, window_ms).await {
            Ok((count, _)) if count <= i64::from(limit) => Ok(()),
            Ok((_, reset_ms)) => Err(LimitError::Exceeded {
                scope,
                retry_after_secs: reset_ms.div_ceil(1000).max(1),
            }),
            Err(e) => match self.on_redis_down {
                RedisDownPolicy::Open => {
                    tracing::warn!(error = %e.0, "webhook limits not counted (Redis); letting the webhook through");
                    Ok(())
                }
                RedisDownPolicy::Closed => {
                    tracing::warn!(error = %e.0, "webhook limits not counted (Redis); refusing the webhook");
                    Err(LimitError::CountersUnavailable)
                }
            },
        }
    }
}
