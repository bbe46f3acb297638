//! The shop's one error type: a status and a stable code for each way a
//! request can fail, as JSON for the API (pages render it as HTML).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::client::Refusal;
use super::notifications::Refused;
use super::order::FieldError;
use paygate::{OrderId, PaymentId};

/// Every way a request to the shop can fail.
#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    /// The body as a whole is unreadable, e.g. malformed JSON.
    #[error("{0}")]
    Malformed(String),
    /// Readable, but these fields are wrong.
    #[error("{}", describe(.0))]
    InvalidFields(Vec<FieldError>),
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("not found")]
    NotFound,
    #[error("the notification's signature does not check out")]
    InvalidSignature,
    #[error("the notification's timestamp is more than 5 minutes away from now")]
    SignatureExpired,
    #[error("order {order_id} is paid by payment {ours}, not by payment {theirs}")]
    PaymentMismatch {
        order_id: OrderId,
        ours: PaymentId,
        theirs: PaymentId,
    },
    #[error("paygate did not create the payment: {}", .refusal.message)]
    PaymentFailed { order_id: OrderId, refusal: Refusal },
    #[error("order {0} is not paid, so there is nothing to refund")]
    NotRefundable(OrderId),
    #[error("paygate did not refund the order: {}", .refusal.message)]
    RefundFailed { order_id: OrderId, refusal: Refusal },
    #[error("the database is unavailable: {0}")]
    Database(#[from] sqlx::Error),
}

impl ShopError {
    pub fn status(&self) -> StatusCode {
        match self {
            ShopError::Malformed(_) | ShopError::InvalidFields(_) => StatusCode::BAD_REQUEST,
            ShopError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ShopError::NotFound => StatusCode::NOT_FOUND,
            ShopError::InvalidSignature | ShopError::SignatureExpired => StatusCode::UNAUTHORIZED,
            ShopError::PaymentMismatch { .. } => StatusCode::CONFLICT,
            ShopError::PaymentFailed { .. } | ShopError::RefundFailed { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ShopError::NotRefundable(_) => StatusCode::CONFLICT,
            ShopError::Database(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ShopError::Malformed(_) | ShopError::InvalidFields(_) => "invalid_request",
            ShopError::UnsupportedMediaType => "unsupported_media_type",
            ShopError::NotFound => "not_found",
            ShopError::InvalidSignature => "invalid_signature",
            ShopError::SignatureExpired => "signature_expired",
            ShopError::PaymentMismatch { .. } => "payment_mismatch",
            ShopError::PaymentFailed { .. } => "payment_failed",
            ShopError::NotRefundable(_) => "order_not_refundable",
            ShopError::RefundFailed { .. } => "refund_failed",
            ShopError::Database(_) => "service_unavailable",
        }
    }

    /// What the client is told; a database failure's cause stays in the log.
    pub fn message(&self) -> String {
        match self {
            ShopError::Database(_) => "the shop's database is unavailable; retry later".into(),
            other => other.to_string(),
        }
    }

    fn body(&self) -> Value {
        let mut body = json!({"error": self.code(), "message": self.message()});
        match self {
            ShopError::InvalidFields(fields) => body["fields"] = json!(fields),
            ShopError::PaymentFailed { order_id, refusal }
            | ShopError::RefundFailed { order_id, refusal } => {
                body["order_id"] = json!(order_id);
                body["gateway_error"] = json!(refusal.code);
            }
            _ => {}
        }
        body
    }

    /// Logs the failure: an error for ours, a line for the client's.
    pub fn log(&self) {
        if self.status().is_server_error() {
            tracing::error!(code = self.code(), error = %self, "demo shop request failed");
        } else {
            tracing::info!(code = self.code(), error = %self, "demo shop request refused");
        }
    }
}

/// `amount must be …; alias is required`.
fn describe(fields: &[FieldError]) -> String {
    let each: Vec<_> = fields
        .iter()
        .map(|f| format!("{} {}", f.field, f.message))
        .collect();
    each.join("; ")
}

impl From<Refused> for ShopError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::InvalidSignature => ShopError::InvalidSignature,
            Refused::Expired => ShopError::SignatureExpired,
        }
    }
}

impl IntoResponse for ShopError {
    fn into_response(self) -> Response {
        self.log();
        (self.status(), Json(self.body())).into_response()
    }
}
