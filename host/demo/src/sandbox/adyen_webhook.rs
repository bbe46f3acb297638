//! Adyen's standard notifications, as the sandbox sends them to
//! `/api/v1/payments/webhook/adyen`: one `NotificationRequestItem` per
//! webhook, `AUTHORISATION` for a payment and `REFUND` for a refund, each
//! signed in `additionalData.hmacSignature` as notes/adyen-wire.md says.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use rust_decimal::prelude::ToPrimitive;
use serde_json::json;
use sha2::Sha256;

use super::store::{
    Order, Outcome, Payment, RefundOutcome, Sandbox, SandboxRefund, adyen_exponent,
};

/// Where Adyen's notifications go on the gateway.
pub(crate) const PATH: &str = "/api/v1/payments/webhook/adyen";

/// The fields of one notification item the sandbox fills.
struct Item<'a> {
    psp_reference: &'a str,
    /// The payment a refund is about.
    original_reference: Option<&'a str>,
    merchant_account: &'a str,
    merchant_reference: &'a str,
    /// In minor units.
    value: u64,
    currency: &'a str,
    event_code: &'a str,
    success: bool,
    payment_method: &'a str,
    /// Why it failed; empty on success.
    reason: &'a str,
}

/// The `AUTHORISATION` notification of a settled Adyen payment: `None`
/// while it is pending, for another API's payment, or when the HMAC key
/// cannot sign.
pub(crate) fn authorisation(sandbox: &Sandbox, payment: &Payment) -> Option<Vec<u8>> {
    let Order::Adyen(order) = &payment.order else {
        return None;
    };
    let success = match payment.outcome {
        Outcome::Pending => return None,
        Outcome::Finished => true,
        Outcome::Failed => false,
    };
    let item = Item {
        psp_reference: &payment.id,
        original_reference: None,
        merchant_account: payment.account.as_deref().unwrap_or_default(),
        merchant_reference: &order.reference,
        value: order.value,
        currency: &order.currency,
        event_code: "AUTHORISATION",
        success,
        payment_method: &order.method,
        reason: if success { "" } else { "Refused" },
    };
    signed(sandbox, &item)
}

/// The `REFUND` notification of a settled refund of Adyen payment `paid`.
pub(crate) fn refund(sandbox: &Sandbox, refund: &SandboxRefund, paid: &Payment) -> Option<Vec<u8>> {
    let Order::Adyen(order) = &paid.order else {
        return None;
    };
    let success = match refund.outcome {
        RefundOutcome::Pending => return None,
        RefundOutcome::Succeeded => true,
        RefundOutcome::Failed => false,
    };
    let minor =
        refund.price * rust_decimal::Decimal::from(10u64.pow(adyen_exponent(&refund.currency)));
    let item = Item {
        psp_reference: &refund.id,
        original_reference: Some(&paid.id),
        merchant_account: refund.account.as_deref().unwrap_or_default(),
        merchant_reference: refund.reference.as_deref().unwrap_or_default(),
        value: minor.trunc().to_u64().unwrap_or(0),
        currency: &refund.currency,
        event_code: "REFUND",
        success,
        payment_method: &order.method,
        reason: if success {
            ""
        } else {
            "Refund declined (test price ending in 13)"
        },
    };
    signed(sandbox, &item)
}

/// The notification body of `item`, signed with the sandbox's Adyen HMAC
/// key; `None` (and an error in the log) when that key is not hex.
fn signed(sandbox: &Sandbox, item: &Item<'_>) -> Option<Vec<u8>> {
    let key = sandbox.settings().adyen_hmac_key.expose();
    let Ok(key) = hex::decode(key) else {
        tracing::error!(
            psp_reference = item.psp_reference,
            "the Adyen HMAC key (PAYGATE_ADYEN_HMAC_KEY) is not hex: no notification sent"
        );
        return None;
    };
    let success = if item.success { "true" } else { "false" };
    let signed = [
        item.psp_reference,
        item.original_reference.unwrap_or_default(),
        item.merchant_account,
        item.merchant_reference,
        &item.value.to_string(),
        item.currency,
        item.event_code,
        success,
    ]
    .join(":");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(signed.as_bytes());
    let signature = BASE64.encode(mac.finalize().into_bytes());
    let mut fields = json!({
        "additionalData": {"hmacSignature": signature},
        "amount": {"currency": item.currency, "value": item.value},
        "eventCode": item.event_code,
        "eventDate": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        "merchantAccountCode": item.merchant_account,
        "merchantReference": item.merchant_reference,
        "paymentMethod": item.payment_method,
        "pspReference": item.psp_reference,
        "reason": item.reason,
        "success": success,
    });
    if let Some(original) = item.original_reference {
        fields["originalReference"] = original.into();
    }
    let body = json!({
        "live": "false",
        "notificationItems": [{"NotificationRequestItem": fields}],
    });
    Some(body.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature over the documented fields, checked against a MAC
    /// computed here from the body alone, as a verifier would.
    #[test]
    fn signs_the_documented_fields_with_the_decoded_key() {
        let args = crate::sandbox::SandboxArgs {
            adyen_hmac_key: paygate::plugins::Secret::new("00FF10"),
            max_payments: crate::sandbox::DEFAULT_MAX_PAYMENTS,
            ..crate::sandbox::tests::args()
        };
        let sandbox = Sandbox::new(&args);
        let item = Item {
            psp_reference: "RF00000000000001",
            original_reference: Some("PY00000000000001"),
            merchant_account: "PaygateDemo",
            merchant_reference: "paygate-refund-9",
            value: 250,
            currency: "EUR",
            event_code: "REFUND",
            success: true,
            payment_method: "ideal",
            reason: "",
        };
        let body: serde_json::Value =
            serde_json::from_slice(&signed(&sandbox, &item).unwrap()).unwrap();
        let fields = &body["notificationItems"][0]["NotificationRequestItem"];
        assert_eq!(body["live"], "false");
        assert_eq!(fields["success"], "true");
        assert_eq!(fields["amount"]["value"], 250);
        let mut mac = Hmac::<Sha256>::new_from_slice(&[0x00, 0xff, 0x10]).unwrap();
        mac.update(
            b"RF00000000000001:PY00000000000001:PaygateDemo:paygate-refund-9:250:EUR:REFUND:true",
        );
        let expected = BASE64.encode(mac.finalize().into_bytes());
        assert_eq!(fields["additionalData"]["hmacSignature"], expected.as_str());

        let args = crate::sandbox::SandboxArgs {
            adyen_hmac_key: paygate::plugins::Secret::new("not hex"),
            max_payments: crate::sandbox::DEFAULT_MAX_PAYMENTS,
            ..crate::sandbox::tests::args()
        };
        assert!(signed(&Sandbox::new(&args), &item).is_none());
    }
}
