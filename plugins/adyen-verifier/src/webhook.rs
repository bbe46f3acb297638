//! A whole webhook: a batch of notification items, all of which must be
//! signed, turned into paygate's events.

use crate::events;
use crate::exports::paygate::plugins0_2_0::verifier::{Event, VerifyError};
use crate::item::Item;
use guest_common::provider::truncate;
use serde_json::Value;

/// Verifies `body` under `key` and maps its items to events. Every item
/// must carry a valid signature before any is read further, so an
/// unsigned item cannot ride along with a signed one; only then is the
/// merchant account checked, so an unsigned request learns nothing of it.
pub fn verify(
    key: &[u8],
    merchant_account: Option<&str>,
    body: &[u8],
) -> Result<Vec<Event>, VerifyError> {
    let items = parse_batch(body)?;
    for item in &items {
        item.check_signature(key)?;
    }
    if let Some(expected) = merchant_account
        && let Some(item) = items.iter().find(|i| i.merchant_account_code != expected)
    {
        return Err(VerifyError::Malformed(format!(
            "an item is for merchant account {:?}, not {expected:?}",
            truncate(&item.merchant_account_code)
        )));
    }
    let mut mapped = Vec::with_capacity(items.len());
    for item in &items {
        mapped.extend(events::map(item)?);
    }
    Ok(mapped)
}

/// The items of `{"live": ..., "notificationItems": [...]}`. Adyen never
/// sends an empty batch, and an empty one would have no signature to
/// check, so it is malformed rather than trivially valid.
fn parse_batch(body: &[u8]) -> Result<Vec<Item>, VerifyError> {
    let batch: Value = serde_json::from_slice(body)
        .map_err(|err| VerifyError::Malformed(format!("body is not JSON ({err})")))?;
    let elements = batch
        .get("notificationItems")
        .and_then(Value::as_array)
        .ok_or_else(|| VerifyError::Malformed("body has no `notificationItems` list".into()))?;
    if elements.is_empty() {
        return Err(VerifyError::Malformed(
            "`notificationItems` is empty".into(),
        ));
    }
    elements.iter().map(Item::parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::tests::{KEY, authorisation, signed};
    use serde_json::json;

    fn body(items: &[Value]) -> Vec<u8> {
        json!({"live": "false", "notificationItems": items})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn verifies_a_signed_batch() {
        let mut refund = authorisation();
        refund["eventCode"] = json!("REFUND");
        refund["pspReference"] = json!("ZC4R4RBFJGXXGN82");
        refund["merchantReference"] = json!("paygate-refund-9");
        let mut capture = authorisation();
        capture["eventCode"] = json!("CAPTURE");
        let items = [
            signed(authorisation(), &KEY),
            signed(refund, &KEY),
            signed(capture, &KEY),
        ];
        let events = verify(&KEY, Some("PaygateDemo"), &body(&items)).unwrap();
        assert_eq!(events.len(), 2);
        assert!(matches!(events[0], Event::Payment(_)));
        assert!(matches!(events[1], Event::Refund(ref r) if r.refund_id == Some(9)));
    }

    #[test]
    fn an_untracked_event_gives_no_events() {
        let mut report = authorisation();
        report["eventCode"] = json!("REPORT_AVAILABLE");
        let events = verify(&KEY, None, &body(&[signed(report, &KEY)])).unwrap();
        assert!(events.is_empty());
    }

    #[test]
    fn every_item_must_be_signed() {
        let good = signed(authorisation(), &KEY);
        let forged = signed(authorisation(), &[1; 32]);
        let unsigned = json!({ "NotificationRequestItem": authorisation() });
        for items in [
            vec![forged.clone()],
            vec![good.clone(), forged],
            vec![unsigned, good],
        ] {
            assert!(matches!(
                verify(&KEY, None, &body(&items)),
                Err(VerifyError::InvalidSignature(_))
            ));
        }
    }

    #[test]
    fn refuses_a_tampered_amount() {
        let mut item = signed(authorisation(), &KEY);
        item["NotificationRequestItem"]["amount"]["value"] = json!(1);
        assert!(matches!(
            verify(&KEY, None, &body(&[item])),
            Err(VerifyError::InvalidSignature(_))
        ));
    }

    #[test]
    fn checks_the_merchant_account_after_the_signature() {
        let mut other = authorisation();
        other["merchantAccountCode"] = json!("SomeoneElse");
        let signed_other = body(&[signed(other.clone(), &KEY)]);
        assert!(matches!(
            verify(&KEY, Some("PaygateDemo"), &signed_other),
            Err(VerifyError::Malformed(m)) if m.contains("SomeoneElse")
        ));
        assert_eq!(verify(&KEY, None, &signed_other).unwrap().len(), 1);
        let forged_other = body(&[signed(other, &[1; 32])]);
        assert!(matches!(
            verify(&KEY, Some("PaygateDemo"), &forged_other),
            Err(VerifyError::InvalidSignature(_))
        ));
    }

    /// The fixtures in `fixtures/` give what they expect, so a fixture
    /// edited without signing it again fails here, before the harness.
    #[test]
    fn the_fixtures_hold() {
        let key = guest_common::hex::decode(FIXTURE_KEY).unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let fixture: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let body = fixture["webhook"]["body"].to_string();
            let got = verify(&key, Some("PaygateDemo"), body.as_bytes());
            let name = path.display();
            match (fixture["expect"].as_str().unwrap(), got) {
                ("ok", Ok(events)) => {
                    assert_eq!(
                        Some(events.len() as u64),
                        fixture["events"].as_u64(),
                        "{name}"
                    );
                }
                ("invalid-signature", Err(VerifyError::InvalidSignature(_))) => {}
                (expect, got) => panic!("{name}: expected {expect}, got {got:?}"),
            }
            checked += 1;
        }
        assert!(checked >= 7, "only {checked} fixtures");
    }

    /// The `hmac-key` the fixtures are signed with (fixtures/README.md).
    const FIXTURE_KEY: &str = "A5227CB32542D13AC0F9304E073A3D207C17EEF706B2BF6FFBA4184C691112F1";

    #[test]
    fn refuses_bodies_that_are_not_a_batch() {
        for bad in [
            &b"not json"[..],
            b"[]",
            b"{}",
            br#"{"notificationItems": {}}"#,
            br#"{"notificationItems": []}"#,
            br#"{"notificationItems": [{"Other": {}}]}"#,
        ] {
            assert!(
                matches!(verify(&KEY, None, bad), Err(VerifyError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
