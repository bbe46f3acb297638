//! Stripe Checkout and Refund events to paygate's normalized events.

use crate::exports::paygate::plugins0_2_0::verifier::{
    Event, EventStatus, Money, PaymentRef, RefundEvent, RefundStatus, VerifyError, WebhookEvent,
};
use guest_common::money;
use serde_json::{Map, Value};

/// Maps a verified body to events; event types paygate does not track give
/// an empty list.
pub fn map(body: &[u8]) -> Result<Vec<Event>, VerifyError> {
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
    let required =
        || object.ok_or_else(|| VerifyError::Malformed("missing object `data.object`".into()));
    if let Some(status) = refund_status_of(&provider_type, object) {
        let object = required()?;
        return Ok(vec![Event::Refund(RefundEvent {
            event_id,
            reference: Some(object_id(object, "refund")?),
            refund_id: paygate_refund_id(object),
            status,
            provider_type,
            amount: amount_of(object, "amount")?,
        })]);
    }
    let Some(status) = status_of(&provider_type, object) else {
        return Ok(Vec::new());
    };
    let object = required()?;
    Ok(vec![Event::Payment(WebhookEvent {
        event_id,
        payment: PaymentRef::ProviderReference(object_id(object, "session")?),
        status,
        provider_type,
        amount: amount_of(object, "amount_total")?,
    })])
}

/// The object's `field` (minor units) in its `currency`, as the decimal
/// the adapter converted the price from, so the host can check it against
/// the payment's or refund's price: a session's `amount_total`, a refund's
/// `amount`. An object without both says nothing.
fn amount_of(object: &Map<String, Value>, field: &str) -> Result<Option<Money>, VerifyError> {
    let (total, currency) = match (object.get(field), object.get("currency")) {
        (None | Some(Value::Null), _) | (_, None | Some(Value::Null)) => return Ok(None),
        (Some(total), Some(currency)) => (total, currency),
    };
    let total = total.as_u64().ok_or_else(|| {
        VerifyError::Malformed(format!("`{field}` is not a non-negative integer"))
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

/// The status a refund event implies, or `None` when it is not about a
/// refund. Stripe sends `refund.updated` as a refund's `status` changes
/// (`pending`, `requires_action`, `succeeded`, `failed`, `canceled`) and
/// `refund.failed` when it fails; `charge.refund.updated` is the older
/// name of the first.
fn refund_status_of(kind: &str, object: Option<&Map<String, Value>>) -> Option<RefundStatus> {
    let status = object.and_then(|o| o.get("status")).and_then(Value::as_str);
    match kind {
        "refund.failed" => Some(RefundStatus::Failed),
        "refund.created" | "refund.updated" | "charge.refund.updated" => Some(match status {
            Some("succeeded") => RefundStatus::Succeeded,
            Some("failed" | "canceled") => RefundStatus::Failed,
            _ => RefundStatus::Pending,
        }),
        _ => None,
    }
}

/// The object the event is about, by its id: for a Checkout Session or a
/// Refund, the reference the adapter got back when it asked for it, which
/// the host keeps. Never `client_reference_id` or metadata alone: anyone
/// who can open a session or refund in the same Stripe account can put any
/// paygate id there, and move that payment by paying a session of their own
/// (security review, finding 9). The session's (refund's) amount and
/// currency are the ones paygate asked for, so the id binds them too.
fn object_id(object: &Map<String, Value>, what: &str) -> Result<String, VerifyError> {
    match object.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => Ok(id.to_string()),
        _ => Err(VerifyError::Malformed(format!(
            "`data.object` has no {what} `id`"
        ))),
    }
}

/// paygate's refund id, which the adapter put in the refund's
/// `metadata[paygate_refund_id]`; the host only moves the refund when it
/// agrees with the reference. A refund made outside paygate has none.
fn paygate_refund_id(object: &Map<String, Value>) -> Option<u64> {
    let id = object.get("metadata")?.get("paygate_refund_id")?.as_str()?;
    id.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| id.parse().ok())
        .flatten()
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
        match events.remove(0) {
            Event::Payment(event) => event,
            Event::Refund(event) => panic!("expected a payment event, got {event:?}"),
        }
    }

    fn refund(body: &[u8]) -> RefundEvent {
        match map(body).unwrap().as_slice() {
            [Event::Refund(event)] => event.clone(),
            other => panic!("expected one refund event, got {other:?}"),
        }
    }

    #[test]
    fn maps_refund_events_by_their_id_and_paygates() {
        let object = json!({"id": "re_1", "object": "refund", "amount": 250, "currency": "eur",
                            "status": "succeeded", "metadata": {"paygate_refund_id": "7"}});
        let done = refund(&event("refund.updated", object.clone()));
        assert_eq!(done.event_id, "evt_1");
        assert_eq!(done.reference.as_deref(), Some("re_1"));
        assert_eq!(done.refund_id, Some(7));
        assert!(matches!(done.status, RefundStatus::Succeeded));
        assert_eq!(done.provider_type, "refund.updated");
        let amount = done.amount.unwrap();
        assert_eq!(
            (amount.value.as_str(), amount.currency.as_str()),
            ("2.50", "EUR")
        );
        let cases = [
            ("refund.failed", "failed", RefundStatus::Failed),
            ("refund.updated", "canceled", RefundStatus::Failed),
            ("refund.updated", "failed", RefundStatus::Failed),
            ("refund.updated", "pending", RefundStatus::Pending),
            ("refund.updated", "requires_action", RefundStatus::Pending),
            (
                "charge.refund.updated",
                "succeeded",
                RefundStatus::Succeeded,
            ),
            ("refund.created", "succeeded", RefundStatus::Succeeded),
        ];
        for (kind, status, want) in cases {
            let mut object = object.clone();
            object["status"] = json!(status);
            let got = refund(&event(kind, object)).status;
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "{kind} {status}");
        }
    }

    #[test]
    fn a_refund_without_paygates_id_still_names_its_reference() {
        for metadata in [json!({}), json!({"paygate_refund_id": "x7"}), json!(null)] {
            let object = json!({"id": "re_2", "status": "failed", "metadata": metadata});
            let got = refund(&event("refund.failed", object));
            assert_eq!(
                (got.reference.as_deref(), got.refund_id),
                (Some("re_2"), None)
            );
        }
        let no_id = json!({"status": "failed", "metadata": {"paygate_refund_id": "7"}});
        assert!(matches!(
            map(&event("refund.failed", no_id)),
            Err(VerifyError::Malformed(m)) if m.contains("refund")
        ));
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
