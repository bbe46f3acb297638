//! Stripe Checkout events to paygate's normalized webhook events.

use crate::exports::paygate::plugins0_2_0::verifier::{
    EventStatus, Money, PaymentRef, VerifyError, WebhookEvent,
};
use guest_common::money;
use serde_json::{Map, Value};

/// Maps a verified body to events; event types paygate does not track give
/// an empty list.
pub fn map(body: &[u8]) -> Result<Vec<WebhookEvent>, VerifyError> {
    let event: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|err| VerifyError::Malformed(format!("body is not a JSON object ({err})")))?;
    let text = |field: &str| match event.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(VerifyError::Malformed(format!(
            "missing string field `{field}`"
        ))),
    };
    let event_id = text("id")?;
    let provider_type = text("type")?;
    let object = event
        .get("data")
        .and_then(|data| data.get("object"))
        .and_then(Value::as_object);
    let Some(status) = status_of(&provider_type, object) else {
        return Ok(Vec::new());
    };
    let object =
        object.ok_or_else(|| VerifyError::Malformed("missing object `data.object`".into()))?;
    Ok(vec![WebhookEvent {
        event_id,
        payment: payment_of(object)?,
        status,
        provider_type,
        amount: amount_of(object)?,
    }])
}

/// The session's `amount_total` (minor units) in `currency`, as the
/// decimal the adapter converted the price from, so the host can check it
/// against the payment's price. A session without both says nothing.
fn amount_of(object: &Map<String, Value>) -> Result<Option<Money>, VerifyError> {
    let (total, currency) = match (object.get("amount_total"), object.get("currency")) {
        (None | Some(Value::Null), _) | (_, None | Some(Value::Null)) => return Ok(None),
        (Some(total), Some(currency)) => (total, currency),
    };
    let total = total.as_u64().ok_or_else(|| {
        VerifyError::Malformed("`amount_total` is not a non-negative integer".into())
    })?;
    let currency = match currency.as_str() {
        Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
            c.to_ascii_uppercase()
        }
        _ => {
            return Err(VerifyError::Malformed(
                "`currency` is not a three-letter code".into(),
            ));
        }
    };
    Ok(Some(Money {
        value: money::from_minor_units(total, &currency),
        currency,
    }))
}

/// The status an event type implies, or `None` for untracked types.
///
/// `checkout.session.completed` with `payment_status: "unpaid"` is a
/// delayed payment method that has not settled; Stripe follows up with
/// `async_payment_succeeded` or `async_payment_failed`, so it is pending.
fn status_of(kind: &str, object: Option<&Map<String, Value>>) -> Option<EventStatus> {
    let payment_status = object
        .and_then(|o| o.get("payment_status"))
        .and_then(Value::as_str);
    match kind {
        "checkout.session.completed" if payment_status == Some("unpaid") => {
            Some(EventStatus::Pending)
        }
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            Some(EventStatus::Finished)
        }
        "checkout.session.expired" | "checkout.session.async_payment_failed" => {
            Some(EventStatus::Failed)
        }
        _ => None,
    }
}

/// The Checkout Session the event is about, by its id: the reference the
/// adapter returned when it opened the session, which the host keeps with
/// the payment. Never `client_reference_id`: anyone who can open a session
/// in the same Stripe account can put any payment id there, and finish that
/// payment by paying a session of their own (security review, finding 9).
/// The session's amount and currency are the ones paygate asked for when
/// it opened it, so the session id binds them too.
fn payment_of(object: &Map<String, Value>) -> Result<PaymentRef, VerifyError> {
    match object.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => Ok(PaymentRef::ProviderReference(id.to_string())),
        _ => Err(VerifyError::Malformed(
            "`data.object` has no session `id`".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, object: Value) -> Vec<u8> {
        json!({"id": "evt_1", "type": kind, "data": {"object": object}})
            .to_string()
            .into_bytes()
    }

    fn single(body: &[u8]) -> WebhookEvent {
        let mut events = map(body).unwrap();
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    #[test]
    fn maps_checkout_events() {
        let object = json!({"id": "cs_1", "client_reference_id": "42", "payment_status": "paid"});
        let done = single(&event("checkout.session.completed", object.clone()));
        assert_eq!(done.event_id, "evt_1");
        assert_eq!(done.provider_type, "checkout.session.completed");
        assert!(matches!(done.payment, PaymentRef::ProviderReference(ref id) if id == "cs_1"));
        assert!(matches!(done.status, EventStatus::Finished));
        let cases = [
            ("checkout.session.expired", EventStatus::Failed),
            ("checkout.session.async_payment_failed", EventStatus::Failed),
            (
                "checkout.session.async_payment_succeeded",
                EventStatus::Finished,
            ),
        ];
        for (kind, want) in cases {
            let got = single(&event(kind, object.clone())).status;
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "{kind}");
        }
    }

    #[test]
    fn says_the_sessions_amount_in_major_units() {
        let object = json!({"id": "cs_1", "amount_total": 1050, "currency": "eur"});
        let amount = single(&event("checkout.session.completed", object))
            .amount
            .expect("an amount");
        assert_eq!(
            (amount.value.as_str(), amount.currency.as_str()),
            ("10.50", "EUR")
        );
        let yen = json!({"id": "cs_1", "amount_total": 1500, "currency": "jpy"});
        let amount = single(&event("checkout.session.completed", yen))
            .amount
            .unwrap();
        assert_eq!(amount.value, "1500");
        let bare = json!({"id": "cs_1", "amount_total": null, "currency": "eur"});
        assert!(
            single(&event("checkout.session.completed", bare))
                .amount
                .is_none()
        );
        for bad in [
            json!({"id": "cs_1", "amount_total": -5, "currency": "eur"}),
            json!({"id": "cs_1", "amount_total": "10", "currency": "eur"}),
            json!({"id": "cs_1", "amount_total": 10, "currency": "euro"}),
        ] {
            let got = map(&event("checkout.session.completed", bad));
            assert!(matches!(got, Err(VerifyError::Malformed(_))));
        }
    }

    #[test]
    fn unsettled_completion_is_pending() {
        let object = json!({"id": "cs_1", "client_reference_id": "42", "payment_status": "unpaid"});
        let got = single(&event("checkout.session.completed", object));
        assert!(matches!(got.status, EventStatus::Pending));
    }

    #[test]
    fn names_the_session_never_the_client_reference() {
        for object in [
            json!({"id": "cs_9"}),
            json!({"id": "cs_9", "client_reference_id": "x"}),
            json!({"id": "cs_9", "client_reference_id": "42"}),
        ] {
            let got = single(&event("checkout.session.expired", object));
            assert!(matches!(got.payment, PaymentRef::ProviderReference(ref id) if id == "cs_9"));
        }
    }

    #[test]
    fn ignores_untracked_types() {
        let body = event("payment_intent.created", json!({"id": "pi_1"}));
        assert!(map(&body).unwrap().is_empty());
        let bare = br#"{"id":"evt_2","type":"customer.created"}"#;
        assert!(map(bare).unwrap().is_empty());
    }

    #[test]
    fn rejects_malformed_bodies() {
        let malformed = |body: &[u8]| matches!(map(body), Err(VerifyError::Malformed(_)));
        assert!(malformed(b"not json"));
        assert!(malformed(b"[]"));
        assert!(malformed(br#"{"type":"checkout.session.completed"}"#));
        assert!(malformed(br#"{"id":"evt_1"}"#));
        assert!(malformed(
            br#"{"id":"evt_1","type":"checkout.session.completed"}"#
        ));
        assert!(malformed(&event(
            "checkout.session.completed",
            json!({"client_reference_id": "x"})
        )));
    }
}
