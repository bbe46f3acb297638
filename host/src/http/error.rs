//! The one error type of the API: a status, a stable code, a message, and
//! for field errors the fields. Causes are logged; clients never see them.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

/// One offending field of a request body or query.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Every way an API request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    InvalidRequest {
        message: String,
        fields: Vec<FieldError>,
    },
    #[error("no provider is bound to alias {0:?}")]
    UnknownAlias(String),
    #[error("the subscription is not this merchant's, or is inactive")]
    InvalidSubscription,
    #[error("the X-Api-Key header is missing")]
    Unauthorized,
    #[error("the API key is unknown or revoked")]
    InvalidApiKey,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    InvalidSignature(&'static str),
    #[error("the signature's timestamp is outside the tolerance")]
    SignatureExpired,
    #[error("not found")]
    NotFound,
    #[error("this idempotency key was used with a different request body")]
    IdempotencyConflict,
    #[error("a request with this idempotency key is still being processed")]
    RequestInProgress,
    /// A provider's refund event came before the provider answered the
    /// refund request; the provider is to send it again.
    #[error("refund {0} is still waiting for its provider's answer; send the event again")]
    RefundUnanswered(i64),
    #[error("a payment for this order_id already exists")]
    OrderExists { payment_id: i64 },
    #[error("{0}")]
    NothingToRetry(&'static str),
    #[error("{0}")]
    PaymentNotRefundable(String),
    #[error("{0}")]
    RefundsNotSupported(String),
    #[error("the request body is larger than 1 MiB")]
    PayloadTooLarge,
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// The client did not send its whole body within the body timeout.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("rate limit exceeded")]
    RateLimited { retry_after_secs: u64 },
    #[error("the subscription's payment tokens are spent")]
    QuotaExceeded,
    #[error("the provider is unavailable (circuit open)")]
    ProviderUnavailable { retry_after_secs: u64 },
    /// The cause is logged; the client is told only to retry.
    #[error("a backing service is unavailable: {0}")]
    ServiceUnavailable(String),
    /// Something that should not happen did (a bug, data the code cannot
    /// read). The cause is logged; the client learns nothing of it.
    #[error("unexpected error: {0}")]
    Internal(String),
    /// Admin API: no such plugin or version in the registry.
    #[error("{0}")]
    NoSuchPlugin(String),
    /// Admin API: the registry refused the change (nothing to roll back to,
    /// no registry configured, ...).
    #[error("{0}")]
    RegistryRefused(String),
}

impl ApiError {
    /// A 400 for one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::fields(vec![FieldError::new(field, message)])
    }

    /// A 400 listing every offending field.
    pub fn fields(fields: Vec<FieldError>) -> Self {
        Self::InvalidRequest {
            message: "the request has invalid fields".into(),
            fields,
        }
    }

    /// A 400 without fields, e.g. malformed JSON.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            InvalidRequest { .. } | UnknownAlias(_) | InvalidSubscription => {
                StatusCode::BAD_REQUEST
            }
            Unauthorized | InvalidApiKey => StatusCode::UNAUTHORIZED,
            Forbidden(_) | InvalidSignature(_) | SignatureExpired => StatusCode::FORBIDDEN,
            NotFound | NoSuchPlugin(_) => StatusCode::NOT_FOUND,
            IdempotencyConflict
            | RequestInProgress
            | RefundUnanswered(_)
            | OrderExists { .. }
            | NothingToRetry(_)
            | PaymentNotRefundable(_)
            | RefundsNotSupported(_)
            | RegistryRefused(_) => StatusCode::CONFLICT,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RateLimited { .. } | QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            ProviderUnavailable { .. } | ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code of API.md.
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            InvalidRequest { .. } => "invalid_request",
            UnknownAlias(_) => "unknown_alias",
            InvalidSubscription => "invalid_subscription",
            Unauthorized => "unauthorized",
            InvalidApiKey => "invalid_api_key",
            Forbidden(_) => "forbidden",
            InvalidSignature(_) => "invalid_signature",
            SignatureExpired => "signature_expired",
            NotFound | NoSuchPlugin(_) => "not_found",
            RegistryRefused(_) => "registry_refused",
            IdempotencyConflict => "idempotency_conflict",
            RequestInProgress | RefundUnanswered(_) => "request_in_progress",
            OrderExists { .. } => "order_exists",
            NothingToRetry(_) => "nothing_to_retry",
            PaymentNotRefundable(_) => "payment_not_refundable",
            RefundsNotSupported(_) => "refunds_not_supported",
            PayloadTooLarge => "payload_too_large",
            RequestTimeout => "request_timeout",
            UnsupportedMediaType => "unsupported_media_type",
            RateLimited { .. } => "rate_limited",
            QuotaExceeded => "quota_exceeded",
            ProviderUnavailable { .. } => "provider_unavailable",
            ServiceUnavailable(_) => "service_unavailable",
            Internal(_) => "internal_error",
        }
    }

    /// The JSON body, with the request id filled in by the response layer.
    pub fn body(&self, request_id: &str) -> serde_json::Value {
        let message = match self {
            // The cause stays in the log; the client learns only what failed.
            ApiError::ServiceUnavailable(_) => {
                "a backing service is unavailable; retry later".to_owned()
            }
            ApiError::Internal(_) => "an unexpected error occurred; it has been logged".to_owned(),
            other => other.to_string(),
        };
        let mut body = json!({"error": self.code(), "message": message, "request_id": request_id});
        match self {
            ApiError::InvalidRequest { fields, .. } if !fields.is_empty() => {
                body["fields"] = json!(fields)
            }
            ApiError::OrderExists { payment_id } => body["payment_id"] = json!(payment_id),
            _ => {}
        }
        body
    }
}

/// `Retry-After` of a 503 `service_unavailable`: outages the API rides out
/// are seconds long (a restart, a failover), so ask for a quick retry.
const SERVICE_RETRY_AFTER_SECS: u64 = 1;

tokio::task_local! {
    /// The id of the request being handled; set by the request-id middleware.
    pub static REQUEST_ID: String;
}

/// The current request's id, or "" outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(code = self.code(), error = %self, "request failed");
        } else {
            tracing::info!(code = self.code(), error = %self, "request refused");
        }
        let retry_after = match &self {
            ApiError::RateLimited { retry_after_secs }
            | ApiError::ProviderUnavailable { retry_after_secs } => Some(*retry_after_secs),
            ApiError::ServiceUnavailable(_) => Some(SERVICE_RETRY_AFTER_SECS),
            _ => None,
        };
        let mut response = (status, Json(self.body(&current_request_id()))).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

impl From<crate::payments::CreateError> for ApiError {
    fn from(e: crate::payments::CreateError) -> Self {
        use crate::payments::CreateError as E;
        match e {
            E::UnknownAlias(alias) => ApiError::UnknownAlias(alias),
            E::InvalidSubscription => ApiError::InvalidSubscription,
            E::QuotaExceeded => ApiError::QuotaExceeded,
            E::OrderExists { payment_id } => ApiError::OrderExists {
                payment_id: payment_id.get(),
            },
            E::IdempotencyConflict => ApiError::IdempotencyConflict,
            E::RequestInProgress => ApiError::RequestInProgress,
            E::CircuitOpen { retry_after } => ApiError::ProviderUnavailable {
                retry_after_secs: retry_after.as_secs_f64().ceil() as u64,
            },
            E::CircuitUnknown => ApiError::ServiceUnavailable(e.to_string()),
            E::UnreadableRecord(_) => ApiError::Internal(e.to_string()),
            E::Database(e) => e.into(),
        }
    }
}

impl From<crate::webhooks::WebhookError> for ApiError {
    fn from(e: crate::webhooks::WebhookError) -> Self {
        use crate::webhooks::{LimitError, WebhookError as W};
        match e {
            W::UnknownAlias => ApiError::NotFound,
            W::Limited(LimitError::Exceeded {
                retry_after_secs, ..
            }) => ApiError::RateLimited { retry_after_secs },
            W::Limited(e @ LimitError::CountersUnavailable) => {
                ApiError::ServiceUnavailable(e.to_string())
            }
            W::InvalidSignature => ApiError::InvalidSignature("invalid signature"),
            W::SignatureExpired => ApiError::SignatureExpired,
            W::Malformed(detail) => ApiError::malformed(detail),
            e @ W::Misconfigured(_) => ApiError::ServiceUnavailable(e.to_string()),
            W::VerifierFailed(detail) => ApiError::ServiceUnavailable(detail),
            W::Unanswered(refund_id) => ApiError::RefundUnanswered(refund_id.get()),
            W::Database(e) => e.into(),
        }
    }
}

/// An outage or a lost race is a 503 to retry; anything else a 500.
fn database_error(e: &sqlx::Error) -> ApiError {
    if crate::db::is_transient(e) {
        ApiError::ServiceUnavailable(format!("database: {e}"))
    } else {
        ApiError::Internal(format!("database: {e}"))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        database_error(&e)
    }
}

impl From<std::sync::Arc<sqlx::Error>> for ApiError {
    /// A statement's error, shared by the reads it carried.
    fn from(e: std::sync::Arc<sqlx::Error>) -> Self {
        database_error(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_a_503_that_asks_for_a_retry_and_hides_its_cause() {
        let error = ApiError::from(sqlx::Error::PoolTimedOut);
        assert!(error.to_string().contains("database"), "logged: {error}");
        let body = error.body("req-1");
        assert_eq!(body["error"], "service_unavailable");
        assert_eq!(body["request_id"], "req-1");
        assert!(!body["message"].as_str().unwrap().contains("database"));
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
