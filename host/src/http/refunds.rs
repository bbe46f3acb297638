//! `/api/v1/payments/{id}/refunds` and `/api/v1/refunds/{refund_id}`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{Access, Target, authenticate};
use super::error::{ApiError, FieldError, current_request_id};
#[allow(unused_imports)] // named by the OpenAPI annotations
use super::openapi::{ErrorBody, RefundBody, RefundList};
use super::payments::{idempotency_header, money, payment_id};
use crate::ids::RefundId;
use crate::merchants::Merchants;
use crate::payments::Refused;
use crate::payments::create::PaymentsService;
use crate::payments::idempotency::fingerprint;
use crate::payments::refunds::{AskRefund, RefundError, RefundReason, create_refund};

/// `POST /api/v1/payments/{id}/refunds`.
#[utoipa::path(
    post, path = "/api/v1/payments/{id}/refunds", tag = "refunds",
    request_body(content = RefundBody, description = "Optional; an empty body refunds what is left"),
    params(
        ("id" = i64, Path, minimum = 1, description = "Payment id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Idempotency key"),
    ),
    responses(
        (status = 200, description = "The refund, `REFUND_PENDING` or `REFUND_SUCCEEDED` (or replayed: `Idempotent-Replayed: true`)", body = crate::payments::refunds::Refund),
        (status = 400, description = "`invalid_request`: `price` above what is left, finer than the currency, not above 0; `reason` unknown", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_api_key`", body = ErrorBody),
        (status = 403, description = "`forbidden` (read-only key, signed writes missing), `invalid_signature`, `signature_expired`", body = ErrorBody),
        (status = 404, description = "`not_found`, also for another merchant's payment", body = ErrorBody),
        (status = 409, description = "`payment_not_refundable`, `refunds_not_supported`, `idempotency_conflict`, `request_in_progress`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
        (status = 502, description = "`provider_error`: the provider refused; the refund is stored `REFUND_FAILED`", body = ErrorBody),
        (status = 503, description = "`provider_unavailable` (circuit open), `service_unavailable`", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "refunds.create", merchant_id = tracing::field::Empty, payment_id = tracing::field::Empty))]
pub async fn create(
    State(merchants): State<Arc<Merchants>>,
    State(payments): State<Arc<PaymentsService>>,
    target: Target,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let merchant = authenticate(&merchants, &headers, target.write(&body)).await?;
    let id = payment_id(&id)?;
    tracing::Span::current().record("payment_id", id.get());
    let value: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::malformed(format!("malformed JSON: {e}")))?
    };
    let ask = parse_refund(&value)?;
    let key = idempotency_header(&headers)?;
    // The payment is part of the request: one key for two payments'
    // refunds is a conflict, not a replay.
    let fingerprint = fingerprint(&json!({"payment_id": id, "body": value}));
    let request_id = current_request_id();
    let created = create_refund(
        &payments,
        &merchant,
        id,
        &ask,
        key.as_ref(),
        &fingerprint,
        &request_id,
    )
    .await?;
    let mut response = match created.refused {
        None => (StatusCode::OK, Json(json!(created.refund))).into_response(),
        Some(reason) => {
            let body = json!({
                "error": Refused::CODE,
                "message": format!("the provider refused the refund: {reason}"),
                "request_id": request_id,
                "refund": created.refund,
            });
            (StatusCode::BAD_GATEWAY, Json(body)).into_response()
        }
    };
    if created.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Validates a refund body, naming every bad field at once.
pub fn parse_refund(value: &Value) -> Result<AskRefund, ApiError> {
    let Some(obj) = value.as_object() else {
        return Err(ApiError::malformed("the body must be a JSON object"));
    };
    let mut errors = Vec::new();
    let price = match obj.get("price") {
        None | Some(Value::Null) => None,
        Some(_) => money(obj, "price", &mut errors),
    };
    let reason = match obj.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => RefundReason::parse(s).or_else(|| {
            errors.push(FieldError::new("reason", reasons()));
            None
        }),
        Some(_) => {
            errors.push(FieldError::new("reason", reasons()));
            None
        }
    };
    if errors.is_empty() {
        Ok(AskRefund { price, reason })
    } else {
        Err(ApiError::fields(errors))
    }
}

fn reasons() -> String {
    let names: Vec<&str> = RefundReason::ALL.iter().map(|r| r.as_str()).collect();
    format!("must be one of {}", names.join(", "))
}

/// `GET /api/v1/payments/{id}/refunds`.
#[utoipa::path(
    get, path = "/api/v1/payments/{id}/refunds", tag = "refunds",
    params(("id" = i64, Path, minimum = 1, description = "Payment id")),
    responses(
        (status = 200, description = "The payment's refunds, oldest first", body = RefundList),
        (status = 400, description = "`invalid_request` (id not a number)", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_api_key`", body = ErrorBody),
        (status = 404, description = "`not_found`, also for another merchant's payment", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "refunds.list", merchant_id = tracing::field::Empty, payment_id = tracing::field::Empty))]
pub async fn list(
    State(merchants): State<Arc<Merchants>>,
    State(payments): State<Arc<PaymentsService>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let merchant = authenticate(&merchants, &headers, Access::Read).await?;
    let id = payment_id(&id)?;
    tracing::Span::current().record("payment_id", id.get());
    let store = &payments.payments;
    let payment = store
        .get(merchant.id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let refunds = store.refunds_of(merchant.id, payment.payment_id).await?;
    Ok(Json(
        json!({"payment_id": payment.payment_id, "refunds": refunds}),
    ))
}

/// `GET /api/v1/refunds/{refund_id}`.
#[utoipa::path(
    get, path = "/api/v1/refunds/{refund_id}", tag = "refunds",
    params(("refund_id" = i64, Path, minimum = 1, description = "Refund id")),
    responses(
        (status = 200, description = "The refund", body = crate::payments::refunds::Refund),
        (status = 400, description = "`invalid_request` (id not a number)", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_api_key`", body = ErrorBody),
        (status = 404, description = "`not_found`, also for another merchant's refund", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "refunds.show", merchant_id = tracing::field::Empty, payment_id = tracing::field::Empty))]
pub async fn show(
    State(merchants): State<Arc<Merchants>>,
    State(payments): State<Arc<PaymentsService>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let merchant = authenticate(&merchants, &headers, Access::Read).await?;
    let id: RefundId = id
        .parse()
        .map_err(|e: crate::ids::InvalidId| ApiError::field("refund_id", e.to_string()))?;
    let refund = payments
        .payments
        .refund(merchant.id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(json!(refund)))
}

impl From<RefundError> for ApiError {
    fn from(e: RefundError) -> Self {
        match e {
            RefundError::NotFound => ApiError::NotFound,
            RefundError::NotRefundable(_) => ApiError::PaymentNotRefundable(e.to_string()),
            RefundError::NotSupported(_) => ApiError::RefundsNotSupported(e.to_string()),
            RefundError::Price(message) => ApiError::field("price", message),
            RefundError::IdempotencyConflict => ApiError::IdempotencyConflict,
            RefundError::RequestInProgress => ApiError::RequestInProgress,
            RefundError::CircuitOpen { retry_after } => ApiError::ProviderUnavailable {
                retry_after_secs: retry_after.as_secs_f64().ceil() as u64,
            },
            RefundError::CircuitUnknown | RefundError::PluginMissing(_) => {
                ApiError::ServiceUnavailable(e.to_string())
            }
            RefundError::Database(e) => e.into(),
        }
    }
}
