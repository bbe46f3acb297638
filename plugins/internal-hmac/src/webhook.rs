//! The internal webhook scheme's flat JSON body; its signature (a hex
//! HMAC-SHA256 of the raw body) is checked by `guest_common::signature`.

use crate::exports::paygate::plugins::verifier::{
    EventStatus, PaymentRef, VerifyError, WebhookEvent,
};
use guest_common::{crypto, hex};
use serde_json::{Map, Value};

/// The longest `reference` taken; a provider's ids are far shorter.
const MAX_REFERENCE: usize = 255;

/// Turns a verified body into its one event.
///
/// The event id is derived from the body's hash, since the scheme has no
/// event id of its own and a replay must be recognisable as one.
///
/// A body may also carry `reference`, the provider's id of the payment (the
/// sandbox sends its link id): the event then names the payment by it, so it
/// moves only the payment that reference was returned for, and a link opened
/// by anyone else naming another `payment_id` moves nothing (security
/// review, finding 16). Without it the event names `payment_id`, as API.md's
/// body does.
pub fn parse_event(body: &[u8]) -> Result<WebhookEvent, VerifyError> {
    let object: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|err| VerifyError::Malformed(format!("body is not a JSON object ({err})")))?;
    let payment_id = match object.get("payment_id") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) if s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        VerifyError::Malformed("field `payment_id` must be a non-negative integer".into())
    })?;
    let (status, name) = match object.get("status").and_then(Value::as_str) {
        Some("finished") => (EventStatus::Finished, "finished"),
        Some("failed") => (EventStatus::Failed, "failed"),
        _ => {
            return Err(VerifyError::Malformed(
                "field `status` must be \"finished\" or \"failed\"".into(),
            ));
        }
    };
    let payment = match object.get("reference") {
        None | Some(Value::Null) => PaymentRef::PaymentId(payment_id),
        Some(Value::String(r)) if !r.is_empty() && r.len() <= MAX_REFERENCE => {
            PaymentRef::ProviderReference(r.clone())
        }
        Some(_) => {
            return Err(VerifyError::Malformed(format!(
                "field `reference` must be a string of 1 to {MAX_REFERENCE} bytes"
            )));
        }
    };
    let digest = hex::encode(&crypto::sha256(body));
    Ok(WebhookEvent {
        event_id: format!("ih_{}", &digest[..32]),
        payment,
        status,
        provider_type: format!("internal.{name}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"payment_id":42,"status":"finished"}"#;

    #[test]
    fn parses_events() {
        let event = parse_event(BODY).unwrap();
        assert!(matches!(event.payment, PaymentRef::PaymentId(42)));
        assert!(matches!(event.status, EventStatus::Finished));
        assert_eq!(event.provider_type, "internal.finished");
        assert_eq!(event.event_id.len(), 35);
        assert!(event.event_id.starts_with("ih_"));
        // The same body gives the same id, so the host can spot replays.
        assert_eq!(parse_event(BODY).unwrap().event_id, event.event_id);
        let failed = parse_event(br#"{"payment_id":"7","status":"failed"}"#).unwrap();
        assert!(matches!(failed.payment, PaymentRef::PaymentId(7)));
        assert_eq!(failed.provider_type, "internal.failed");
        assert_ne!(failed.event_id, event.event_id);
    }

    #[test]
    fn a_reference_names_the_payment_instead_of_its_id() {
        let event =
            parse_event(br#"{"payment_id":42,"status":"finished","reference":"pl_1"}"#).unwrap();
        assert!(matches!(event.payment, PaymentRef::ProviderReference(ref r) if r == "pl_1"));
        let null = parse_event(br#"{"payment_id":42,"status":"failed","reference":null}"#);
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
                matches!(parse_event(&bad), Err(VerifyError::Malformed(m)) if m.contains("reference"))
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
