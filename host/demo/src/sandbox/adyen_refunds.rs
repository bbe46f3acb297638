//! Adyen's refunds, as the `adyen` adapter asks for them:
//! `POST /v71/payments/{pspReference}/refunds`, behind `X-API-Key`. Adyen
//! answers every refund it takes `201 received` and says how it ended by a
//! `REFUND` notification, so here every refund starts pending and the test
//! prices of [`super::refunds`] decide its notification: minor units
//! ending in `13` fail, `42` succeed after a second, `43` likewise without
//! the notification (a lost webhook), any other succeeds at once.
//!
//! Adyen warns that a notification can arrive before the answer to the
//! request it is about. Here it always does for a refund that ends at
//! once: the `REFUND` notification is sent first and the request answered
//! [`ANSWERED_AFTER`] later, so every Adyen refund exercises paygate with
//! an event naming a `pspReference` it has not stored yet.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::adyen::{
    MAX_REFERENCE, Refusal, amount, checked, merchant_account, object_of, with_key,
};
use super::ids::ADYEN_REFUNDS;
use super::refunds::{PENDING_FOR, Script, scripted, settle_later};
use super::store::{Asked, Order, RefundOutcome, Refunded, Sandbox, SandboxRefund, adyen_amount};

/// How long the answer to a refund that ends at once waits after its
/// notification was sent: long enough for the notification to reach
/// paygate before the answer does.
const ANSWERED_AFTER: Duration = Duration::from_millis(250);

/// The reasons Adyen takes in `merchantRefundReason`.
const REASONS: [&str; 5] = ["FRAUD", "CUSTOMER REQUEST", "RETURN", "DUPLICATE", "OTHER"];

/// What paygate's refund references look like (notes/adyen-wire.md).
const REFUND_REFERENCE_PREFIX: &str = "paygate-refund-";

/// `POST /v71/payments/{pspReference}/refunds`.
pub(crate) async fn create(
    State(sandbox): State<Sandbox>,
    psp: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let psp = psp.map(|Path(psp)| psp).unwrap_or_default();
    match take(&sandbox, &psp, &headers, &body) {
        Ok((answer, notified_first)) => {
            if notified_first {
                tokio::time::sleep(ANSWERED_AFTER).await;
            }
            answer
        }
        Err(refusal) => refusal.into_response(),
    }
}

fn take(
    sandbox: &Sandbox,
    psp: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Response, bool), Refusal> {
    let key = checked(sandbox, headers)?;
    // Only a payment of this API is Adyen's to refund.
    if !(sandbox.get(psp)).is_some_and(|p| matches!(p.order, Order::Adyen(_))) {
        return Err(no_such_payment());
    }
    let object = object_of(body)?;
    let account = merchant_account(&object)?;
    let (value, currency) = amount(&object)?;
    let reference = match object.get("reference") {
        None | Some(Value::Null) => None,
        Some(_) => Some(super::adyen::short_text(
            &object,
            "reference",
            MAX_REFERENCE,
        )?),
    };
    match object.get("merchantRefundReason") {
        None | Some(Value::Null) => {}
        Some(Value::String(reason)) if REASONS.contains(&reason.as_str()) => {}
        Some(_) => {
            return Err(Refusal::invalid(
                "702",
                format!(
                    "merchantRefundReason must be one of {}.",
                    REASONS.join(", ")
                ),
            ));
        }
    }
    let price = adyen_amount(value, &currency);
    let refund_id = (reference.as_deref())
        .and_then(|r| r.strip_prefix(REFUND_REFERENCE_PREFIX))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let asked = Asked {
        ids: ADYEN_REFUNDS,
        account: Some(&account),
        key: key.as_deref(),
        refund_id,
        reference: reference.as_deref(),
        price,
        currency: &currency,
        outcome: RefundOutcome::Pending,
    };
    let (refund, notified_first) = match sandbox.refund(psp, asked) {
        Refunded::New(refund) => {
            let reference = &refund.id;
            tracing::info!(psp_reference = %reference, payment = %psp, "sandbox adyen refund");
            let notified_first = confirm(sandbox, &refund);
            (refund, notified_first)
        }
        Refunded::Replayed(refund) => (refund, false),
        Refunded::Conflict => return Err(Refusal::key_reused()),
        Refunded::NoSuchPayment => return Err(no_such_payment()),
        Refunded::NotPaid => {
            return Err(Refusal::invalid(
                "167",
                "Original pspReference is not an authorised payment.",
            ));
        }
        Refunded::TooMuch { left } => {
            return Err(Refusal::invalid(
                "137",
                format!("Invalid amount specified: more than is left to refund ({left})."),
            ));
        }
        Refunded::WrongCurrency => {
            return Err(Refusal::invalid(
                "702",
                "The currency is not the payment's.",
            ));
        }
        Refunded::Full => return Err(Refusal::full()),
    };
    let answer = (
        StatusCode::CREATED,
        axum::Json(refund_json(&refund, psp, value)),
    )
        .into_response();
    Ok((with_key(answer, key.as_deref()), notified_first))
}

/// Adyen's answer to a refund of a payment it does not know.
fn no_such_payment() -> Refusal {
    Refusal::invalid(
        "167",
        "Original pspReference is not a payment of this merchant account.",
    )
}

/// Settles a refund just taken as its test price says, announcing it by
/// notification unless the price loses it. True when the notification
/// goes now, before the request is answered.
fn confirm(sandbox: &Sandbox, refund: &SandboxRefund) -> bool {
    let script = scripted(refund.price, &refund.currency).unwrap_or(Script {
        outcome: RefundOutcome::Succeeded,
        announced: true,
    });
    let (outcome, after) = match script.outcome {
        RefundOutcome::Failed => (RefundOutcome::Failed, Duration::ZERO),
        RefundOutcome::Pending => (RefundOutcome::Succeeded, PENDING_FOR),
        RefundOutcome::Succeeded => (RefundOutcome::Succeeded, Duration::ZERO),
    };
    let id = refund.id.clone();
    settle_later(sandbox.clone(), id, outcome, after, script.announced);
    after.is_zero() && script.announced
}

/// Adyen's answer to a refund it took: always `received`, whatever came of
/// it since.
fn refund_json(refund: &SandboxRefund, psp: &str, value: u64) -> Value {
    let mut body = json!({
        "merchantAccount": refund.account,
        "paymentPspReference": psp,
        "pspReference": refund.id,
        "status": "received",
        "amount": {"value": value, "currency": refund.currency},
    });
    if let Some(reference) = &refund.reference {
        body["reference"] = reference.as_str().into();
    }
    body
}
