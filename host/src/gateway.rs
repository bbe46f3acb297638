//! Everything a request handler needs, built once at start.

use std::net::IpAddr;
use std::sync::Arc;

use crate::db::Databases;
use crate::merchants::{AuthCache, MerchantStore};
use crate::outbox::OutboxStore;
use crate::payments::PaymentStore;
use crate::plugins::{PluginSet, RegistrySource};
use crate::providers::ProviderStore;
use crate::webhook_log::WebhookLog;

/// The services behind the API.
pub struct Gateway {
    pub dbs: Databases,
    pub payments: PaymentStore,
    /// Merchant notifications waiting, in flight, delivered or failed.
    pub outbox: OutboxStore,
    pub merchants: MerchantStore,
    pub providers: Arc<ProviderStore>,
    pub plugins: Arc<PluginSet>,
    /// The plugin registry served, when one is configured.
    pub registry: Option<RegistrySource>,
    pub auth: AuthCache,
    pub webhook_log: WebhookLog,
    /// The verifier plugin of `POST /api/v1/payments/webhook`.
    pub internal_verifier: String,
    pub redis: redis::aio::ConnectionManager,
    /// The broker, checked by `/health`.
    pub rabbitmq_url: String,
    /// Name of the rate-limit policy plugin; empty for none.
    pub rate_limit_plugin: String,
    /// What rate limiting does while its counters (Redis) cannot answer.
    pub rate_limit_on_redis_down: crate::config::RedisDownPolicy,
    pub trusted_proxies: Vec<IpAddr>,
    pub hsts_max_age: u64,
    /// What `/metrics` on the admin listener shows.
    pub metrics: Arc<crate::metrics::Metrics>,
}
