//! The internal webhook scheme's flat JSON body; its signature (a hex
//! HMAC-SHA256 of the raw body) is checked by `guest_common::signature`.

use crate::exports::paygate::plugins0_2_0::verifier::{
    Event, EventStatus, PaymentRef, RefundEvent, RefundStatus, VerifyError, WebhookEvent,
};
use guest_common::{crypto, hex};
use serde_json::{Map, Value};

/// The longest `reference` taken; a provider's ids are far shorter.
const MAX_REFERENCE: usize = 255;

/// Turns a verified body into its one event: about a refund when the body
/// has `refund_id`, else about a payment.
///
/// The event id is derived from the body's hash, since the scheme has no
/// event id of its own and a replay must be recognisable as one.
///
/// A body may also carry `reference`, the provider's id of the payment or
/// refund (the sandbox sends its link's or refund's id): the event then
/// names it by that, so it moves only what that reference was returned for,
/// and a link or refund opened by anyone else naming another id moves
/// nothing (security review, finding 16). Without it the event names the
/// id, as API.md's body does.
pub fn parse_event(body: &[u8]) -> Result<Event, VerifyError> {
    let object: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|err| VerifyError::Malformed(format!("body is not a JSON object ({err})")))?;
    let reference = reference(&object)?;
    let digest = hex::encode(&crypto::sha256(body));
    let event_id = format!("ih_{}", &digest[..32]);
    if object.contains_key("refund_id") {
        if object.contains_key("payment_id") {
            return Err(VerifyError::Malformed(
                "a body names `payment_id` or `refund_id`, not both".into(),
            ));
        }
        let (status, name) = match object.get("status").and_then(Value::as_str) {
            Some("succeeded") => (RefundStatus::Succeeded, "succeeded"),
            Some("failed") => (RefundStatus::Failed, "failed"),
            _ => {
                return Err(VerifyError::Malformed(
                    "field `status` of a refund must be \"succeeded\" or \"failed\"".into(),
                ));
            }
        };
        return Ok(Event::Refund(RefundEvent {
            event_id,
            refund_id: Some(id_field(&object, "refund_id")?),
            reference,
            status,
            provider_type: format!("internal.refund.{name}"),
            amount: None,
        }));
    }
    let payment_id = id_field(&object, "payment_id")?;
    let (status, name) = match object.get("status").and_then(Value::as_str) {
        Some("finished") => (EventStatus::Finished, "finished"),
        Some("failed") => (EventStatus::Failed, "failed"),
        _ => {
            return Err(VerifyError::Malformed(
                "field `status` must be \"finished\" or \"failed\"".into(),
            ));
        }
    };
    let payment = match reference {
        None => PaymentRef::PaymentId(payment_id),
        Some(r) => PaymentRef::ProviderReference(r),
    };
    Ok(Event::Payment(WebhookEvent {
        event_id,
        payment,
        status,
        provider_type: format!("internal.{name}"),
        amount: None,
    }))
}

/// A non-negative integer field, as a number or a string of digits.
fn id_field(object: &Map<String, Value>, field: &str) -> Result<u64, VerifyError> {
    match object.get(field) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) if s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        VerifyError::Malformed(format!("field `{field}` must be a non-negative integer"))
    })
}

/// The optional `reference`: a string of 1 to [`MAX_REFERENCE`] bytes.
fn reference(object: &Map<String, Value>) -> Result<Option<String>, VerifyError> {
    match object.get("reference") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(r)) if !r.is_empty() && r.len() <= MAX_REFERENCE => Ok(Some(r.clone())),
        Some(_) => Err(VerifyError::Malformed(format!(
            "field `reference` must be a string of 1 to {MAX_REFERENCE} bytes"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"payment_id":42,"status":"finished"}"#;

    fn payment_event(body: &[u8]) -> Result<WebhookEvent, VerifyError> {
        match parse_event(body)? {
            Event::Payment(event) => Ok(event),
            Event::Refund(event) => panic!("expected a payment event, got {event:?}"),
        }
    }

    fn refund_event(body: &[u8]) -> RefundEvent {
        match parse_event(body) {
            Ok(Event::Refund(event)) => event,
            other => panic!("expected a refund event, got {other:?}"),
        }
    }

    #[test]
    fn parses_refund_events() {
        let done = refund_event(br#"{"refund_id":7,"status":"succeeded"}"#);
        assert_eq!(done.refund_id, Some(7));
        assert_eq!(done.reference, None);
        assert!(matches!(done.status, RefundStatus::Succeeded));
        assert_eq!(done.provider_type, "internal.refund.succeeded");
        assert!(done.event_id.starts_with("ih_"));
        let failed = refund_event(br#"{"refund_id":"8","status":"failed","reference":"rf_1"}"#);
        assert_eq!(failed.refund_id, Some(8));
        assert_eq!(failed.reference.as_deref(), Some("rf_1"));
        assert!(matches!(failed.status, RefundStatus::Failed));
        assert_ne!(failed.event_id, done.event_id);
    }

    #[test]
    fn a_refund_body_is_checked_as_strictly() {
        let message = |body: &[u8]| match parse_event(body) {
            Err(VerifyError::Malformed(m)) => m,
            other => panic!("expected malformed, got {other:?}"),
        };
        assert!(message(br#"{"refund_id":7,"status":"finished"}"#).contains("status"));
        assert!(message(br#"{"refund_id":7}"#).contains("status"));
        assert!(message(br#"{"refund_id":-7,"status":"failed"}"#).contains("refund_id"));
        assert!(message(br#"{"refund_id":null,"status":"failed"}"#).contains("refund_id"));
        let both = br#"{"refund_id":7,"payment_id":1,"status":"failed"}"#;
        assert!(message(both).contains("not both"));
        let bad_reference = br#"{"refund_id":7,"status":"failed","reference":""}"#;
        assert!(message(bad_reference).contains("reference"));
    }

    #[test]
    fn parses_events() {
        let event = payment_event(BODY).unwrap();
        assert!(matches!(event.payment, PaymentRef::PaymentId(42)));
        assert!(matches!(event.status, EventStatus::Finished));
        assert_eq!(event.provider_type, "internal.finished");
        assert_eq!(event.event_id.len(), 35);
        assert!(event.event_id.starts_with("ih_"));
        // The same body gives the same id, so the host can spot replays.
        assert_eq!(payment_event(BODY).unwrap().event_id, event.event_id);
        let failed = payment_event(br#"{"payment_id":"7","status":"failed"}"#).unwrap();
        assert!(matches!(failed.payment, PaymentRef::PaymentId(7)));
        assert_eq!(failed.provider_type, "internal.failed");
        assert_ne!(failed.event_id, event.event_id);
    }

    #[test]
    fn a_reference_names_the_payment_instead_of_its_id() {
        let event =
            payment_event(br#"{"payment_id":42,"status":"finished","reference":"pl_1"}"#).unwrap();
        assert!(matches!(event.payment, PaymentRef::ProviderReference(ref r) if r == "pl_1"));
        let null = payment_event(br#"{"payment_id":42,"status":"failed","reference":null}"#);
        assert!(matches!(null.unwrap().payment, PaymentRef::PaymentId(42)));
        let long = format!(
            r#"{{"payment_id":1,"status":"failed","reference":"{}"}}"#,
            "x".repeat(256)
        );
        for bad in [
            br#"{"payment_id":1,"status":"failed","reference":""}"#.to_vec(),
            br#"{"payment_id":1,"status":"failed","reference":7}"#.to_vec(),
            long.into_bytes(),
        ] {
            assert!(
                matches!(payment_event(&bad), Err(VerifyError::Malformed(m)) if m.contains("reference"))
            );
        }
    }

    #[test]
    fn names_the_bad_field() {
        let message = |body: &[u8]| match parse_event(body) {
            Err(VerifyError::Malformed(m)) => m,
            other => panic!("expected malformed, got {other:?}"),
        };
        assert!(message(b"nope").contains("JSON"));
        assert!(message(br#"{"status":"failed"}"#).contains("payment_id"));
        assert!(message(br#"{"payment_id":-1,"status":"failed"}"#).contains("payment_id"));
        assert!(message(br#"{"payment_id":1.5,"status":"failed"}"#).contains("payment_id"));
        assert!(message(br#"{"payment_id":"","status":"failed"}"#).contains("payment_id"));
        assert!(message(br#"{"payment_id":1,"status":"pending"}"#).contains("status"));
        assert!(message(br#"{"payment_id":1}"#).contains("status"));
    }
}
