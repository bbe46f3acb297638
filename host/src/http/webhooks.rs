//! `POST /api/v1/payments/webhook` (the internal scheme) and
//! `POST /api/v1/payments/webhook/{alias}` (the alias's verifier plugin).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, OriginalUri, Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::error::{ApiError, current_request_id};
#[allow(unused_imports)] // named by the OpenAPI annotations
use super::openapi::ErrorBody;
use super::rate_limit::client_ip;
use crate::payments::webhook::{Applied, RefundApplied};
use crate::webhooks::{Delivery, EventOutcome, Route, Webhooks};

/// The internal scheme's route: verified by the internal verifier plugin.
#[utoipa::path(
    post, path = "/api/v1/payments/webhook", tag = "webhooks",
    description = "Provider webhook, internal scheme: `x-internal-signature` (or `X-Provider-Signature`) = hex \
                   HMAC-SHA256 of the raw body with PAYGATE_INTERNAL_WEBHOOK_SECRET; body `{\"payment_id\", \"status\": \"finished\"|\"failed\"}`, \
                   or for a refund `{\"refund_id\", \"status\": \"succeeded\"|\"failed\"}`; either may add the provider's `reference`.",
    responses(
        (status = 200, description = "`{\"status\": \"ok\", \"result\": {\"message\", \"payment_id\", \"status\"}}`; \
                                      for a refund event `{\"message\", \"refund_id\", \"status\"}`"),
        (status = 400, description = "`invalid_request`: unknown status value or malformed body", body = ErrorBody),
        (status = 403, description = "`invalid_signature`, `signature_expired`", body = ErrorBody),
        (status = 409, description = "`request_in_progress`: a refund event came before the provider answered the refund request; send it again", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the client's or the alias's webhook limit; `Retry-After`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: verifier or database unavailable", body = ErrorBody),
    )
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "webhooks.internal", merchant_id = tracing::field::Empty, payment_id = tracing::field::Empty))]
pub async fn internal(
    State(webhooks): State<Arc<Webhooks>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    receive(
        &webhooks,
        Route::Internal,
        peer,
        uri.path(),
        &headers,
        &body,
    )
    .await
}

/// An alias's route: verified by the verifier plugin bound to the alias.
#[utoipa::path(
    post, path = "/api/v1/payments/webhook/{alias}", tag = "webhooks",
    description = "Provider webhook verified by the alias's verifier plugin, e.g. `Stripe-Signature` for `stripe`.",
    params(("alias" = String, Path, description = "Provider alias")),
    responses(
        (status = 200, description = "`{\"status\": \"ok\", \"result\": {\"message\", \"payment_id\", \"status\"}}`; \
                                      for a refund event `{\"message\", \"refund_id\", \"status\"}`"),
        (status = 400, description = "`invalid_request`: unknown status value or malformed body", body = ErrorBody),
        (status = 403, description = "`invalid_signature`, `signature_expired`", body = ErrorBody),
        (status = 404, description = "`not_found`: no verifier is bound to the alias", body = ErrorBody),
        (status = 409, description = "`request_in_progress`: a refund event came before the provider answered the refund request; send it again", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: the client's or the alias's webhook limit; `Retry-After`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: verifier or database unavailable", body = ErrorBody),
    )
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "webhooks.for_alias", merchant_id = tracing::field::Empty, payment_id = tracing::field::Empty))]
pub async fn for_alias(
    State(webhooks): State<Arc<Webhooks>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    OriginalUri(uri): OriginalUri,
    Path(alias): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let route = Route::Alias(&alias);
    receive(&webhooks, route, peer, uri.path(), &headers, &body).await
}

/// The WIT `webhook-request` headers: every value of every header, in
/// order, names in lower case as HTTP parsing leaves them; values are
/// decoded lossily, since a verifier compares text and a byte that is not
/// UTF-8 can only make a signature fail.
pub fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

async fn receive(
    webhooks: &Webhooks,
    route: Route<'_>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<Value>, ApiError> {
    let request_id = current_request_id();
    // Served without connect info (an embedder's router), no IP is counted.
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    let delivery = Delivery {
        request_id: &request_id,
        client_ip: client_ip(peer, headers, &webhooks.trusted_proxies),
        path,
        headers: header_pairs(headers),
        body,
    };
    let outcomes = webhooks.receive(route, delivery).await?;
    // The answer names what the last event did.
    let last = match outcomes.last() {
        None => json!({"message": "ignored", "payment_id": null, "status": null}),
        Some(EventOutcome::Payment { applied, named_id }) => match applied {
            Applied::Updated {
                payment_id, status, ..
            } => {
                json!({"message": "payment updated", "payment_id": payment_id, "status": status})
            }
            Applied::AlreadyProcessed { payment_id, status } => {
                json!({"message": "already processed", "payment_id": payment_id, "status": status})
            }
            Applied::AmountMismatch { payment_id, status } => {
                json!({"message": "amount mismatch", "payment_id": payment_id, "status": status})
            }
            Applied::NotFound => {
                json!({"message": "payment not found", "payment_id": named_id, "status": null})
            }
        },
        Some(EventOutcome::Refund { applied, named_id }) => match applied {
            RefundApplied::Updated { refund_id, status } => {
                json!({"message": "refund updated", "refund_id": refund_id, "status": status})
            }
            RefundApplied::AlreadyProcessed { refund_id, status } => {
                json!({"message": "already processed", "refund_id": refund_id, "status": status})
            }
            RefundApplied::AmountMismatch { refund_id, status } => {
                json!({"message": "amount mismatch", "refund_id": refund_id, "status": status})
            }
            RefundApplied::NotFound => {
                json!({"message": "refund not found", "refund_id": named_id, "status": null})
            }
            // `receive` answers these with an error; kept for completeness.
            RefundApplied::Unanswered { refund_id } => {
                json!({"message": "refund not answered yet", "refund_id": refund_id, "status": "REFUND_PENDING"})
            }
        },
    };
    Ok(Json(json!({"status": "ok", "result": last})))
}
