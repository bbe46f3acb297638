//! The HTTP router. For now: health, which reports the plugin runtime.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::plugins::PluginSet;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub plugins: Arc<PluginSet>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/admin/v1/plugins", get(list_plugins))
        .with_state(state)
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let plugins = state.plugins.list();
    let serving = plugins.iter().filter(|p| p.version.is_some()).count();
    let (status, plugins_check) = if serving > 0 {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no plugins loaded")
    };
    (
        status,
        Json(
            json!({"status": if status.is_success() { "ok" } else { "degraded" }, "checks": {"plugins": plugins_check}}),
        ),
    )
}

async fn list_plugins(State(state): State<AppState>) -> impl IntoResponse {
    Json(json!({ "plugins": state.plugins.list() }))
}
