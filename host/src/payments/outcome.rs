//! What creating a payment ends in ([`Outcome`]), why it may be refused
//! before the provider is asked ([`CreateError`]), and how an outcome is
//! kept for its idempotency key so a retry gets the same answer.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::domain::PaymentStatus;
use crate::ids::PaymentId;

/// The result of a create request: a fresh outcome, or one replayed for
/// its idempotency key.
#[derive(Clone, Debug, PartialEq)]
pub struct Created {
    pub outcome: Outcome,
    /// The outcome was recorded for the key by an earlier request.
    pub replayed: bool,
}

/// How a stored payment's creation ended. Both are final for the
/// idempotency key.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The provider opened a session; the buyer pays at `payment_url`.
    Opened(Opened),
    /// The provider refused, or could not be asked; the payment is stored
    /// `PAYMENT_FAILED`.
    Refused(Refused),
}

/// A payment whose provider session is open.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Opened {
    pub payment_id: PaymentId,
    pub status: PaymentStatus,
    pub payment_url: String,
}

/// A payment its provider refused. The fields are the API's refusal as
/// API.md gives it (`provider_error`), so a replay repeats it exactly,
/// including the first request's id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refused {
    /// Always [`Refused::CODE`].
    pub error: String,
    pub message: String,
    pub request_id: String,
    pub payment_id: PaymentId,
    pub status: PaymentStatus,
}

impl Refused {
    /// The stable code of a provider's refusal.
    pub const CODE: &'static str = "provider_error";

    /// Payment `payment_id` refused for `reason` (already safe to show the
    /// merchant) during request `request_id`.
    pub fn new(payment_id: PaymentId, reason: &str, request_id: &str) -> Self {
        Self {
            error: Self::CODE.to_owned(),
            message: format!("the payment provider failed: {reason}"),
            request_id: request_id.to_owned(),
            payment_id,
            status: PaymentStatus::Failed,
        }
    }
}

/// How an outcome is kept with its idempotency key: a discriminator and
/// the outcome's JSON. The discriminators are the numbers rows written
/// before this type existed carry (they were the answers' statuses), so
/// those rows replay too.
const OPENED: i16 = 200;
const REFUSED: i16 = 502;

impl Outcome {
    /// The outcome as stored with its idempotency key.
    pub fn to_record(&self) -> (i16, Value) {
        let (kind, json) = match self {
            Outcome::Opened(opened) => (OPENED, serde_json::to_value(opened)),
            Outcome::Refused(refused) => (REFUSED, serde_json::to_value(refused)),
        };
        (kind, json.expect("outcomes are plain JSON objects"))
    }

    /// An outcome read back from its idempotency key.
    pub fn from_record(kind: i16, json: Value) -> Result<Self, CreateError> {
        let unreadable = |e: serde_json::Error| CreateError::UnreadableRecord(e.to_string());
        match kind {
            OPENED => serde_json::from_value(json)
                .map(Outcome::Opened)
                .map_err(unreadable),
            REFUSED => serde_json::from_value(json)
                .map(Outcome::Refused)
                .map_err(unreadable),
            other => Err(CreateError::UnreadableRecord(format!(
                "unknown outcome kind {other}"
            ))),
        }
    }
}

/// Why a create request got no outcome.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("no provider is bound to alias {0:?}")]
    UnknownAlias(String),
    #[error("the subscription is not this merchant's, or is inactive")]
    InvalidSubscription,
    #[error("the subscription's payment tokens are spent")]
    QuotaExceeded,
    #[error("a payment for this order_id already exists")]
    OrderExists { payment_id: PaymentId },
    #[error("this idempotency key was used with a different request body")]
    IdempotencyConflict,
    #[error("a request with this idempotency key is still being processed")]
    RequestInProgress,
    #[error("the provider is unavailable (circuit open)")]
    CircuitOpen { retry_after: Duration },
    /// The circuit breaker's store (Redis) cannot say, and the host is set
    /// to refuse rather than call the provider blind.
    #[error("circuit breaker state (Redis) unavailable")]
    CircuitUnknown,
    #[error("the outcome recorded for this idempotency key cannot be read: {0}")]
    UnreadableRecord(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcomes_round_trip_through_their_record() {
        let opened = Outcome::Opened(Opened {
            payment_id: PaymentId::new(7),
            status: PaymentStatus::Pending,
            payment_url: "https://pay.example/s/1".into(),
        });
        let refused = Outcome::Refused(Refused::new(PaymentId::new(8), "declined: card", "req-1"));
        for outcome in [opened, refused] {
            let (kind, json) = outcome.to_record();
            assert_eq!(Outcome::from_record(kind, json).unwrap(), outcome);
        }
    }

    #[test]
    fn records_written_as_answers_before_still_replay() {
        // What an earlier version stored: the answers' statuses and bodies.
        let opened = json!({"payment_id": 3, "status": "PAYMENT_PENDING", "payment_url": "u"});
        let refused = json!({
            "error": "provider_error", "message": "the payment provider failed: declined: x",
            "request_id": "r", "payment_id": 4, "status": "PAYMENT_FAILED"
        });
        assert!(matches!(
            Outcome::from_record(200, opened.clone()),
            Ok(Outcome::Opened(o)) if serde_json::to_value(&o).unwrap() == opened
        ));
        assert!(matches!(
            Outcome::from_record(502, refused.clone()),
            Ok(Outcome::Refused(r)) if serde_json::to_value(&r).unwrap() == refused
        ));
        assert!(Outcome::from_record(418, opened).is_err());
    }
}
