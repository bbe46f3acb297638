//! A verified notification item to paygate's event: payments by their
//! `AUTHORISATION`, refunds by `REFUND`, `REFUND_FAILED` and
//! `REFUNDED_REVERSED`; other event codes are valid but untracked.

use crate::exports::paygate::plugins0_2_0::verifier::{
    Event, EventStatus, Money, PaymentRef, RefundEvent, RefundStatus, VerifyError, WebhookEvent,
};
use crate::item::Item;
use guest_common::{money, reference};

/// The event a verified item gives, or `None` for an event code paygate
/// does not track.
pub fn map(item: &Item) -> Result<Option<Event>, VerifyError> {
    let code = item.event_code.as_str();
    if !matches!(
        code,
        "AUTHORISATION" | "REFUND" | "REFUND_FAILED" | "REFUNDED_REVERSED"
    ) {
        return Ok(None);
    }
    let succeeded = match item.success.as_str() {
        "true" => true,
        "false" => false,
        _ => return Err(malformed("`success` is neither \"true\" nor \"false\"")),
    };
    if item.psp_reference.is_empty() {
        return Err(malformed(&format!("a {code} item has no `pspReference`")));
    }
    // Adyen sends one item per event and outcome; a retry repeats both.
    let event_id = format!("{code}:{}:{}", item.psp_reference, item.success);
    let amount = Some(amount_of(item)?);
    Ok(Some(match code {
        // The payment is named by Adyen's own reference, which the adapter
        // got back and the host stored; never by `merchantReference`, which
        // whoever can open a payment on the account can set.
        "AUTHORISATION" => Event::Payment(WebhookEvent {
            event_id,
            payment: PaymentRef::ProviderReference(item.psp_reference.clone()),
            status: if succeeded {
                EventStatus::Finished
            } else {
                EventStatus::Failed
            },
            provider_type: code.into(),
            amount,
        }),
        _ => Event::Refund(RefundEvent {
            event_id,
            // A refund item's `pspReference` is the refund's own, as the
            // adapter's `refund` returned it.
            reference: Some(item.psp_reference.clone()),
            refund_id: reference::parse_refund(&item.merchant_reference),
            // REFUND_FAILED and REFUNDED_REVERSED say with `success` "true"
            // that the refund did not happen.
            status: if code == "REFUND" && succeeded {
                RefundStatus::Succeeded
            } else {
                RefundStatus::Failed
            },
            provider_type: code.into(),
            amount,
        }),
    }))
}

/// The item's amount in major units, counted as the adapter counted it
/// ([`money::adyen_exponent`]), so the host can compare it with the price.
fn amount_of(item: &Item) -> Result<Money, VerifyError> {
    let value = item
        .value
        .ok_or_else(|| malformed(&format!("a {} item has no `amount`", item.event_code)))?;
    let currency = money::currency_code(&item.currency)
        .ok_or_else(|| malformed("`amount.currency` is not a three-letter code"))?;
    Ok(Money {
        value: money::from_minor_units_at(value, money::adyen_exponent(&currency)),
        currency,
    })
}

fn malformed(why: &str) -> VerifyError {
    VerifyError::Malformed(why.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::tests::authorisation;
    use serde_json::{Value, json};

    fn item(fields: Value) -> Item {
        Item::parse(&json!({ "NotificationRequestItem": fields })).unwrap()
    }

    fn with(changes: &[(&str, Value)]) -> Item {
        let mut fields = authorisation();
        for (field, value) in changes {
            fields[*field] = value.clone();
        }
        item(fields)
    }

    fn payment(item: &Item) -> WebhookEvent {
        match map(item) {
            Ok(Some(Event::Payment(event))) => event,
            other => panic!("expected a payment event, got {other:?}"),
        }
    }

    fn refund(item: &Item) -> RefundEvent {
        match map(item) {
            Ok(Some(Event::Refund(event))) => event,
            other => panic!("expected a refund event, got {other:?}"),
        }
    }

    #[test]
    fn maps_authorisations() {
        let done = payment(&with(&[]));
        assert_eq!(done.event_id, "AUTHORISATION:QFQTPCQ8HXSKGK82:true");
        assert!(
            matches!(done.payment, PaymentRef::ProviderReference(ref psp) if psp == "QFQTPCQ8HXSKGK82")
        );
        assert!(matches!(done.status, EventStatus::Finished));
        assert_eq!(done.provider_type, "AUTHORISATION");
        let amount = done.amount.unwrap();
        assert_eq!(
            (amount.value.as_str(), amount.currency.as_str()),
            ("10.00", "EUR")
        );
        let refused = payment(&with(&[("success", json!("false"))]));
        assert_eq!(refused.event_id, "AUTHORISATION:QFQTPCQ8HXSKGK82:false");
        assert!(matches!(refused.status, EventStatus::Failed));
    }

    #[test]
    fn says_amounts_in_major_units() {
        let amount = |value: u64, currency: &str| {
            let event = payment(&with(&[(
                "amount",
                json!({"value": value, "currency": currency}),
            )]));
            let money = event.amount.unwrap();
            (money.value, money.currency)
        };
        assert_eq!(amount(1050, "EUR"), ("10.50".into(), "EUR".into()));
        assert_eq!(amount(1500, "JPY"), ("1500".into(), "JPY".into()));
        assert_eq!(amount(1234, "KWD"), ("1.234".into(), "KWD".into()));
        // Adyen counts Chile's peso in hundredths, unlike ISO 4217.
        assert_eq!(amount(150_000, "CLP"), ("1500.00".into(), "CLP".into()));
    }

    #[test]
    fn maps_refunds_and_parses_the_merchant_reference() {
        let refund_item = |code: &str, success: &str, reference: &str| {
            with(&[
                ("eventCode", json!(code)),
                ("success", json!(success)),
                ("pspReference", json!("ZC4R4RBFJGXXGN82")),
                ("originalReference", json!("QFQTPCQ8HXSKGK82")),
                ("merchantReference", json!(reference)),
                ("amount", json!({"value": 250, "currency": "EUR"})),
            ])
        };
        let done = refund(&refund_item("REFUND", "true", "paygate-refund-9"));
        assert_eq!(done.event_id, "REFUND:ZC4R4RBFJGXXGN82:true");
        assert_eq!(done.reference.as_deref(), Some("ZC4R4RBFJGXXGN82"));
        assert_eq!(done.refund_id, Some(9));
        assert!(matches!(done.status, RefundStatus::Succeeded));
        assert_eq!(done.amount.unwrap().value, "2.50");
        let cases = [
            ("REFUND", "false", "REFUND:ZC4R4RBFJGXXGN82:false"),
            (
                "REFUND_FAILED",
                "true",
                "REFUND_FAILED:ZC4R4RBFJGXXGN82:true",
            ),
            (
                "REFUNDED_REVERSED",
                "true",
                "REFUNDED_REVERSED:ZC4R4RBFJGXXGN82:true",
            ),
        ];
        for (code, success, event_id) in cases {
            let failed = refund(&refund_item(code, success, "paygate-refund-9"));
            assert!(matches!(failed.status, RefundStatus::Failed), "{code}");
            assert_eq!(failed.event_id, event_id);
            assert_eq!(failed.provider_type, code);
        }
        // A refund made in Adyen's Customer Area names no paygate refund,
        // but still its own reference.
        for reference in ["", "9", "refund-9", "paygate-refund-x", "paygate-refund-09"] {
            let other = refund(&refund_item("REFUND", "true", reference));
            assert_eq!(other.refund_id, None, "{reference:?}");
            assert_eq!(other.reference.as_deref(), Some("ZC4R4RBFJGXXGN82"));
        }
    }

    #[test]
    fn ignores_untracked_event_codes() {
        for code in [
            "CAPTURE",
            "CANCELLATION",
            "REPORT_AVAILABLE",
            "authorisation",
            "",
        ] {
            let got = map(&with(&[("eventCode", json!(code))]));
            assert!(matches!(got, Ok(None)), "{code}: {got:?}");
        }
    }

    #[test]
    fn refuses_tracked_items_it_cannot_read() {
        let cases = [
            ("success", json!("yes")),
            ("success", Value::Null),
            ("pspReference", json!("")),
            ("amount", Value::Null),
            ("amount", json!({"currency": "EUR"})),
            ("amount", json!({"value": 1000, "currency": "EURO"})),
            ("amount", json!({"value": 1000})),
        ];
        for (field, value) in cases {
            let got = map(&with(&[(field, value.clone())]));
            assert!(
                matches!(got, Err(VerifyError::Malformed(_))),
                "{field}={value}: {got:?}"
            );
        }
    }
}
