//! The HTTP API: router, layers, error type and handlers.

pub mod admin;
pub mod auth;
pub mod error;
mod health;
pub mod middleware;
mod notifications;
pub mod openapi;
pub mod payments;
pub mod rate_limit;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::gateway::Gateway;
use crate::payments::create::PaymentsService;
use error::ApiError;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub gateway: Arc<Gateway>,
    /// Payment creation, the one service a create needs beyond auth.
    pub payments: Arc<PaymentsService>,
}

/// The merchant API with its layers, outermost first: request id,
/// security headers, body guard; rate limiting on the merchant routes.
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
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
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
        .merge(openapi::routes())
        .fallback(|| async { ApiError::NotFound })
        .layer(axum::middleware::from_fn(middleware::body_guard))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::security_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::measure,
        ))
        .layer(axum::middleware::from_fn(middleware::request_id))
        .with_state(state)
}
