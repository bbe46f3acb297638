//! `POST /v71/payments/{pspReference}/refunds`: the request and Adyen's
//! acknowledgement, free of WIT imports.

use crate::amount;
use crate::exports::paygate::plugins0_2_0::provider::{
    RefundReason, RefundRequest, RefundSession, RefundState,
};
use guest_common::provider::{Failure, malformed, required_str, success_object, truncate};
use guest_common::reference;
use serde_json::json;

/// The path of the refunds of payment `psp_reference`. The reference goes
/// into the URL as it is, so it must be a plain id: letters, digits, `_`
/// and `-` (Adyen's are 16 letters and digits).
pub fn path(psp_reference: &str) -> Result<String, Failure> {
    let plain = !psp_reference.is_empty()
        && psp_reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !plain {
        return Err(Failure::InvalidRequest(
            "the payment's Adyen reference is not a plain id".into(),
        ));
    }
    Ok(format!("v71/payments/{psp_reference}/refunds"))
}

/// The JSON body of a refund: the amount in minor units, paygate's refund
/// as `reference` (Adyen's REFUND webhook echoes it as `merchantReference`,
/// which the verifier reads back), and Adyen's name of the reason.
pub fn refund_body(request: &RefundRequest, merchant_account: &str) -> Result<Vec<u8>, Failure> {
    let amount = amount::minor(&request.price, &request.currency)?;
    if amount["value"] == 0 {
        return Err(Failure::InvalidRequest(
            "a refund must be above zero".into(),
        ));
    }
    let mut body = json!({
        "merchantAccount": merchant_account,
        "amount": amount,
        "reference": reference::refund(request.refund_id),
    });
    if let Some(reason) = request.reason {
        body["merchantRefundReason"] = json!(reason_name(reason));
    }
    Ok(body.to_string().into_bytes())
}

fn reason_name(reason: RefundReason) -> &'static str {
    match reason {
        RefundReason::RequestedByCustomer => "CUSTOMER REQUEST",
        RefundReason::Duplicate => "DUPLICATE",
        RefundReason::Fraudulent => "FRAUD",
    }
}

/// Reads Adyen's answer to a refund request. Adyen only acknowledges it
/// (`status` `received`, under the refund's own `pspReference`); whether
/// money went back comes later by webhook, so the refund is pending.
pub fn parse_refund(status: u16, body: &[u8]) -> Result<RefundSession, Failure> {
    let answer = success_object(status, body)?;
    let reference = required_str(&answer, "pspReference")?;
    match required_str(&answer, "status")?.as_str() {
        "received" => Ok(RefundSession {
            reference,
            state: RefundState::Pending,
        }),
        other => Err(malformed(&format!(
            "refund status {:?} is not `received`",
            truncate(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn request(price: &str, currency: &str) -> RefundRequest {
        RefundRequest {
            refund_id: 9,
            payment_id: 42,
            merchant_id: 7,
            payment_reference: "QFQTPCQ8HXSKGK82".into(),
            price: price.into(),
            currency: currency.into(),
            reason: Some(RefundReason::RequestedByCustomer),
            idempotency_key: "paygate-refund-9".into(),
            metadata: vec![],
        }
    }

    fn body_of(request: &RefundRequest) -> Value {
        serde_json::from_slice(&refund_body(request, "PaygateDemo").unwrap()).unwrap()
    }

    #[test]
    fn builds_the_refund_body() {
        assert_eq!(
            body_of(&request("2.50", "EUR")),
            json!({
                "merchantAccount": "PaygateDemo",
                "amount": {"value": 250, "currency": "EUR"},
                "reference": "paygate-refund-9",
                "merchantRefundReason": "CUSTOMER REQUEST",
            })
        );
        let mut yen = request("1500", "JPY");
        yen.reason = None;
        let body = body_of(&yen);
        assert_eq!(body["amount"], json!({"value": 1500, "currency": "JPY"}));
        assert!(body.get("merchantRefundReason").is_none(), "{body}");
        for (reason, name) in [
            (RefundReason::Duplicate, "DUPLICATE"),
            (RefundReason::Fraudulent, "FRAUD"),
        ] {
            let mut request = request("1", "EUR");
            request.reason = Some(reason);
            assert_eq!(body_of(&request)["merchantRefundReason"], name);
        }
    }

    #[test]
    fn refuses_amounts_adyen_cannot_take() {
        for (price, currency) in [
            ("2.505", "EUR"),
            ("0", "EUR"),
            ("0.00", "EUR"),
            ("1.5", "JPY"),
        ] {
            assert!(
                matches!(
                    refund_body(&request(price, currency), "PaygateDemo"),
                    Err(Failure::InvalidRequest(_))
                ),
                "{price} {currency}"
            );
        }
    }

    #[test]
    fn puts_only_plain_ids_in_the_path() {
        assert_eq!(
            path("QFQTPCQ8HXSKGK82"),
            Ok("v71/payments/QFQTPCQ8HXSKGK82/refunds".into())
        );
        for bad in ["", "../x", "P1/refunds", "P1?x=1", "P 1", "P1#", "é"] {
            assert!(
                matches!(path(bad), Err(Failure::InvalidRequest(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_received_refund_is_pending() {
        let answer = json!({
            "merchantAccount": "PaygateDemo", "paymentPspReference": "QFQTPCQ8HXSKGK82",
            "pspReference": "ZC4R4RBFJGXXGN82", "reference": "paygate-refund-9",
            "status": "received", "amount": {"value": 250, "currency": "EUR"},
        });
        let refund = parse_refund(201, answer.to_string().as_bytes()).unwrap();
        assert_eq!(refund.reference, "ZC4R4RBFJGXXGN82");
        assert!(matches!(refund.state, RefundState::Pending));
    }

    #[test]
    fn refuses_unusable_answers() {
        let parse = |status: u16, body: Value| parse_refund(status, body.to_string().as_bytes());
        assert!(matches!(
            parse(201, json!({"status": "received"})),
            Err(Failure::Unavailable(_))
        ));
        assert!(matches!(
            parse(201, json!({"pspReference": "R1", "status": "done"})),
            Err(Failure::Unavailable(_))
        ));
        let invalid = json!({"status": 422, "errorCode": "167", "message": "Original pspReference required for this operation", "errorType": "validation"});
        assert!(matches!(
            parse(422, invalid),
            Err(Failure::InvalidRequest(_))
        ));
        assert!(matches!(
            parse(401, json!({})),
            Err(Failure::Misconfigured(_))
        ));
    }
}
