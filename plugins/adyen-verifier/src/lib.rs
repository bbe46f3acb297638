//! paygate webhook verifier for Adyen's standard webhooks, signed with HMAC;
//! WIT 0.2.0, so each event says its amount and the host checks it against
//! the payment's or refund's.
//!
//! Secret: `hmac-key`, the hex key of the webhook in Adyen's Customer Area.
//! Setting: `merchant-account` (optional); when set, an item for another
//! account is refused as malformed.
//!
//! `item` reads a notification item and checks its signature, `events`
//! turns a verified item into paygate's event, and `webhook` applies both
//! to a whole batch. They are free of WIT imports (unit-tested
//! natively); this file only reads the secret and the setting. `fixtures/`
//! holds signed webhooks for `paygate plugin test`; its README gives the
//! command and how the fixtures were signed.

mod events;
mod item;
mod webhook;

wit_bindgen::generate!({
    path: "../../wit",
    world: "webhook-verifier",
    // The host interfaces are 0.1.0's, from wit/deps/.
    generate_all,
});

use exports::paygate::plugins0_2_0::verifier::{Event, Guest, VerifyError, WebhookRequest};
use guest_common::{hex, settings};
use paygate::plugins0_1_0::config;

/// The exported verifier.
struct AdyenVerifier;

impl Guest for AdyenVerifier {
    fn verify(request: WebhookRequest) -> Result<Vec<Event>, VerifyError> {
        let key = hmac_key()?;
        let merchant_account = config::get("merchant-account").filter(|a| !a.is_empty());
        webhook::verify(&key, merchant_account.as_deref(), &request.body)
    }
}

/// The HMAC key as bytes: Adyen shows it as hex and signs with what it
/// decodes to. The error never repeats the secret.
fn hmac_key() -> Result<Vec<u8>, VerifyError> {
    let text = settings::required("secret", "hmac-key", config::secret("hmac-key"))
        .map_err(VerifyError::Misconfigured)?;
    hex::decode(text.trim())
        .filter(|key| !key.is_empty())
        .ok_or_else(|| VerifyError::Misconfigured("secret `hmac-key` is not hex".into()))
}

export!(AdyenVerifier);
