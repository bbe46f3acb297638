//! Refunds of the payment-link API, as the `sandbox` adapter asks for them:
//! `POST /payment-links/{id}/refunds` and `GET /refunds/{id}`.
//!
//! Test prices (API.md, "Refunds"): a refund whose minor units end in `13`
//! is declined (402); one ending in `42` stays pending and succeeds about a
//! second later, announced by a signed webhook; any other succeeds at once.
//! Beyond API.md, one ending in `43` behaves as `42` but its webhook is
//! lost (never sent), as `?webhook=skip` loses a payment's: only asking
//! the provider (`GET /refunds/{id}`, reconciliation) finds it succeeded.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::ids::{Ids, REFUND_PREFIX};
use super::reply::{idempotency_header, link_error};
use super::store::{Asked, RefundOutcome, Refunded, Sandbox, SandboxRefund, exponent};

/// How long a `42` refund stays pending.
pub(crate) const PENDING_FOR: Duration = Duration::from_secs(1);

/// Lets a refund taken `Pending` (a `42` price) succeed [`PENDING_FOR`]
/// later, announced by webhook if `announce`: the same for the payment-link
/// and Stripe dialects.
pub(crate) fn succeed_later_if_pending(sandbox: &Sandbox, refund: &SandboxRefund, announce: bool) {
    if refund.outcome == RefundOutcome::Pending {
        let id = refund.id.clone();
        settle_later(
            sandbox.clone(),
            id,
            RefundOutcome::Succeeded,
            PENDING_FOR,
            announce,
        );
    }
}

/// Settles the pending refund `id` as `outcome` after `after` and, if
/// `announce`, sends the gateway its webhook, as a provider confirms a
/// refund later.
pub(crate) fn settle_later(
    sandbox: Sandbox,
    id: String,
    outcome: RefundOutcome,
    after: Duration,
    announce: bool,
) {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let settled = sandbox.settle_refund(&id, outcome);
        let hook = settled
            .filter(|_| announce)
            .and_then(|r| super::webhook::for_refund(&sandbox, &r));
        if let Some(hook) = hook {
            super::webhook::spawn(sandbox.clone(), hook);
        }
    });
}

/// What a test price asks of a refund.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Script {
    pub outcome: RefundOutcome,
    /// A pending refund's outcome is sent as a webhook.
    pub announced: bool,
}

/// What the test price asks of a refund of `price` in `currency`.
pub(crate) fn scripted(price: Decimal, currency: &str) -> Option<Script> {
    let minor = price * Decimal::from(10u64.pow(exponent(currency)));
    if !minor.fract().is_zero() {
        return None;
    }
    let last_two = (minor % Decimal::from(100)).normalize();
    let (outcome, announced) = match last_two.to_string().as_str() {
        "13" => (RefundOutcome::Failed, true),
        "42" => (RefundOutcome::Pending, true),
        "43" => (RefundOutcome::Pending, false),
        _ => (RefundOutcome::Succeeded, true),
    };
    Some(Script { outcome, announced })
}

/// `POST /payment-links/{id}/refunds`.
pub(crate) async fn create(
    State(sandbox): State<Sandbox>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = id.map(|Path(id)| id).unwrap_or_default();
    let (refund_id, price, currency) = match parse(&body) {
        Ok(parsed) => parsed,
        Err(message) => return link_error(StatusCode::BAD_REQUEST, message),
    };
    let key = match idempotency_header(&headers) {
        Ok(key) => key,
        Err(message) => return link_error(StatusCode::BAD_REQUEST, message),
    };
    let Some(Script { outcome, announced }) = scripted(price, &currency) else {
        return link_error(
            StatusCode::BAD_REQUEST,
            format!("price is finer than the minor unit of {currency}"),
        );
    };
    if outcome == RefundOutcome::Failed {
        return link_error(
            StatusCode::PAYMENT_REQUIRED,
            "refund declined (test price ending in 13)",
        );
    }
    let asked = Asked {
        ids: Ids::Prefixed(REFUND_PREFIX),
        account: None,
        key: key.as_deref(),
        refund_id,
        reference: None,
        price,
        currency: &currency,
        outcome,
    };
    match sandbox.refund(&id, asked) {
        Refunded::New(refund) => {
            tracing::info!(refund = %refund.id, payment = %id, "sandbox refund taken");
            succeed_later_if_pending(&sandbox, &refund, announced);
            (StatusCode::CREATED, axum::Json(refund_json(&refund))).into_response()
        }
        Refunded::Replayed(refund) => (
            StatusCode::CREATED,
            [("idempotent-replayed", "true")],
            axum::Json(refund_json(&refund)),
        )
            .into_response(),
        Refunded::Conflict => link_error(
            StatusCode::CONFLICT,
            "this idempotency key was used with a different request",
        ),
        Refunded::NoSuchPayment => link_error(StatusCode::NOT_FOUND, "no such payment link"),
        Refunded::NotPaid => link_error(StatusCode::CONFLICT, "the payment link was not paid"),
        Refunded::TooMuch { left } => link_error(
            StatusCode::BAD_REQUEST,
            format!("price is more than what is left to refund ({left})"),
        ),
        Refunded::WrongCurrency => {
            link_error(StatusCode::BAD_REQUEST, "currency is not the payment's")
        }
        Refunded::Full => link_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the sandbox holds too many refunds; restart it",
        ),
    }
}

/// `GET /refunds/{id}`.
pub(crate) async fn show(
    State(sandbox): State<Sandbox>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    match id.ok().and_then(|Path(id)| sandbox.get_refund(&id)) {
        Some(refund) => axum::Json(refund_json(&refund)).into_response(),
        None => link_error(StatusCode::NOT_FOUND, "no such refund"),
    }
}

fn refund_json(refund: &SandboxRefund) -> Value {
    let status = match refund.outcome {
        RefundOutcome::Pending => "pending",
        RefundOutcome::Succeeded => "succeeded",
        RefundOutcome::Failed => "failed",
    };
    json!({
        "id": refund.id,
        "object": "refund",
        "status": status,
        "payment_link": refund.payment,
        "refund_id": refund.refund_id,
        "price": refund.price.to_string(),
        "currency": refund.currency,
    })
}

/// The body's refund id, price and currency; the error names the field.
fn parse(body: &[u8]) -> Result<(u64, Decimal, String), String> {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return Err("the body must be a JSON object".into());
    };
    let refund_id = object
        .get("refund_id")
        .and_then(Value::as_u64)
        .ok_or("refund_id must be a non-negative integer")?;
    let price = object
        .get("price")
        .and_then(Value::as_str)
        .filter(|p| p.len() <= 40 && p.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
        .and_then(|p| p.parse::<Decimal>().ok())
        .filter(|p| *p > Decimal::ZERO)
        .ok_or("price must be a decimal string above zero, such as \"2.50\"")?;
    let currency = object
        .get("currency")
        .and_then(Value::as_str)
        .filter(|c| super::reply::is_currency(c))
        .ok_or("currency must be a three-letter ISO 4217 code")?
        .to_ascii_uppercase();
    Ok((refund_id, price, currency))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_prices_script_the_outcome() {
        let outcome = |price: &str, currency: &str| {
            scripted(price.parse().unwrap(), currency).map(|s| (s.outcome, s.announced))
        };
        let (pending, failed) = (RefundOutcome::Pending, RefundOutcome::Failed);
        assert_eq!(outcome("1.13", "EUR"), Some((failed, true)));
        assert_eq!(outcome("0.42", "EUR"), Some((pending, true)));
        assert_eq!(outcome("0.43", "EUR"), Some((pending, false)));
        let done = RefundOutcome::Succeeded;
        assert_eq!(outcome("10.00", "EUR"), Some((done, true)));
        assert_eq!(outcome("1113", "JPY"), Some((failed, true)));
        assert_eq!(outcome("1.042", "KWD"), Some((pending, true)));
        assert_eq!(outcome("1.130", "EUR"), Some((failed, true)));
        assert_eq!(outcome("1.001", "EUR"), None);
    }
}
