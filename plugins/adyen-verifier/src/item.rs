//! One `NotificationRequestItem` of an Adyen standard webhook: the fields
//! its HMAC signs, and the check of that signature.

use crate::exports::paygate::plugins0_2_0::verifier::VerifyError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use guest_common::crypto;
use serde_json::{Map, Value};

/// The signed fields of an item, as sent. Adyen signs each field as text
/// and an absent one as the empty string, so absence is kept as `""`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Adyen's id of what the item is about: the payment for an
    /// `AUTHORISATION`, the refund for a `REFUND`.
    pub psp_reference: String,
    /// For a modification, the payment it modifies.
    pub original_reference: String,
    /// The merchant account the item belongs to.
    pub merchant_account_code: String,
    /// The `reference` paygate sent with the request.
    pub merchant_reference: String,
    /// `amount.value` in minor units; `None` when the item has none.
    pub value: Option<u64>,
    /// `amount.currency`, as sent.
    pub currency: String,
    /// What happened, e.g. `AUTHORISATION`.
    pub event_code: String,
    /// `"true"` or `"false"`, as sent.
    pub success: String,
    /// `additionalData.hmacSignature`, as sent; `None` when missing.
    signature: Option<String>,
}

impl Item {
    /// Reads one element of `notificationItems`. Fields of the wrong type
    /// are `malformed`: Adyen sends every signed field as a string except
    /// `amount.value`, a non-negative integer.
    pub fn parse(element: &Value) -> Result<Self, VerifyError> {
        let item = element
            .get("NotificationRequestItem")
            .and_then(Value::as_object)
            .ok_or_else(|| malformed("an item has no `NotificationRequestItem` object"))?;
        let no_amount = Map::new();
        let amount = match item.get("amount") {
            None | Some(Value::Null) => &no_amount,
            Some(Value::Object(amount)) => amount,
            Some(_) => return Err(malformed("`amount` is not an object")),
        };
        let value = match amount.get("value") {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                value
                    .as_u64()
                    .ok_or_else(|| malformed("`amount.value` is not a non-negative integer"))?,
            ),
        };
        let signature = match item.get("additionalData") {
            None | Some(Value::Null) => None,
            Some(Value::Object(data)) => optional_text(data, "hmacSignature")?,
            Some(_) => return Err(malformed("`additionalData` is not an object")),
        };
        Ok(Self {
            psp_reference: text(item, "pspReference")?,
            original_reference: text(item, "originalReference")?,
            merchant_account_code: text(item, "merchantAccountCode")?,
            merchant_reference: text(item, "merchantReference")?,
            value,
            currency: text(amount, "currency")?,
            event_code: text(item, "eventCode")?,
            success: text(item, "success")?,
            signature,
        })
    }

    /// The text Adyen signs: eight fields joined by `:`, in this order,
    /// each as sent and an absent one empty.
    pub fn signing_string(&self) -> String {
        let value = self.value.map(|v| v.to_string()).unwrap_or_default();
        [
            self.psp_reference.as_str(),
            &self.original_reference,
            &self.merchant_account_code,
            &self.merchant_reference,
            &value,
            &self.currency,
            &self.event_code,
            &self.success,
        ]
        .join(":")
    }

    /// Checks `hmacSignature`: the base64 of HMAC-SHA256 of
    /// [`Self::signing_string`] under `key`, compared in constant time.
    pub fn check_signature(&self, key: &[u8]) -> Result<(), VerifyError> {
        let given = self
            .signature
            .as_deref()
            .ok_or_else(|| invalid("an item has no `additionalData.hmacSignature`"))?;
        let tag = STANDARD
            .decode(given.trim())
            .map_err(|_| invalid("an item's `hmacSignature` is not base64"))?;
        if crypto::verify_hmac_sha256(key, self.signing_string().as_bytes(), &tag) {
            Ok(())
        } else {
            Err(invalid("an item's `hmacSignature` does not match it"))
        }
    }
}

/// A string field, `""` when absent or null.
fn text(object: &Map<String, Value>, field: &str) -> Result<String, VerifyError> {
    Ok(optional_text(object, field)?.unwrap_or_default())
}

fn optional_text(object: &Map<String, Value>, field: &str) -> Result<Option<String>, VerifyError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(malformed(&format!("`{field}` is not a string"))),
    }
}

fn malformed(why: &str) -> VerifyError {
    VerifyError::Malformed(why.into())
}

fn invalid(why: &str) -> VerifyError {
    VerifyError::InvalidSignature(why.into())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// The key the tests sign with: 32 bytes, as Adyen's hex keys decode to.
    pub const KEY: [u8; 32] = [0x5a; 32];

    /// An AUTHORISATION item of 10.00 EUR for payment 42, unsigned.
    pub fn authorisation() -> Value {
        json!({
            "additionalData": {},
            "amount": {"currency": "EUR", "value": 1000},
            "eventCode": "AUTHORISATION", "eventDate": "2026-12-03T10:00:00+01:00",
            "merchantAccountCode": "PaygateDemo", "merchantReference": "42",
            "paymentMethod": "ideal", "pspReference": "QFQTPCQ8HXSKGK82",
            "reason": "", "success": "true",
        })
    }

    /// `fields` wrapped as Adyen wraps an item and signed under `key`.
    pub fn signed(mut fields: Value, key: &[u8]) -> Value {
        let unsigned = Item::parse(&json!({ "NotificationRequestItem": fields.clone() })).unwrap();
        let mac = crypto::hmac_sha256(key, unsigned.signing_string().as_bytes());
        fields["additionalData"]["hmacSignature"] = json!(STANDARD.encode(mac));
        json!({ "NotificationRequestItem": fields })
    }

    #[test]
    fn builds_the_signing_string() {
        let item = Item::parse(&signed(authorisation(), &KEY)).unwrap();
        assert_eq!(
            item.signing_string(),
            "QFQTPCQ8HXSKGK82::PaygateDemo:42:1000:EUR:AUTHORISATION:true"
        );
        let mut refund = authorisation();
        refund["eventCode"] = json!("REFUND");
        refund["originalReference"] = json!("QFQTPCQ8HXSKGK82");
        refund["pspReference"] = json!("ZC4R4RBFJGXXGN82");
        refund["merchantReference"] = json!("paygate-refund-9");
        refund["amount"] = json!({"currency": "JPY", "value": 1500});
        let item = Item::parse(&json!({ "NotificationRequestItem": refund })).unwrap();
        assert_eq!(
            item.signing_string(),
            "ZC4R4RBFJGXXGN82:QFQTPCQ8HXSKGK82:PaygateDemo:paygate-refund-9:1500:JPY:REFUND:true"
        );
        let bare = Item::parse(&json!({ "NotificationRequestItem": {"eventCode": "REPORT_AVAILABLE", "originalReference": null} })).unwrap();
        assert_eq!(bare.signing_string(), "::::::REPORT_AVAILABLE:");
    }

    #[test]
    fn accepts_the_right_signature() {
        let item = Item::parse(&signed(authorisation(), &KEY)).unwrap();
        assert!(item.check_signature(&KEY).is_ok());
    }

    #[test]
    fn refuses_a_wrong_or_missing_signature() {
        let is_invalid = |item: &Item| {
            matches!(
                item.check_signature(&KEY),
                Err(VerifyError::InvalidSignature(_))
            )
        };
        let other_key = Item::parse(&signed(authorisation(), &[0xa5; 32])).unwrap();
        assert!(is_invalid(&other_key));
        let unsigned = Item::parse(&json!({ "NotificationRequestItem": authorisation() })).unwrap();
        assert!(is_invalid(&unsigned));
        for bad in ["", "not base64!", "AAAA", "c2hvcnQ="] {
            let mut fields = authorisation();
            fields["additionalData"]["hmacSignature"] = json!(bad);
            let item = Item::parse(&json!({ "NotificationRequestItem": fields })).unwrap();
            assert!(is_invalid(&item), "{bad:?}");
        }
    }

    #[test]
    fn refuses_a_tampered_amount() {
        for (field, value) in [("value", json!(100_000)), ("currency", json!("JPY"))] {
            let mut element = signed(authorisation(), &KEY);
            element["NotificationRequestItem"]["amount"][field] = value;
            let item = Item::parse(&element).unwrap();
            assert!(
                matches!(
                    item.check_signature(&KEY),
                    Err(VerifyError::InvalidSignature(_))
                ),
                "{field}"
            );
        }
        let mut flipped = signed(authorisation(), &KEY);
        flipped["NotificationRequestItem"]["success"] = json!("false");
        let item = Item::parse(&flipped).unwrap();
        assert!(item.check_signature(&KEY).is_err());
    }

    #[test]
    fn refuses_fields_of_the_wrong_type() {
        let cases = [
            ("pspReference", json!(7)),
            ("success", json!(true)),
            ("amount", json!("10.00")),
            ("additionalData", json!([])),
        ];
        for (field, value) in cases {
            let mut fields = authorisation();
            fields[field] = value;
            let got = Item::parse(&json!({ "NotificationRequestItem": fields }));
            assert!(matches!(got, Err(VerifyError::Malformed(_))), "{field}");
        }
        for value in [json!(-1), json!(10.5), json!("1000")] {
            let mut fields = authorisation();
            fields["amount"]["value"] = value.clone();
            let got = Item::parse(&json!({ "NotificationRequestItem": fields }));
            assert!(matches!(got, Err(VerifyError::Malformed(_))), "{value}");
        }
        assert!(Item::parse(&json!({"Other": {}})).is_err());
        assert!(Item::parse(&json!("item")).is_err());
    }
}
