//! A payment's merchant notifications: their attempts, and a manual retry
//! of a failed one.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::auth::{Access, Target};
use super::error::ApiError;
use super::openapi::{ErrorBody, Notifications, Queued};
use super::payments::own_payment;
use crate::merchants::Merchants;
use crate::outbox::OutboxStore;
use crate::payments::create::PaymentsService;

/// `GET /api/v1/payments/{id}/notifications`.
#[utoipa::path(
    get, path = "/api/v1/payments/{id}/notifications", tag = "payments",
    params(("id" = i64, Path, description = "Payment id")),
    responses(
        (status = 200, description = "The payment's notifications and every delivery attempt", body = Notifications),
        (status = 400, description = "`invalid_request` (id not a number)", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_api_key`", body = ErrorBody),
        (status = 404, description = "`not_found`, also for another merchant's payment", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "notifications.list", merchant_id = tracing::field::Empty, payment_id = tracing::field::Empty))]
pub async fn list(
    State(merchants): State<Arc<Merchants>>,
    State(payments): State<Arc<PaymentsService>>,
    State(outbox): State<OutboxStore>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let services = (&*merchants, &payments.payments);
    let payment = own_payment(services, &headers, &id, Access::Read).await?;
    let notifications = outbox.notifications_of(payment.payment_id).await?;
    Ok(Json(
        json!({"payment_id": payment.payment_id, "notifications": notifications}),
    ))
}

/// `POST /api/v1/payments/{id}/notifications/retry`.
#[utoipa::path(
    post, path = "/api/v1/payments/{id}/notifications/retry", tag = "payments",
    params(("id" = i64, Path, description = "Payment id")),
    responses(
        (status = 202, description = "The failed notification is queued for one more attempt, same `event_id`", body = Queued),
        (status = 400, description = "`invalid_request` (id not a number)", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_api_key`", body = ErrorBody),
        (status = 403, description = "`forbidden` (read-only key, unsigned write)", body = ErrorBody),
        (status = 404, description = "`not_found`, also for another merchant's payment", body = ErrorBody),
        (status = 409, description = "`nothing_to_retry`: no notification of the payment has failed", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "notifications.retry", merchant_id = tracing::field::Empty, payment_id = tracing::field::Empty))]
pub async fn retry(
    State(merchants): State<Arc<Merchants>>,
    State(payments): State<Arc<PaymentsService>>,
    State(outbox): State<OutboxStore>,
    target: Target,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let services = (&*merchants, &payments.payments);
    let payment = own_payment(services, &headers, &id, target.write(&body)).await?;
    let queued = outbox.retry_failed(payment.payment_id).await?;
    if queued == 0 {
        return Err(ApiError::NothingToRetry(
            "no notification of this payment has failed",
        ));
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "queued"}))))
}
