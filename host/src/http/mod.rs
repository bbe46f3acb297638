//! The HTTP API: router, layers, error type and handlers.

pub mod access_log;
pub mod admin;
mod admin_console;
mod admin_merchants;
mod admin_notifications;
mod admin_providers;
pub mod auth;
pub mod error;
mod health;
pub mod merchant;
pub mod middleware;
mod notifications;
pub mod openapi;
pub mod payments;
pub mod rate_limit;
pub mod refunds;
pub mod server;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};

use crate::health::Health;
use crate::merchants::Merchants;
use crate::metrics::Metrics;
use crate::outbox::OutboxStore;
use crate::payments::create::PaymentsService;
use crate::webhooks::Webhooks;
use error::ApiError;
use middleware::Hsts;
use rate_limit::RateLimiter;

/// The services behind the merchant API, each built once at start. A
/// handler or layer takes only the ones it uses (`State<Arc<Merchants>>`
/// ...), never the whole set.
///
/// The router clones its state into every request's handler service, so
/// the set sits behind one `Arc`: a clone is one count, not one per
/// service. Cloning and dropping the whole set took 2% of the host's CPU on
/// a show (docs/benchmarks/notes/api.md, session 28).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

/// The fields of [`AppState`].
pub struct Services {
    pub merchants: Arc<Merchants>,
    pub payments: Arc<PaymentsService>,
    /// A payment's notifications and their retry.
    pub outbox: OutboxStore,
    pub webhooks: Arc<Webhooks>,
    pub health: Arc<Health>,
    pub rate_limiter: Arc<RateLimiter>,
    pub metrics: Arc<Metrics>,
    pub hsts: Hsts,
}

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// `State<T>` for each service, as `#[derive(FromRef)]` would give.
macro_rules! substates {
    ($($field:ident: $ty:ty),+ $(,)?) => {$(
        impl FromRef<AppState> for $ty {
            fn from_ref(state: &AppState) -> Self {
                state.0.$field.clone()
            }
        }
    )+};
}

substates! {
    merchants: Arc<Merchants>,
    payments: Arc<PaymentsService>,
    outbox: OutboxStore,
    webhooks: Arc<Webhooks>,
    health: Arc<Health>,
    rate_limiter: Arc<RateLimiter>,
    metrics: Arc<Metrics>,
    hsts: Hsts,
}

/// The merchant API with its layers, outermost first: access log, then
/// metrics, security headers and body guard in one layer; rate limiting on
/// the merchant routes. The request id and the deadlines come before any
/// layer, from the server ([`server::serve`]).
pub fn router(state: AppState) -> Router {
    let merchant_api = Router::new()
        .route(
            "/api/v1/payments",
            post(payments::create).get(payments::list),
        )
        .route("/api/v1/payments/{id}/show", get(payments::show))
        .route("/api/v1/payments/{id}/tracking", get(payments::tracking))
        .route(
            "/api/v1/payments/{id}/notifications",
            get(notifications::list),
        )
        .route(
            "/api/v1/payments/{id}/notifications/retry",
            post(notifications::retry),
        )
        .route(
            "/api/v1/payments/{id}/refunds",
            post(refunds::create).get(refunds::list),
        )
        .route("/api/v1/refunds/{refund_id}", get(refunds::show))
        .route(
            "/api/v1/merchant",
            get(merchant::show).patch(merchant::update),
        )
        .route(
            "/api/v1/merchant/webhook-secret/rotate",
            post(merchant::rotate_webhook_secret),
        )
        .route(
            "/api/v1/merchant/api-keys/rotate",
            post(merchant::rotate_api_keys),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.rate_limiter.clone(),
            rate_limit::rate_limit,
        ));
    Router::new()
        .merge(merchant_api)
        .route("/api/v1/payments/webhook", post(webhooks::internal))
        .route(
            "/api/v1/payments/webhook/{alias}",
            post(webhooks::for_alias),
        )
        .route("/health", get(health::health))
        .route("/readyz", get(health::readyz))
        .route("/livez", get(health::livez))
        .merge(openapi::routes())
        .fallback(|| async { ApiError::NotFound })
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(middleware::Edge {
                metrics: state.metrics.clone(),
                hsts: state.hsts.clone(),
            }),
            middleware::edge,
        ))
        .layer(access_log::layer())
        .with_state(state)
}
