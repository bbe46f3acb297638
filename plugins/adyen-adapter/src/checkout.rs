//! `POST /v71/payments`: the request body and what Adyen's `resultCode`
//! means for paygate, free of WIT imports.

use crate::amount;
use crate::exports::paygate::plugins0_2_0::provider::{PaymentRequest, PaymentSession};
use guest_common::provider::{Failure, malformed, required_str, success_object, truncate};
use serde_json::{Map, Value, json};

/// What the alias's settings add to a payment request.
pub struct Checkout<'a> {
    /// `merchantAccount`: the Adyen account that collects.
    pub merchant_account: &'a str,
    /// `paymentMethod.type`: a method that pays on a page Adyen redirects to.
    pub payment_method: &'a str,
    /// `returnUrl`: where Adyen sends the buyer back, whatever the outcome.
    pub return_url: &'a str,
}

/// The JSON body of `POST /v71/payments`: paygate's payment id as Adyen's
/// `reference` (its webhooks echo it as `merchantReference`), the price in
/// minor units, the merchant's order id, and its metadata when it has some.
/// The longest `Idempotency-Key` Adyen takes.
const MAX_IDEMPOTENCY_KEY: usize = 64;

/// The `Idempotency-Key` Adyen is sent for paygate's `key`. paygate's keys
/// can be longer than Adyen's limit (the merchant's own key is part of
/// them), so a longer one goes as its SHA-256 in hex: 64 characters, and as
/// stable across retries as the key itself.
pub fn idempotency_key(key: &str) -> String {
    if key.len() <= MAX_IDEMPOTENCY_KEY {
        key.to_owned()
    } else {
        guest_common::hex::encode(&guest_common::crypto::sha256(key.as_bytes()))
    }
}

pub fn payment_body(request: &PaymentRequest, checkout: &Checkout<'_>) -> Result<Vec<u8>, Failure> {
    let mut body = json!({
        "merchantAccount": checkout.merchant_account,
        "reference": request.payment_id.to_string(),
        "amount": amount::minor(&request.price, &request.currency)?,
        "paymentMethod": { "type": checkout.payment_method },
        "returnUrl": checkout.return_url,
        "channel": "Web",
        "merchantOrderReference": request.order_id.to_string(),
    });
    let metadata = adyen_metadata(&request.metadata);
    if !metadata.is_empty() {
        body["metadata"] = Value::Object(metadata);
    }
    Ok(body.to_string().into_bytes())
}

/// Most `metadata` entries Adyen takes, and the longest key and value (in
/// characters); it answers 422 to a request beyond them.
const MAX_METADATA: usize = 20;
const MAX_METADATA_KEY: usize = 20;
const MAX_METADATA_VALUE: usize = 80;

/// The payment's metadata as far as Adyen can carry it: the first
/// [`MAX_METADATA`] entries whose key and value fit Adyen's limits. paygate
/// allows longer ones (40-character keys, 500-character values) and keeps
/// all of them, in the payment and in every notification; a payment is
/// never refused for a copy at the provider.
fn adyen_metadata(metadata: &[(String, String)]) -> Map<String, Value> {
    metadata
        .iter()
        .filter(|(key, value)| {
            key.chars().count() <= MAX_METADATA_KEY && value.chars().count() <= MAX_METADATA_VALUE
        })
        .take(MAX_METADATA)
        .map(|(key, value)| (key.clone(), Value::String(value.clone())))
        .collect()
}

/// What one `resultCode` of a 200 answer means for paygate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `RedirectShopper`: send the buyer to `action.url`.
    Redirect,
    /// `Authorised`, `Pending`, `Received`: taken; the webhook tells the
    /// rest, and the buyer goes straight to the return URL.
    Taken,
    /// `Refused`, `Cancelled`: this payment will not happen.
    Refused,
    /// `Error`: Adyen failed while processing; worth trying again.
    Failed,
    /// Anything else (`IdentifyShopper`, `ChallengeShopper`,
    /// `PresentToShopper`, ...): the payment method needs Adyen's
    /// client-side component, which a redirect flow cannot give it.
    NeedsComponent,
}

/// Maps a `resultCode` to its [`Outcome`].
pub fn outcome(result_code: &str) -> Outcome {
    match result_code {
        "RedirectShopper" => Outcome::Redirect,
        "Authorised" | "Pending" | "Received" => Outcome::Taken,
        "Refused" | "Cancelled" => Outcome::Refused,
        "Error" => Outcome::Failed,
        _ => Outcome::NeedsComponent,
    }
}

/// Reads Adyen's answer to `POST /v71/payments`. Adyen refuses a payment
/// in a 200 body (`resultCode` `Refused`), not with an HTTP error, so the
/// body decides; HTTP errors are classified as for every provider.
pub fn parse_payment(
    status: u16,
    body: &[u8],
    return_url: &str,
) -> Result<PaymentSession, Failure> {
    let answer = success_object(status, body)?;
    let result_code = required_str(&answer, "resultCode")?;
    let reason = || {
        answer
            .get("refusalReason")
            .and_then(Value::as_str)
            .map(|reason| format!(": {}", truncate(reason)))
            .unwrap_or_default()
    };
    match outcome(&result_code) {
        Outcome::Redirect => Ok(PaymentSession {
            reference: required_str(&answer, "pspReference")?,
            payment_url: redirect_url(&answer)?,
        }),
        Outcome::Taken => Ok(PaymentSession {
            reference: required_str(&answer, "pspReference")?,
            payment_url: return_url.to_string(),
        }),
        Outcome::Refused => Err(Failure::Declined(format!(
            "Adyen answered {result_code}{}",
            reason()
        ))),
        Outcome::Failed => Err(Failure::Unavailable(format!(
            "Adyen answered Error{}",
            reason()
        ))),
        Outcome::NeedsComponent => Err(Failure::Misconfigured(format!(
            "Adyen answered resultCode {:?}, which needs its client-side component; \
             set `payment-method` to a redirect payment method",
            truncate(&result_code)
        ))),
    }
}

/// The page of a `RedirectShopper` answer's `action`. Only a `GET`
/// redirect can be a payment URL: a `POST` one needs a form the buyer's
/// browser submits, which paygate cannot hand out as a link.
fn redirect_url(answer: &Map<String, Value>) -> Result<String, Failure> {
    let action = answer
        .get("action")
        .and_then(Value::as_object)
        .ok_or_else(|| malformed("RedirectShopper without an `action` object"))?;
    match action.get("type").and_then(Value::as_str) {
        Some("redirect") => {}
        other => {
            return Err(Failure::Misconfigured(format!(
                "Adyen asked for a {:?} action, which needs its client-side component; \
                 set `payment-method` to a redirect payment method",
                other.map(truncate).unwrap_or_default()
            )));
        }
    }
    match action.get("method").and_then(Value::as_str) {
        Some(method) if method.eq_ignore_ascii_case("GET") => required_str(action, "url"),
        Some(method) if method.eq_ignore_ascii_case("POST") => Err(Failure::Misconfigured(
            "the payment method redirects with a form post, which paygate cannot send the \
             buyer to; set `payment-method` to one that redirects with GET"
                .into(),
        )),
        _ => Err(malformed("`action.method` is neither GET nor POST")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_idempotency_key_goes_as_its_hash() {
        assert_eq!(idempotency_key("7-order-1042"), "7-order-1042");
        let long = format!("7-{}", "k".repeat(255));
        let sent = idempotency_key(&long);
        assert_eq!(sent.len(), MAX_IDEMPOTENCY_KEY);
        assert_eq!(sent, idempotency_key(&long), "stable across retries");
        assert_ne!(sent, idempotency_key(&format!("{long}x")));
    }

    const RETURN_URL: &str = "https://shop.example/return";

    fn request(price: &str, currency: &str) -> PaymentRequest {
        PaymentRequest {
            payment_id: 42,
            merchant_id: 7,
            order_id: 1042,
            amount: "1".into(),
            price: price.into(),
            currency: currency.into(),
            idempotency_key: "idem-42".into(),
            return_url: Some(RETURN_URL.into()),
            cancel_url: None,
            metadata: vec![("order".into(), "A-1".into())],
        }
    }

    fn checkout() -> Checkout<'static> {
        Checkout {
            merchant_account: "PaygateDemo",
            payment_method: "ideal",
            return_url: RETURN_URL,
        }
    }

    fn body_of(request: &PaymentRequest) -> Value {
        serde_json::from_slice(&payment_body(request, &checkout()).unwrap()).unwrap()
    }

    #[test]
    fn builds_the_payment_body() {
        assert_eq!(
            body_of(&request("10.00", "EUR")),
            json!({
                "merchantAccount": "PaygateDemo", "reference": "42",
                "amount": {"value": 1000, "currency": "EUR"},
                "paymentMethod": {"type": "ideal"}, "returnUrl": RETURN_URL,
                "channel": "Web", "merchantOrderReference": "1042",
                "metadata": {"order": "A-1"},
            })
        );
        let mut bare = request("1500", "JPY");
        bare.metadata.clear();
        let body = body_of(&bare);
        assert_eq!(body["amount"], json!({"value": 1500, "currency": "JPY"}));
        assert!(body.get("metadata").is_none(), "{body}");
    }

    #[test]
    fn sends_only_the_metadata_adyen_takes() {
        let mut many = request("10.00", "EUR");
        many.metadata = (0..40)
            .map(|i| (format!("k{i:02}"), format!("v{i}")))
            .collect();
        many.metadata.insert(0, ("a".repeat(21), "long key".into()));
        many.metadata
            .insert(1, ("long_value".into(), "x".repeat(81)));
        many.metadata.insert(2, ("é".repeat(20), "ü".repeat(80)));
        let body = body_of(&many);
        let sent = body["metadata"].as_object().unwrap();
        assert_eq!(sent.len(), 20, "{body}");
        assert!(!sent.contains_key(&"a".repeat(21)));
        assert!(!sent.contains_key("long_value"));
        // Limits are in characters, not bytes.
        assert_eq!(sent[&"é".repeat(20)], json!("ü".repeat(80)));
        assert!(sent.contains_key("k00") && sent.contains_key("k18"));
        assert!(!sent.contains_key("k19"));
    }

    #[test]
    fn refuses_prices_adyen_cannot_charge() {
        for (price, currency) in [("10.001", "EUR"), ("1.5", "JPY"), ("1", "EURO")] {
            assert!(
                matches!(
                    payment_body(&request(price, currency), &checkout()),
                    Err(Failure::InvalidRequest(_))
                ),
                "{price} {currency}"
            );
        }
    }

    #[test]
    fn maps_result_codes() {
        let cases = [
            ("RedirectShopper", Outcome::Redirect),
            ("Authorised", Outcome::Taken),
            ("Pending", Outcome::Taken),
            ("Received", Outcome::Taken),
            ("Refused", Outcome::Refused),
            ("Cancelled", Outcome::Refused),
            ("Error", Outcome::Failed),
            ("IdentifyShopper", Outcome::NeedsComponent),
            ("ChallengeShopper", Outcome::NeedsComponent),
            ("PresentToShopper", Outcome::NeedsComponent),
            ("authorised", Outcome::NeedsComponent),
        ];
        for (code, want) in cases {
            assert_eq!(outcome(code), want, "{code}");
        }
    }

    fn parse(body: Value) -> Result<PaymentSession, Failure> {
        parse_payment(200, body.to_string().as_bytes(), RETURN_URL)
    }

    #[test]
    fn redirects_to_the_action_url() {
        let session = parse(json!({
            "resultCode": "RedirectShopper", "pspReference": "QFQTPCQ8HXSKGK82",
            "action": {"type": "redirect", "method": "GET",
                       "url": "https://checkout.test/redirect?id=1"},
        }))
        .unwrap();
        assert_eq!(session.reference, "QFQTPCQ8HXSKGK82");
        assert_eq!(session.payment_url, "https://checkout.test/redirect?id=1");
    }

    #[test]
    fn a_taken_payment_returns_the_buyer() {
        for code in ["Authorised", "Pending", "Received"] {
            let session = parse(json!({"resultCode": code, "pspReference": "P1"})).unwrap();
            assert_eq!(
                (session.reference.as_str(), session.payment_url.as_str()),
                ("P1", RETURN_URL)
            );
        }
    }

    #[test]
    fn refusals_come_in_a_200_body() {
        let refused = parse(json!({"resultCode": "Refused", "pspReference": "P1",
                                   "refusalReason": "Not enough balance"}));
        assert_eq!(
            refused.unwrap_err(),
            Failure::Declined("Adyen answered Refused: Not enough balance".into())
        );
        let cancelled = parse(json!({"resultCode": "Cancelled", "pspReference": "P1"}));
        assert!(matches!(cancelled, Err(Failure::Declined(_))));
        let error = parse(json!({"resultCode": "Error", "refusalReason": "Acquirer Error"}));
        assert!(matches!(error, Err(Failure::Unavailable(m)) if m.contains("Acquirer Error")));
        let challenge = parse(json!({"resultCode": "ChallengeShopper", "pspReference": "P1"}));
        assert!(matches!(challenge, Err(Failure::Misconfigured(_))));
    }

    #[test]
    fn unusable_answers_are_unavailable_or_misconfigured() {
        let unavailable = |body: Value| matches!(parse(body), Err(Failure::Unavailable(_)));
        assert!(unavailable(json!({"pspReference": "P1"})));
        assert!(unavailable(json!({"resultCode": "Authorised"})));
        assert!(unavailable(
            json!({"resultCode": "RedirectShopper", "pspReference": "P1"})
        ));
        assert!(unavailable(json!({
            "resultCode": "RedirectShopper",
            "action": {"type": "redirect", "method": "GET", "url": "https://x.test"},
        })));
        assert!(unavailable(json!({
            "resultCode": "RedirectShopper", "pspReference": "P1",
            "action": {"type": "redirect", "method": "GET"},
        })));
        assert!(unavailable(json!({
            "resultCode": "RedirectShopper", "pspReference": "P1",
            "action": {"type": "redirect", "url": "https://x.test"},
        })));
        let form_post = parse(json!({
            "resultCode": "RedirectShopper", "pspReference": "P1",
            "action": {"type": "redirect", "method": "POST", "url": "https://x.test",
                       "data": {"PaReq": "x"}},
        }));
        assert!(matches!(form_post, Err(Failure::Misconfigured(_))));
        let sdk = parse(json!({
            "resultCode": "RedirectShopper", "pspReference": "P1",
            "action": {"type": "sdk", "method": "GET", "url": "https://x.test"},
        }));
        assert!(matches!(sdk, Err(Failure::Misconfigured(_))));
        assert!(matches!(
            parse_payment(200, b"<html>", RETURN_URL),
            Err(Failure::Unavailable(_))
        ));
        assert!(matches!(
            parse_payment(200, b"[]", RETURN_URL),
            Err(Failure::Unavailable(_))
        ));
    }

    #[test]
    fn classifies_http_errors() {
        let error = |status: u16, code: &str, kind: &str| {
            let body = json!({"status": status, "errorCode": code, "message": "Refused by test",
                              "errorType": kind, "pspReference": "E1"});
            parse_payment(status, body.to_string().as_bytes(), RETURN_URL).unwrap_err()
        };
        assert!(matches!(
            error(401, "000", "security"),
            Failure::Misconfigured(_)
        ));
        assert!(matches!(
            error(403, "010", "security"),
            Failure::Misconfigured(_)
        ));
        assert_eq!(
            error(422, "137", "validation"),
            Failure::InvalidRequest("Refused by test".into())
        );
        assert!(matches!(
            error(400, "702", "validation"),
            Failure::InvalidRequest(_)
        ));
        assert!(matches!(
            error(429, "000", "throttling"),
            Failure::Unavailable(_)
        ));
        assert!(matches!(
            error(500, "000", "internal"),
            Failure::Unavailable(_)
        ));
    }
}
