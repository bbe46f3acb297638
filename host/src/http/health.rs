//! `GET /health` and `GET /readyz`: [`Health`]'s checks as an answer (at
//! most one round of them a second, however many ask); `GET /livez`: the
//! process serves, no backend asked.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::health::Health;

/// 200 when every check is ok, else 503 naming the failing ones.
#[utoipa::path(
    get, path = "/health",
    responses(
        (status = 200, description = "Every check ok: `{\"status\": \"ok\", \"checks\": {...}}`"),
        (status = 503, description = "A check failed; `checks` names it"),
    )
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "health"))]
pub async fn health(State(health): State<Arc<Health>>) -> (StatusCode, Json<Value>) {
    let checks = health.check_shared().await;
    let healthy = checks.iter().all(|(_, r)| r.is_ok());
    let body: serde_json::Map<String, Value> = checks
        .iter()
        .map(|(name, r)| {
            if let Err(e) = r {
                tracing::warn!(check = name, error = %e, "health check failed");
            }
            (
                name.to_string(),
                json!(if r.is_ok() { "ok" } else { "failing" }),
            )
        })
        .collect();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"status": if healthy { "ok" } else { "degraded" }, "checks": body})),
    )
}

/// The deep check as a readiness probe: the same answer as `/health`.
#[utoipa::path(
    get, path = "/readyz",
    responses(
        (status = 200, description = "Every check ok, as `/health`"),
        (status = 503, description = "A check failed; `checks` names it"),
    )
)]
pub async fn readyz(state: State<Arc<Health>>) -> (StatusCode, Json<Value>) {
    health(state).await
}

/// 200 while the process serves requests; touches no backend, so a
/// database outage does not restart every replica.
#[utoipa::path(
    get, path = "/livez",
    responses((status = 200, description = "`{\"status\": \"ok\"}`"))
)]
pub async fn livez() -> Json<Value> {
    Json(json!({"status": "ok"}))
}
