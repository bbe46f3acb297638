//! Stripe Checkout Session requests and responses, free of WIT imports.

use crate::exports::paygate::plugins0_2_0::provider::{
    PaymentRequest, PaymentSession, PaymentState,
};
use crate::form::Form;
use guest_common::money;
use guest_common::provider::{Failure, required_str, success_object};

/// Metadata keys the adapter sets itself; merchant metadata cannot replace
/// them, because webhooks and support staff rely on their meaning.
const RESERVED_METADATA: &[&str] = &["payment_id", "order_id", "merchant_id", "amount"];

/// Where Stripe sends the buyer after paying or giving up.
#[derive(Debug, Clone)]
pub struct RedirectUrls {
    /// `success_url` of the session.
    pub success: String,
    /// `cancel_url` of the session.
    pub cancel: String,
}

/// Builds the form body of `POST /v1/checkout/sessions`: one line item of
/// quantity 1 priced at the whole total, since paygate's quantity may be
/// fractional and Stripe's cannot.
pub fn create_form(request: &PaymentRequest, urls: &RedirectUrls) -> Result<String, Failure> {
    let currency = &request.currency;
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(Failure::InvalidRequest(format!(
            "currency {currency:?} is not an ISO 4217 code"
        )));
    }
    let upper = currency.to_ascii_uppercase();
    let unit_amount =
        money::to_minor_units(&request.price, &upper).map_err(Failure::InvalidRequest)?;

    let payment_id = request.payment_id.to_string();
    let order_id = request.order_id.to_string();
    let mut form = Form::default();
    form.push("mode", "payment")
        .push("client_reference_id", &payment_id)
        .push("success_url", &urls.success)
        .push("cancel_url", &urls.cancel)
        .push("line_items[0][quantity]", "1")
        .push(
            "line_items[0][price_data][currency]",
            &upper.to_ascii_lowercase(),
        )
        .push(
            "line_items[0][price_data][unit_amount]",
            &unit_amount.to_string(),
        )
        .push(
            "line_items[0][price_data][product_data][name]",
            &format!("Order {order_id}"),
        )
        .push("metadata[payment_id]", &payment_id)
        .push("metadata[order_id]", &order_id)
        .push("metadata[merchant_id]", &request.merchant_id.to_string())
        .push("metadata[amount]", &request.amount);
    for (key, value) in &request.metadata {
        if RESERVED_METADATA.contains(&key.as_str()) {
            continue;
        }
        // Brackets would be decoded by Stripe as nested parameters.
        if key.is_empty() || key.contains(['[', ']']) {
            return Err(Failure::InvalidRequest(format!(
                "metadata key {key:?} is empty or contains brackets"
            )));
        }
        form.push(&format!("metadata[{key}]"), value);
    }
    Ok(form.finish())
}

/// Reads the created session out of Stripe's answer.
pub fn parse_session(status: u16, body: &[u8]) -> Result<PaymentSession, Failure> {
    let object = success_object(status, body)?;
    Ok(PaymentSession {
        reference: required_str(&object, "id")?,
        payment_url: required_str(&object, "url")?,
    })
}

/// Maps a retrieved session to paygate's status.
///
/// A `complete` session whose `payment_status` is `unpaid` is an
/// asynchronous payment (e.g. a bank debit) that has not settled yet, so it
/// stays pending until Stripe reports it paid.
pub fn parse_status(status: u16, body: &[u8]) -> Result<PaymentState, Failure> {
    let object = success_object(status, body)?;
    let session = required_str(&object, "status")?;
    let paid = object.get("payment_status").and_then(|v| v.as_str());
    Ok(match (session.as_str(), paid) {
        (_, Some("paid")) => PaymentState::Finished,
        ("complete", Some("unpaid")) => PaymentState::Pending,
        ("complete", _) => PaymentState::Finished,
        ("expired", _) => PaymentState::Failed,
        _ => PaymentState::Pending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(price: &str, currency: &str) -> PaymentRequest {
        PaymentRequest {
            payment_id: 42,
            merchant_id: 7,
            order_id: 1001,
            amount: "2.5".into(),
            price: price.into(),
            currency: currency.into(),
            idempotency_key: "idem-1".into(),
            return_url: None,
            cancel_url: None,
            metadata: vec![
                ("note".into(), "a b&c".into()),
                ("payment_id".into(), "spoofed".into()),
            ],
        }
    }

    fn urls() -> RedirectUrls {
        RedirectUrls {
            success: "https://shop.test/ok?x=1".into(),
            cancel: "https://shop.test/no".into(),
        }
    }

    #[test]
    fn builds_the_form() {
        let body = create_form(&request("10.50", "EUR"), &urls()).unwrap();
        let expected = [
            "mode=payment",
            "client_reference_id=42",
            "success_url=https%3A%2F%2Fshop.test%2Fok%3Fx%3D1",
            "cancel_url=https%3A%2F%2Fshop.test%2Fno",
            "line_items%5B0%5D%5Bquantity%5D=1",
            "line_items%5B0%5D%5Bprice_data%5D%5Bcurrency%5D=eur",
            "line_items%5B0%5D%5Bprice_data%5D%5Bunit_amount%5D=1050",
            "line_items%5B0%5D%5Bprice_data%5D%5Bproduct_data%5D%5Bname%5D=Order+1001",
            "metadata%5Bpayment_id%5D=42",
            "metadata%5Border_id%5D=1001",
            "metadata%5Bmerchant_id%5D=7",
            "metadata%5Bamount%5D=2.5",
            "metadata%5Bnote%5D=a+b%26c",
        ]
        .join("&");
        assert_eq!(body, expected);
    }

    #[test]
    fn uses_currency_exponents() {
        let jpy = create_form(&request("1500", "JPY"), &urls()).unwrap();
        assert!(jpy.contains("%5Bunit_amount%5D=1500&"));
        let kwd = create_form(&request("1.5", "kwd"), &urls()).unwrap();
        assert!(kwd.contains("%5Bcurrency%5D=kwd&"));
        assert!(kwd.contains("%5Bunit_amount%5D=1500&"));
    }

    #[test]
    fn rejects_bad_requests() {
        for (price, currency) in [
            ("10.001", "EUR"),
            ("10.5", "JPY"),
            ("ten", "EUR"),
            ("1", "EURO"),
        ] {
            let result = create_form(&request(price, currency), &urls());
            assert!(
                matches!(result, Err(Failure::InvalidRequest(_))),
                "{price} {currency}"
            );
        }
        let mut bad_key = request("1", "EUR");
        bad_key.metadata = vec![("a]b".into(), "x".into())];
        assert!(matches!(
            create_form(&bad_key, &urls()),
            Err(Failure::InvalidRequest(_))
        ));
    }

    #[test]
    fn parses_sessions() {
        let ok = parse_session(
            200,
            br#"{"id":"cs_1","url":"https://pay.test/cs_1","object":"x"}"#,
        );
        assert_eq!(ok.unwrap().reference, "cs_1");
        assert!(
            matches!(parse_session(200, br#"{"id":"cs_1"}"#), Err(Failure::Unavailable(m)) if m.starts_with("malformed provider response"))
        );
        assert!(matches!(
            parse_session(200, b"not json"),
            Err(Failure::Unavailable(_))
        ));
        assert!(matches!(
            parse_session(401, b"{}"),
            Err(Failure::Misconfigured(_))
        ));
        let declined = br#"{"error":{"type":"card_error","message":"no"}}"#;
        assert_eq!(
            parse_session(400, declined).unwrap_err(),
            Failure::Declined("no".into())
        );
    }

    #[test]
    fn maps_session_states() {
        let status = |body: &str| parse_status(200, body.as_bytes()).unwrap();
        let done = r#"{"status":"complete","payment_status":"paid"}"#;
        assert!(matches!(status(done), PaymentState::Finished));
        let settling = r#"{"status":"complete","payment_status":"unpaid"}"#;
        assert!(matches!(status(settling), PaymentState::Pending));
        let expired = r#"{"status":"expired","payment_status":"unpaid"}"#;
        assert!(matches!(status(expired), PaymentState::Failed));
        let open = r#"{"status":"open","payment_status":"unpaid"}"#;
        assert!(matches!(status(open), PaymentState::Pending));
        assert!(parse_status(200, b"{}").is_err());
        assert!(matches!(
            parse_status(404, b"{}"),
            Err(Failure::InvalidRequest(_))
        ));
    }
}
