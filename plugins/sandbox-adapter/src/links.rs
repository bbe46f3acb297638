//! The sandbox provider's payment-link API, free of WIT imports.

use crate::exports::paygate::plugins0_2_0::provider::{
    PaymentRequest, PaymentSession, PaymentState, RefundReason, RefundRequest, RefundSession,
    RefundState,
};
use guest_common::provider::{Failure, malformed, required_str, success_object};
use serde_json::{Value, json};

/// The JSON body of `POST /payment-links`. Amount and price stay decimal
/// strings so no precision is lost on the way.
pub fn create_body(request: &PaymentRequest) -> Vec<u8> {
    json!({
        "payment_id": request.payment_id,
        "merchant_id": request.merchant_id,
        "order_id": request.order_id,
        "amount": request.amount,
        "price": request.price,
        "currency": request.currency,
        "idempotency_key": request.idempotency_key,
        "return_url": request.return_url,
        "cancel_url": request.cancel_url,
        "metadata": pairs(&request.metadata),
    })
    .to_string()
    .into_bytes()
}

/// The JSON body of `POST /payment-links/{id}/refunds`.
pub fn refund_body(request: &RefundRequest) -> Vec<u8> {
    let reason = request.reason.map(|r| match r {
        RefundReason::RequestedByCustomer => "requested_by_customer",
        RefundReason::Duplicate => "duplicate",
        RefundReason::Fraudulent => "fraudulent",
    });
    json!({
        "refund_id": request.refund_id,
        "payment_id": request.payment_id,
        "price": request.price,
        "currency": request.currency,
        "reason": reason,
        "metadata": pairs(&request.metadata),
    })
    .to_string()
    .into_bytes()
}

fn pairs(metadata: &[(String, String)]) -> serde_json::Map<String, Value> {
    metadata
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

/// Reads a refund the provider created or looked up.
pub fn parse_refund(status: u16, body: &[u8]) -> Result<RefundSession, Failure> {
    let object = success_object(status, body)?;
    let state = match required_str(&object, "status")?.as_str() {
        "pending" => RefundState::Pending,
        "succeeded" => RefundState::Succeeded,
        "failed" => RefundState::Failed,
        other => return Err(malformed(&format!("unknown refund status {other:?}"))),
    };
    Ok(RefundSession {
        reference: required_str(&object, "id")?,
        state,
    })
}

/// Reads the created link; the id may come back as a string or a number.
pub fn parse_link(status: u16, body: &[u8]) -> Result<PaymentSession, Failure> {
    let object = success_object(status, body)?;
    let reference = match object.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        Some(Value::Number(id)) => id.to_string(),
        _ => return Err(malformed("missing field `id`")),
    };
    Ok(PaymentSession {
        reference,
        payment_url: required_str(&object, "payment_url")?,
    })
}

/// Reads a link's status.
pub fn parse_status(status: u16, body: &[u8]) -> Result<PaymentState, Failure> {
    let object = success_object(status, body)?;
    match required_str(&object, "status")?.as_str() {
        "pending" => Ok(PaymentState::Pending),
        "finished" => Ok(PaymentState::Finished),
        "failed" => Ok(PaymentState::Failed),
        other => Err(malformed(&format!("unknown status {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_the_request() {
        let request = PaymentRequest {
            payment_id: 42,
            merchant_id: 7,
            order_id: 1001,
            amount: "2.5".into(),
            price: "10.00".into(),
            currency: "EUR".into(),
            idempotency_key: "idem-1".into(),
            return_url: None,
            cancel_url: Some("https://shop.test/no".into()),
            metadata: vec![("cart".into(), "c-1".into())],
        };
        let body: Value = serde_json::from_slice(&create_body(&request)).unwrap();
        assert_eq!(
            body,
            json!({
                "payment_id": 42, "merchant_id": 7, "order_id": 1001, "amount": "2.5",
                "price": "10.00", "currency": "EUR", "idempotency_key": "idem-1",
                "return_url": null, "cancel_url": "https://shop.test/no",
                "metadata": {"cart": "c-1"},
            })
        );
    }

    #[test]
    fn refunds() {
        let request = RefundRequest {
            refund_id: 9,
            payment_id: 42,
            merchant_id: 7,
            payment_reference: "pl_1".into(),
            price: "2.50".into(),
            currency: "EUR".into(),
            reason: Some(RefundReason::Duplicate),
            idempotency_key: "paygate-refund-9".into(),
            metadata: vec![],
        };
        let body: Value = serde_json::from_slice(&refund_body(&request)).unwrap();
        assert_eq!(
            body,
            json!({"refund_id": 9, "payment_id": 42, "price": "2.50", "currency": "EUR",
                   "reason": "duplicate", "metadata": {}})
        );
        let refund = parse_refund(201, br#"{"id":"rf_1","status":"pending"}"#).unwrap();
        assert_eq!(refund.reference, "rf_1");
        assert!(matches!(refund.state, RefundState::Pending));
        assert!(matches!(
            parse_refund(200, br#"{"id":"rf_1","status":"done"}"#),
            Err(Failure::Unavailable(_))
        ));
        assert!(matches!(
            parse_refund(402, b"{}"),
            Err(Failure::Declined(_))
        ));
    }

    #[test]
    fn parses_links() {
        let link = parse_link(
            201,
            br#"{"id":"pl_1","payment_url":"https://sb.test/pl_1"}"#,
        );
        assert_eq!(link.unwrap().payment_url, "https://sb.test/pl_1");
        assert_eq!(
            parse_link(200, br#"{"id":9,"payment_url":"u"}"#)
                .unwrap()
                .reference,
            "9"
        );
        assert!(matches!(
            parse_link(200, br#"{"id":"x"}"#),
            Err(Failure::Unavailable(_))
        ));
        assert!(matches!(
            parse_link(422, b"{}"),
            Err(Failure::InvalidRequest(_))
        ));
        assert!(matches!(parse_link(402, b"{}"), Err(Failure::Declined(_))));
        assert!(matches!(parse_link(502, b""), Err(Failure::Unavailable(_))));
    }

    #[test]
    fn parses_statuses() {
        let status = |body: &[u8]| parse_status(200, body);
        assert!(matches!(
            status(br#"{"status":"pending"}"#),
            Ok(PaymentState::Pending)
        ));
        assert!(matches!(
            status(br#"{"status":"finished"}"#),
            Ok(PaymentState::Finished)
        ));
        assert!(matches!(
            status(br#"{"status":"failed"}"#),
            Ok(PaymentState::Failed)
        ));
        assert!(matches!(
            status(br#"{"status":"odd"}"#),
            Err(Failure::Unavailable(_))
        ));
    }
}
