//! The operator console (issue 16, item 5): one page on the admin listener
//! at `/console`, its script and style served beside it from the binary
//! (no CDN, no build step). The page holds no data: the operator signs in
//! with the admin token, which the script keeps in the tab's session
//! storage and sends as a bearer token to the admin API, like any client.
//! So the page's own routes need no token, and carry a strict content
//! security policy: scripts and styles from paygate only, no inline code,
//! no framing, requests only back to this listener.
//!
//! Beside the page: the two reads it needs that no other route gives, the
//! provider aliases with their circuits and the outbox's counts.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::admin::Operations;
use super::error::ApiError;
#[allow(unused_imports)] // named by the OpenAPI annotations
use super::openapi::ErrorBody;
use crate::outbox::OutboxStats;
use crate::providers::CircuitView;

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

/// What the console's own files may do.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                      frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    super::middleware::no_sniffing_or_framing(headers);
    response
}

/// `GET /console`.
pub async fn page() -> Response {
    asset(PAGE, "text/html; charset=utf-8")
}

/// `GET /console/console.js`.
pub async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /console/console.css`.
pub async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

/// `GET /admin/v1/providers`: every alias, its plugins and its circuit.
#[utoipa::path(
    get, path = "/admin/v1/providers", tag = "plugins",
    responses(
        (status = 200, description = "Every alias with its plugins and its circuit breaker", body = ProviderList),
        (status = 401, description = "`unauthorized`: no or another admin token", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "admin.providers.list"))]
pub async fn providers(State(ops): State<Operations>) -> Result<Json<ProviderList>, ApiError> {
    let aliases = ops.payments.providers.list().await?;
    let mut providers = Vec::with_capacity(aliases.len());
    for binding in aliases {
        providers.push(ProviderRow {
            circuit: ops.payments.circuit.inspect(&binding.alias).await,
            alias: binding.alias,
            provider_plugin: binding.provider_plugin,
            verifier_plugin: binding.verifier_plugin,
            available: binding.available,
        });
    }
    Ok(Json(ProviderList { providers }))
}

/// `GET /admin/v1/outbox`: notifications by status, and the oldest
/// waiting to be published.
#[utoipa::path(
    get, path = "/admin/v1/outbox", tag = "notifications",
    responses(
        (status = 200, description = "Counts by status and the oldest pending age", body = OutboxStats),
        (status = 401, description = "`unauthorized`: no or another admin token", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "admin.outbox"))]
pub async fn outbox(State(ops): State<Operations>) -> Result<Json<OutboxStats>, ApiError> {
    Ok(Json(ops.outbox.stats().await?))
}

/// One alias as the console lists it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ProviderRow {
    pub alias: String,
    pub provider_plugin: String,
    pub verifier_plugin: Option<String>,
    pub available: bool,
    pub circuit: CircuitView,
}

/// `GET /admin/v1/providers`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ProviderList {
    pub providers: Vec<ProviderRow>,
}
