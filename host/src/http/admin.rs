//! The operators' API, on its own listener (`PAYGATE_ADMIN_LISTEN`, loopback
//! by default) behind a bearer token (`PAYGATE_ADMIN_TOKEN`): the plugins
//! serving and the registry's versions, activation and rollback, and
//! `/metrics` for Prometheus.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use paygate_plugin_registry::RegistryError;
use serde_json::{Value, json};
use sha2::Digest;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::metrics::Metrics;
use crate::outbox::OutboxStore;
use crate::plugins::{PluginSet, RegistrySource, Secret};

/// What the operators' routes work on, built once at start.
#[derive(Clone)]
pub struct Operations {
    pub plugins: Arc<PluginSet>,
    /// The plugin registry served, when one is configured.
    pub registry: Option<RegistrySource>,
    /// For the outbox's figures in `/metrics`.
    pub outbox: OutboxStore,
    pub metrics: Arc<Metrics>,
}

/// The admin routes, every one behind `token`.
pub fn router(state: Operations, token: Secret) -> Router {
    Router::new()
        .route("/admin/v1/plugins", get(list))
        .route("/admin/v1/plugins/{name}/activate", post(activate))
        .route("/admin/v1/plugins/{name}/rollback", post(rollback))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::NotFound })
        .layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let token = token.clone();
                async move { bearer(&token, request, next).await }
            },
        ))
        .with_state(state)
}

/// `Authorization: Bearer <token>`, compared in constant time: as SHA-256
/// digests, so not even the token's length shows in the time taken.
async fn bearer(token: &Secret, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let digest = |text: &str| sha2::Sha256::digest(text.as_bytes());
    if bool::from(digest(given).ct_eq(&digest(token.expose()))) {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// The plugins serving (version, digest, calls, errors, last refusal) and,
/// with a registry, each plugin's active and published versions.
#[tracing::instrument(name = "handler", skip_all, fields(route = "admin.list"))]
async fn list(State(ops): State<Operations>) -> Result<Json<Value>, ApiError> {
    let registry = match &ops.registry {
        Some(source) => {
            let registry = source.registry().clone();
            let summaries = tokio::task::spawn_blocking(move || registry.list())
                .await
                .map_err(task_failed)?
                .map_err(registry_error)?;
            summaries
                .into_iter()
                .map(|p| {
                    json!({"name": p.name, "kind": p.kind.to_string(), "active": p.active,
                           "digest": p.digest.map(|d| d.to_string()), "versions": p.versions})
                })
                .collect()
        }
        None => Vec::new(),
    };
    Ok(Json(
        json!({"plugins": ops.plugins.list(), "registry": registry}),
    ))
}

/// `POST /admin/v1/plugins/{name}/activate` `{"version": "1.2.0"}`.
#[tracing::instrument(name = "handler", skip_all, fields(route = "admin.activate"))]
async fn activate(
    State(ops): State<Operations>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let version = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .ok_or_else(|| ApiError::field("version", "give the version to activate"))?;
    change(&ops, move |registry| registry.activate(&name, &version)).await
}

/// `POST /admin/v1/plugins/{name}/rollback`.
#[tracing::instrument(name = "handler", skip_all, fields(route = "admin.rollback"))]
async fn rollback(
    State(ops): State<Operations>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    change(&ops, move |registry| registry.rollback(&name)).await
}

/// Applies an activation to the registry, then swaps it in here at once
/// (other hosts follow the manifest within a poll interval).
async fn change(
    ops: &Operations,
    apply: impl FnOnce(
        &paygate_plugin_registry::Registry,
    ) -> Result<paygate_plugin_registry::Activation, RegistryError>
    + Send
    + 'static,
) -> Result<Json<Value>, ApiError> {
    let source = ops.registry.clone().ok_or_else(|| {
        ApiError::RegistryRefused("no plugin registry is configured (PAYGATE_REGISTRY_DIR)".into())
    })?;
    let plugins = ops.plugins.clone();
    let (done, refused) = tokio::task::spawn_blocking(move || {
        let done = apply(source.registry())?;
        let refused = source.sync(&plugins)?;
        Ok::<_, RegistryError>((done, refused))
    })
    .await
    .map_err(task_failed)?
    .map_err(registry_error)?;
    let serving = ops.plugins.get(&done.name).map(|p| p.ctx.version.clone());
    Ok(Json(json!({
        "plugin": done.name, "from": done.from, "to": done.to, "revision": done.revision,
        "serving": serving,
        "refused": refused.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })))
}

fn registry_error(e: RegistryError) -> ApiError {
    let message = e.to_string();
    match e {
        RegistryError::UnknownPlugin { .. } | RegistryError::UnknownVersion { .. } => {
            ApiError::NoSuchPlugin(message)
        }
        RegistryError::Io { .. } => ApiError::ServiceUnavailable(message),
        _ => ApiError::RegistryRefused(message),
    }
}

fn task_failed(e: tokio::task::JoinError) -> ApiError {
    ApiError::ServiceUnavailable(format!("registry task: {e}"))
}

/// Prometheus text format.
#[tracing::instrument(name = "handler", skip_all, fields(route = "admin.metrics"))]
async fn metrics(State(ops): State<Operations>) -> Response {
    let outbox = ops.outbox.stats().await.ok();
    let body = ops.metrics.render(&ops.plugins, outbox.as_ref());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        body,
    )
        .into_response()
}
