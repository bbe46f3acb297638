//! The operators' API, on its own listener (`PAYGATE_ADMIN_LISTEN`, loopback
//! by default) behind a bearer token (`PAYGATE_ADMIN_TOKEN`): the plugins
//! serving and the registry's versions, activation and rollback, merchants,
//! notifications across merchants, the audit log, and `/metrics` for
//! Prometheus.

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

use super::admin_console as console;
use super::admin_merchants as merchants;
use super::admin_notifications as notifications;
use super::admin_providers as providers;
use super::error::ApiError;
use crate::audit::AuditLog;
use crate::merchants::Merchants;
use crate::metrics::{Metrics, Scrape};
use crate::outbox::OutboxStore;
use crate::payments::create::PaymentsService;
use crate::plugins::{PluginSet, RegistrySource, Secret};

/// What the operators' routes work on, built once at start.
#[derive(Clone)]
pub struct Operations {
    pub plugins: Arc<PluginSet>,
    /// The merchants, shared with the merchant API (and its key cache).
    pub merchants: Arc<Merchants>,
    /// The provider aliases and their circuits.
    pub payments: Arc<PaymentsService>,
    /// Every admin action, in the logs database.
    pub audit: AuditLog,
    /// Who the audit log says acted: the admin token's fingerprint, set
    /// by [`router`].
    pub actor: String,
    /// The plugin registry served, when one is configured.
    pub registry: Option<RegistrySource>,
    /// For the outbox's figures in `/metrics`.
    pub outbox: OutboxStore,
    pub metrics: Arc<Metrics>,
}

/// The admin API's own OpenAPI document, at `/admin/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "paygate admin",
        description = "Operators' API of paygate, on the admin listener, every route behind \
                       `Authorization: Bearer <PAYGATE_ADMIN_TOKEN>`. Errors are the merchant API's.",
        version = "0.1.0"
    ),
    paths(
        list,
        activate,
        rollback,
        metrics,
        merchants::create,
        merchants::list,
        merchants::show,
        merchants::update,
        merchants::add_tokens,
        merchants::audit_log,
        providers::put,
        providers::show,
        providers::delete,
        notifications::list,
        notifications::replay,
        notifications::retry,
        console::providers,
        console::outbox,
    ),
    components(schemas(
        merchants::NewMerchantBody, merchants::MerchantUpdateBody, merchants::TokensBody,
        merchants::MerchantList, merchants::AuditList, crate::merchants::MerchantRecord,
        crate::merchants::Settings, crate::merchants::SubscriptionUse, crate::audit::AuditEntry,
        notifications::ReplayBody, notifications::QueuedCount, notifications::NotificationList,
        crate::outbox::Listed, crate::outbox::Attempt,
        providers::AccountBody, crate::merchants::AccountView,
        console::ProviderList, console::ProviderRow, crate::providers::CircuitView,
        crate::outbox::OutboxStats,
        super::openapi::ErrorBody, super::error::FieldError,
    )),
    modifiers(&AdminAuth),
    tags(
        (name = "plugins", description = "Plugins serving, the registry's versions, metrics"),
        (name = "merchants", description = "Merchants, their settings and subscriptions"),
        (name = "notifications", description = "Merchant notifications across merchants: dead letters and their replay"),
        (name = "audit", description = "What was done through this API")
    )
)]
pub struct AdminDoc;

struct AdminAuth;

impl utoipa::Modify for AdminAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

async fn admin_openapi() -> Json<utoipa::openapi::OpenApi> {
    use utoipa::OpenApi;
    Json(AdminDoc::openapi())
}

/// The admin routes, every one behind `token`, and the console's page,
/// which holds no data and asks for the token itself.
pub fn router(mut state: Operations, token: Secret) -> Router {
    state.actor = fingerprint(&token);
    let console = Router::new()
        .route("/console", get(console::page))
        .route("/console/console.js", get(console::script))
        .route("/console/console.css", get(console::style));
    let api = Router::new()
        .route(
            "/admin/v1/merchants",
            post(merchants::create).get(merchants::list),
        )
        .route(
            "/admin/v1/merchants/{id}",
            get(merchants::show).patch(merchants::update),
        )
        .route(
            "/admin/v1/merchants/{id}/subscriptions/{sid}/tokens",
            post(merchants::add_tokens),
        )
        .route(
            "/admin/v1/merchants/{id}/providers/{alias}",
            get(providers::show)
                .put(providers::put)
                .delete(providers::delete),
        )
        .route("/admin/v1/providers", get(console::providers))
        .route("/admin/v1/outbox", get(console::outbox))
        .route("/admin/v1/notifications", get(notifications::list))
        .route("/admin/v1/notifications/retry", post(notifications::replay))
        .route(
            "/admin/v1/notifications/{id}/retry",
            post(notifications::retry),
        )
        .route("/admin/v1/audit", get(merchants::audit_log))
        .route("/admin/openapi.json", get(admin_openapi))
        .route("/admin/v1/plugins", get(list))
        .route("/admin/v1/plugins/{name}/activate", post(activate))
        .route("/admin/v1/plugins/{name}/rollback", post(rollback))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::NotFound })
        .layer(axum::middleware::from_fn(super::middleware::body_guard))
        .layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let token = token.clone();
                async move { bearer(&token, request, next).await }
            },
        ))
        .layer(super::access_log::layer())
        .with_state(state);
    console.merge(api)
}

/// `token:` and the first 12 hex digits of the token's SHA-256: names the
/// admin token in the audit log without showing it.
pub fn fingerprint(token: &Secret) -> String {
    let digest = sha2::Sha256::digest(token.expose().as_bytes());
    format!("token:{}", &hex::encode(digest)[..12])
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
#[utoipa::path(
    get, path = "/admin/v1/plugins", tag = "plugins",
    responses(
        (status = 200, description = "`{\"plugins\": [what serves], \"registry\": [each plugin's active and published versions]}`", body = Object),
        (status = 401, description = "`unauthorized`: no or another admin token", body = super::openapi::ErrorBody),
        (status = 503, description = "`service_unavailable`: the registry could not be read", body = super::openapi::ErrorBody),
    ),
    security(("admin_token" = []))
)]
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
                           "digest": p.digest.map(|d| d.to_string()), "versions": p.versions,
                           "signer": p.signer.map(|k| k.to_string())})
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
#[utoipa::path(
    post, path = "/admin/v1/plugins/{name}/activate", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    request_body(content = Object, description = "`{\"version\": \"1.2.0\"}`"),
    responses(
        (status = 200, description = "`{plugin, from, to, revision, serving, refused}`: activated and swapped in here", body = Object),
        (status = 400, description = "`invalid_request`: no `version`", body = super::openapi::ErrorBody),
        (status = 401, description = "`unauthorized`: no or another admin token", body = super::openapi::ErrorBody),
        (status = 404, description = "`not_found`: no such plugin or version", body = super::openapi::ErrorBody),
        (status = 409, description = "`registry_refused`", body = super::openapi::ErrorBody),
    ),
    security(("admin_token" = []))
)]
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
    change(&ops, "plugin.activate", move |registry| {
        registry.activate(&name, &version)
    })
    .await
}

/// `POST /admin/v1/plugins/{name}/rollback`.
#[utoipa::path(
    post, path = "/admin/v1/plugins/{name}/rollback", tag = "plugins",
    params(("name" = String, Path, description = "Plugin name")),
    responses(
        (status = 200, description = "`{plugin, from, to, revision, serving, refused}`: back to the previous active version", body = Object),
        (status = 401, description = "`unauthorized`: no or another admin token", body = super::openapi::ErrorBody),
        (status = 404, description = "`not_found`: no such plugin", body = super::openapi::ErrorBody),
        (status = 409, description = "`registry_refused`: nothing to roll back to, or no registry", body = super::openapi::ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "admin.rollback"))]
async fn rollback(
    State(ops): State<Operations>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    change(&ops, "plugin.rollback", move |registry| {
        registry.rollback(&name)
    })
    .await
}

/// Applies an activation to the registry, then swaps it in here at once
/// (other hosts follow the manifest within a poll interval), and writes it
/// to the audit log as `action`.
async fn change(
    ops: &Operations,
    action: &str,
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
    let audited = crate::audit::Action {
        actor: &ops.actor,
        action,
        target: format!("plugin:{}", done.name),
        before: Some(json!({"version": done.from})),
        after: Some(json!({"version": done.to, "revision": done.revision, "serving": serving})),
    };
    merchants::audit(ops, audited).await?;
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

/// `/metrics` alone, without a token: for a Prometheus scraper on a
/// listener of its own (`PAYGATE_METRICS_LISTEN`), kept off the public one.
pub fn metrics_router(state: Operations) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::NotFound })
        .layer(super::access_log::layer())
        .with_state(state)
}

/// Every metric, in the OpenMetrics text format.
#[utoipa::path(
    get, path = "/metrics", tag = "plugins",
    responses(
        (status = 200, description = "OpenMetrics text format (Prometheus reads it)", content_type = "application/openmetrics-text", body = String),
        (status = 401, description = "`unauthorized`: no or another admin token", body = super::openapi::ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "admin.metrics"))]
async fn metrics(State(ops): State<Operations>) -> Response {
    let mut scrape = Scrape::new(&ops.plugins).with_outbox(ops.outbox.stats().await.ok());
    // Without the providers' list the circuits are left out, not guessed.
    for binding in ops.payments.providers.list().await.unwrap_or_default() {
        let circuit = ops.payments.circuit.inspect(&binding.alias).await;
        scrape = scrape.with_circuit(binding.alias, circuit.state);
    }
    let body = ops.metrics.render(scrape);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        body,
    )
        .into_response()
}
