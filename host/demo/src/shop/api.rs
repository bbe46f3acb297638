//! The shop's JSON API: the Orders API of the original system
//! (`/api/v1/orders`) and the callback paygate notifies
//! (`/api/v1/notifications`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ShopError;
use super::notifications::{Notification, verify};
use super::order::{Input, NewOrder, OrderStatus};
use super::store::Applied;
use super::{ShopState, place_order};
use paygate::OrderId;
use paygate::http::middleware::is_json;

/// `POST /api/v1/orders` `{"product_id", "amount", "alias"}` (amount is the
/// quantity) → 201 `{"order_id", "status", "payment_id", "payment_url"}`.
pub(super) async fn create_order(
    State(state): State<ShopState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ShopError> {
    if !is_json(headers.get(header::CONTENT_TYPE)) {
        return Err(ShopError::UnsupportedMediaType);
    }
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ShopError::Malformed(format!("malformed JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(ShopError::Malformed(
            "the body must be a JSON object".into(),
        ));
    };
    let new = NewOrder::parse(
        Input::json(object, "product_id"),
        Input::json(object, "amount"),
        Input::json(object, "alias"),
        false,
    )
    .map_err(ShopError::InvalidFields)?;
    let order = place_order(&state, new).await?;
    let body = json!({
        "order_id": order.order_id,
        "status": order.status,
        "payment_id": order.payment_id,
        "payment_url": order.payment_url,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /api/v1/orders` → `{"orders": [...]}`, newest first.
pub(super) async fn list_orders(State(state): State<ShopState>) -> Result<Response, ShopError> {
    let orders = state.inner.orders.list().await?;
    Ok(Json(json!({ "orders": orders })).into_response())
}

/// `GET /api/v1/orders/{id}`.
pub(super) async fn show_order(
    State(state): State<ShopState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, ShopError> {
    let Ok(Path(id)) = id else {
        return Err(ShopError::NotFound);
    };
    match state.inner.orders.get(OrderId::new(id)).await? {
        Some(order) => Ok(Json(order).into_response()),
        None => Err(ShopError::NotFound),
    }
}

/// `POST /api/v1/orders/{id}/refund`: gives a finished order's money back.
pub(super) async fn refund_order(
    State(state): State<ShopState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, ShopError> {
    let Ok(Path(id)) = id else {
        return Err(ShopError::NotFound);
    };
    let order = super::refund_order(&state, OrderId::new(id)).await?;
    Ok(Json(order).into_response())
}

/// `POST /api/v1/notifications`: paygate's signed notification of a
/// payment's end. Nothing is read from an unverified body.
///
/// Answers: 200 when acted on, when already acted on (same `webhook-id`),
/// and when there is nothing to act on (unknown order or event type, order
/// already settled), so paygate stops retrying; 401 for a bad or stale
/// signature; 409 `payment_mismatch` when the order was paid by another
/// payment: never expected, so it is not recorded and keeps failing,
/// which paygate shows as a failed delivery for someone to look at.
pub(super) async fn notification(
    State(state): State<ShopState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ShopError> {
    let now = chrono::Utc::now().timestamp();
    let webhook_id = verify(&state.inner.webhook_key, &headers, &body, now)?;
    let note: Notification = serde_json::from_slice(&body)
        .map_err(|e| ShopError::Malformed(format!("not a payment notification: {e}")))?;
    // The shop only ever refunds an order whole, so a refund that
    // succeeded is the order's money given back.
    let outcome = match note.event_type.as_str() {
        "payment.finished" => (OrderStatus::Pending, OrderStatus::Finished),
        "payment.failed" => (OrderStatus::Pending, OrderStatus::Failed),
        "refund.succeeded" => (OrderStatus::Finished, OrderStatus::Refunded),
        other => {
            tracing::info!(%webhook_id, event_type = other, "demo shop ignores this notification type");
            return Ok(answer("ignored", note.order_id, None));
        }
    };
    let applied = state
        .inner
        .orders
        .apply_notification(
            &webhook_id,
            &note.event_type,
            note.order_id,
            note.payment_id,
            outcome,
        )
        .await?;
    tracing::info!(%webhook_id, order_id = note.order_id.get(), result = ?applied, "demo shop notification");
    Ok(match applied {
        Applied::Updated(status) => answer("updated", note.order_id, Some(status)),
        Applied::Duplicate => answer("duplicate", note.order_id, None),
        Applied::Settled(status) => answer("already_settled", note.order_id, Some(status)),
        Applied::UnknownOrder => answer("unknown_order", note.order_id, None),
        Applied::PaymentMismatch { order_payment_id } => {
            return Err(ShopError::PaymentMismatch {
                order_id: note.order_id,
                ours: order_payment_id,
                theirs: note.payment_id,
            });
        }
    })
}

/// A 200 saying what a notification did.
fn answer(result: &str, order_id: OrderId, status: Option<OrderStatus>) -> Response {
    Json(json!({"result": result, "order_id": order_id, "order_status": status})).into_response()
}
