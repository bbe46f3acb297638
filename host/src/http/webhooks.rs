//! `POST /api/v1/payments/webhook` (the internal scheme) and
//! `POST /api/v1/payments/webhook/{alias}` (the alias's verifier plugin).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, current_request_id};
#[allow(unused_imports)] // named by the OpenAPI annotations
use super::openapi::ErrorBody;
use crate::payments::PaymentStatus;
use crate::payments::webhook::{Applied, PaymentLookup};
use crate::plugins::bindings::{PaymentRef, VerifyError, WebhookRequest};
use crate::webhook_log::Inbound;

/// The internal scheme's route: verified by the internal verifier plugin.
#[utoipa::path(
    post, path = "/api/v1/payments/webhook", tag = "webhooks",
    description = "Provider webhook, internal scheme: `x-internal-signature` (or `X-Provider-Signature`) = hex \
                   HMAC-SHA256 of the raw body with INTERNAL_WEBHOOK_SECRET; body `{\"payment_id\", \"status\": \"finished\"|\"failed\"}`.",
    responses(
        (status = 200, description = "`{\"status\": \"ok\", \"result\": {\"message\", \"payment_id\", \"status\"}}`"),
        (status = 400, description = "`invalid_request`: unknown status value or malformed body", body = ErrorBody),
        (status = 403, description = "`invalid_signature`, `signature_expired`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: verifier or database unavailable", body = ErrorBody),
    )
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "webhooks.internal", merchant_id = tracing::field::Empty, payment_id = tracing::field::Empty))]
pub async fn internal(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let verifier = state.gateway.internal_verifier.clone();
    handle(&state, uri.path(), None, &verifier, &headers, &body).await
}

/// An alias's route: verified by the verifier plugin bound to the alias.
#[utoipa::path(
    post, path = "/api/v1/payments/webhook/{alias}", tag = "webhooks",
    description = "Provider webhook verified by the alias's verifier plugin, e.g. `Stripe-Signature` for `stripe`.",
    params(("alias" = String, Path, description = "Provider alias")),
    responses(
        (status = 200, description = "`{\"status\": \"ok\", \"result\": {\"message\", \"payment_id\", \"status\"}}`"),
        (status = 400, description = "`invalid_request`: unknown status value or malformed body", body = ErrorBody),
        (status = 403, description = "`invalid_signature`, `signature_expired`", body = ErrorBody),
        (status = 404, description = "`not_found`: no verifier is bound to the alias", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: verifier or database unavailable", body = ErrorBody),
    )
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "webhooks.for_alias", merchant_id = tracing::field::Empty, payment_id = tracing::field::Empty))]
pub async fn for_alias(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Path(alias): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let binding = state.gateway.providers.get(&alias).await?;
    let Some(verifier) = binding.and_then(|b| b.verifier_plugin) else {
        return Err(ApiError::NotFound);
    };
    handle(&state, uri.path(), Some(&alias), &verifier, &headers, &body).await
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

async fn handle(
    state: &AppState,
    path: &str,
    alias: Option<&str>,
    verifier: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<Value>, ApiError> {
    let gw = &state.gateway;
    let request_id = current_request_id();
    let header_pairs = header_pairs(headers);
    let request = WebhookRequest {
        path: path.to_owned(),
        headers: header_pairs.clone(),
        body: body.to_vec(),
    };
    let outcome = match gw.plugins.require(verifier) {
        Ok(plugin) => plugin.verify(&request_id, &request).await,
        Err(e) => Err(e),
    };
    let (verdict, detail, result): (&str, Option<String>, Result<_, ApiError>) = match outcome {
        Ok(Ok(events)) => ("valid", None, Ok(events)),
        Ok(Err(VerifyError::InvalidSignature(d))) => (
            "invalid_signature",
            Some(d),
            Err(ApiError::InvalidSignature("invalid signature")),
        ),
        Ok(Err(VerifyError::SignatureExpired(d))) => (
            "signature_expired",
            Some(d),
            Err(ApiError::SignatureExpired),
        ),
        Ok(Err(VerifyError::Malformed(d))) => {
            ("malformed", Some(d.clone()), Err(ApiError::malformed(d)))
        }
        Ok(Err(VerifyError::Misconfigured(d))) => (
            "misconfigured",
            Some(d),
            Err(ApiError::ServiceUnavailable(format!(
                "verifier {verifier} is misconfigured"
            ))),
        ),
        Err(e) => (
            "verifier_failed",
            Some(e.to_string()),
            Err(ApiError::ServiceUnavailable(e.to_string())),
        ),
    };
    let record = Inbound {
        request_id: &request_id,
        path,
        alias,
        headers: &header_pairs,
        body,
        verdict,
        detail: detail.as_deref(),
    };
    // A webhook that cannot be recorded is not applied: the provider retries.
    gw.webhook_log.record(&record).await?;
    let events = result?;

    let aliases: Vec<String> = gw
        .providers
        .list()
        .await?
        .into_iter()
        .filter(|b| b.verifier_plugin.as_deref() == Some(verifier))
        .map(|b| b.alias)
        .collect();
    let mut last = json!({"message": "ignored", "payment_id": null, "status": null});
    for event in &events {
        let status = PaymentStatus::from(event.status);
        let lookup = PaymentLookup::from(&event.payment);
        let applied = gw
            .payments
            .apply_provider_event(
                lookup,
                &aliases,
                status,
                &event.provider_type,
                &event.event_id,
            )
            .await?;
        last = match applied {
            Applied::Updated { payment_id, status } => {
                json!({"message": "payment updated", "payment_id": payment_id, "status": status})
            }
            Applied::AlreadyProcessed { payment_id, status } => {
                json!({"message": "already processed", "payment_id": payment_id, "status": status})
            }
            Applied::NotFound => {
                let id = match &event.payment {
                    PaymentRef::PaymentId(id) => json!(id),
                    PaymentRef::ProviderReference(_) => Value::Null,
                };
                json!({"message": "payment not found", "payment_id": id, "status": null})
            }
        };
    }
    Ok(Json(json!({"status": "ok", "result": last})))
}
