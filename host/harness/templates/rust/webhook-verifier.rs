//! {{name}}: a paygate webhook verifier (WIT `paygate:plugins@0.2.0`, world
//! `webhook-verifier`), made by `paygate plugin new`.
//!
//! The scheme it checks: `x-internal-signature` is the hex HMAC-SHA256 of
//! the raw body under the `webhook-secret` secret, and the body is
//! `{"payment_id": 42, "status": "finished" | "failed", "event_id": "..."}`
//! (`event_id` optional). That is the scheme the harness signs its built-in
//! cases with; change the header, the signed bytes and `parse` to your
//! provider's, then record a few of its real webhooks as fixtures (see the
//! README). If your provider signs a timestamp, refuse old ones with
//! `signature-expired`, using the `clock` import.

use exports::paygate::plugins0_2_0::verifier::{
    self as api, Event, EventStatus, PaymentRef, VerifyError, WebhookEvent,
};
// The guest SDK, vendored in guest-common/ (paygate's own plugins use it).
use guest_common::{crypto, headers, hex};
use paygate::plugins0_1_0::config;
use serde_json::{Map, Value};

wit_bindgen::generate!({
    path: "wit",
    world: "webhook-verifier",
    // wit/ holds 0.3.0's worlds; the provider and verifier are 0.2.0's,
    // the host interfaces 0.1.0's (wit/deps/).
    generate_all,
});

/// The header carrying the signature (names arrive lower-case).
const SIGNATURE_HEADER: &str = "x-internal-signature";

struct Verifier;

impl api::Guest for Verifier {
    fn verify(request: api::WebhookRequest) -> Result<Vec<Event>, VerifyError> {
        let secret = config::secret("webhook-secret")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| VerifyError::Misconfigured("secret `webhook-secret` is not set".into()))?;
        let signature = headers::find(&request.headers, SIGNATURE_HEADER)
            .ok_or_else(|| VerifyError::InvalidSignature(format!("no {SIGNATURE_HEADER} header")))?;
        let signature = hex::decode(signature.trim()).ok_or_else(|| {
            VerifyError::InvalidSignature(format!("{SIGNATURE_HEADER} is not a hex digest"))
        })?;
        // Constant time (the `hmac` crate's own comparison): the answer must
        // not tell how much of a guess was right.
        if !crypto::verify_hmac_sha256(secret.as_bytes(), &request.body, &signature) {
            return Err(VerifyError::InvalidSignature(
                "the signature does not match the body".into(),
            ));
        }
        // Only now is the body trusted enough to read.
        Ok(vec![parse(&request.body)?])
    }
}

/// The one event of a verified body.
fn parse(body: &[u8]) -> Result<Event, VerifyError> {
    let object: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|err| VerifyError::Malformed(format!("the body is not a JSON object ({err})")))?;
    let payment_id = object
        .get("payment_id")
        .and_then(Value::as_u64)
        .ok_or_else(|| VerifyError::Malformed("no numeric `payment_id`".into()))?;
    let (status, name) = match object.get("status").and_then(Value::as_str) {
        Some("finished") => (EventStatus::Finished, "finished"),
        Some("failed") => (EventStatus::Failed, "failed"),
        _ => {
            return Err(VerifyError::Malformed(
                "`status` must be \"finished\" or \"failed\"".into(),
            ));
        }
    };
    // A replay must carry the same id, so paygate applies it once: the
    // provider's own id, else one derived from the body.
    let event_id = match object.get("event_id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() && id.len() <= 255 => id.to_owned(),
        _ => {
            let digest = crypto::sha256(body);
            format!("{{name}}_{}", hex::encode(&digest[..16]))
        }
    };
    Ok(Event::Payment(WebhookEvent {
        event_id,
        payment: PaymentRef::PaymentId(payment_id),
        status,
        provider_type: format!("{{name}}.{name}"),
        // Say the amount when the provider's body has it: paygate then moves
        // the payment only if it is exactly the stored price and currency.
        amount: None,
    }))
}

export!(Verifier);
