//! Stripe Refunds of a Checkout Session's PaymentIntent, free of WIT
//! imports.

use crate::exports::paygate::plugins0_2_0::provider::{
    RefundReason, RefundRequest, RefundSession, RefundState,
};
use crate::form::Form;
use guest_common::money;
use guest_common::provider::{Failure, malformed, required_str, success_object};
use serde_json::Value;

/// The PaymentIntent a retrieved Checkout Session charged. A session
/// without one took no money, so there is nothing to give back.
pub fn payment_intent(status: u16, body: &[u8]) -> Result<String, Failure> {
    let session = success_object(status, body)?;
    match session.get("payment_intent") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
        // Expanded by the caller's account settings: the object's id.
        Some(Value::Object(intent)) => required_str(intent, "id"),
        Some(Value::Null) | None => Err(Failure::Declined(
            "the Checkout Session has no payment to refund".into(),
        )),
        Some(_) => Err(malformed("`payment_intent` is neither an id nor an object")),
    }
}

/// The form body of `POST /v1/refunds`: the amount in the currency's
/// minor units, Stripe's own reason names, and paygate's ids in the
/// refund's metadata so Stripe's `refund.*` events name the refund.
pub fn create_form(request: &RefundRequest, payment_intent: &str) -> Result<String, Failure> {
    let currency = request.currency.to_ascii_uppercase();
    let amount =
        money::to_minor_units(&request.price, &currency).map_err(Failure::InvalidRequest)?;
    if amount == 0 {
        return Err(Failure::InvalidRequest(
            "a refund must be above zero".into(),
        ));
    }
    let mut form = Form::default();
    form.push("payment_intent", payment_intent)
        .push("amount", &amount.to_string());
    if let Some(reason) = request.reason {
        form.push("reason", reason_name(reason));
    }
    form.push(
        "metadata[paygate_refund_id]",
        &request.refund_id.to_string(),
    )
    .push(
        "metadata[paygate_payment_id]",
        &request.payment_id.to_string(),
    )
    .push("metadata[merchant_id]", &request.merchant_id.to_string());
    Ok(form.finish())
}

fn reason_name(reason: RefundReason) -> &'static str {
    match reason {
        RefundReason::RequestedByCustomer => "requested_by_customer",
        RefundReason::Duplicate => "duplicate",
        RefundReason::Fraudulent => "fraudulent",
    }
}

/// Reads a created or retrieved Refund. `requires_action` waits on the
/// customer and `pending` on the bank: both are still pending; `canceled`
/// gave nothing back.
pub fn parse_refund(status: u16, body: &[u8]) -> Result<RefundSession, Failure> {
    let refund = success_object(status, body)?;
    let state = match required_str(&refund, "status")?.as_str() {
        "succeeded" => RefundState::Succeeded,
        "pending" | "requires_action" => RefundState::Pending,
        "failed" | "canceled" => RefundState::Failed,
        other => return Err(malformed(&format!("unknown refund status {other:?}"))),
    };
    Ok(RefundSession {
        reference: required_str(&refund, "id")?,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(price: &str, currency: &str) -> RefundRequest {
        RefundRequest {
            refund_id: 9,
            payment_id: 42,
            merchant_id: 7,
            payment_reference: "cs_test_1".into(),
            price: price.into(),
            currency: currency.into(),
            reason: Some(RefundReason::RequestedByCustomer),
            idempotency_key: "paygate-refund-9".into(),
            metadata: vec![],
        }
    }

    #[test]
    fn builds_the_form() {
        let body = create_form(&request("2.50", "EUR"), "pi_1").unwrap();
        let expected = [
            "payment_intent=pi_1",
            "amount=250",
            "reason=requested_by_customer",
            "metadata%5Bpaygate_refund_id%5D=9",
            "metadata%5Bpaygate_payment_id%5D=42",
            "metadata%5Bmerchant_id%5D=7",
        ]
        .join("&");
        assert_eq!(body, expected);
        let mut without_reason = request("1500", "JPY");
        without_reason.reason = None;
        let body = create_form(&without_reason, "pi_1").unwrap();
        assert!(body.starts_with("payment_intent=pi_1&amount=1500&metadata"));
    }

    #[test]
    fn refuses_amounts_stripe_cannot_take() {
        for (price, currency) in [("2.505", "EUR"), ("0", "EUR"), ("1.5", "JPY"), ("x", "EUR")] {
            assert!(
                matches!(
                    create_form(&request(price, currency), "pi_1"),
                    Err(Failure::InvalidRequest(_))
                ),
                "{price} {currency}"
            );
        }
    }

    #[test]
    fn finds_the_payment_intent() {
        let intent = |body: &str| payment_intent(200, body.as_bytes());
        assert_eq!(intent(r#"{"payment_intent":"pi_1"}"#), Ok("pi_1".into()));
        assert_eq!(
            intent(r#"{"payment_intent":{"id":"pi_2"}}"#),
            Ok("pi_2".into())
        );
        assert!(matches!(
            intent(r#"{"payment_intent":null}"#),
            Err(Failure::Declined(_))
        ));
        assert!(matches!(intent("{}"), Err(Failure::Declined(_))));
        assert!(matches!(
            intent(r#"{"payment_intent":7}"#),
            Err(Failure::Unavailable(_))
        ));
        assert!(matches!(
            payment_intent(404, b"{}"),
            Err(Failure::InvalidRequest(_))
        ));
    }

    #[test]
    fn maps_refund_states() {
        let state = |s: &str| {
            parse_refund(200, format!(r#"{{"id":"re_1","status":"{s}"}}"#).as_bytes())
                .map(|r| r.state)
        };
        assert!(matches!(state("succeeded"), Ok(RefundState::Succeeded)));
        assert!(matches!(state("pending"), Ok(RefundState::Pending)));
        assert!(matches!(state("requires_action"), Ok(RefundState::Pending)));
        assert!(matches!(state("failed"), Ok(RefundState::Failed)));
        assert!(matches!(state("canceled"), Ok(RefundState::Failed)));
        assert!(matches!(state("odd"), Err(Failure::Unavailable(_))));
        assert!(parse_refund(200, br#"{"status":"succeeded"}"#).is_err());
        let refused = br#"{"error":{"type":"invalid_request_error","message":"Charge ch_1 has already been refunded."}}"#;
        assert!(matches!(
            parse_refund(400, refused),
            Err(Failure::InvalidRequest(_))
        ));
    }
}
