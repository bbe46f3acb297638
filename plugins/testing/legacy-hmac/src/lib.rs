//! A webhook verifier built against WIT `paygate:plugins@0.1.0`, for the
//! host's tests: the host must keep serving verifiers of the version
//! before refunds. Never deploy it.
//!
//! Scheme: the internal one's signature (`x-internal-signature`, a hex
//! HMAC-SHA256 of the raw body with secret `webhook-secret`) over a body
//! `{"reference": "<provider reference>", "status": "finished" | "failed"}`.
//! It names payments only by the reference their adapter returned.

wit_bindgen::generate!({
    path: "../../../wit/deps/paygate-plugins-0.1.0",
    world: "webhook-verifier",
});
guest_common::verifier_glue!();

use exports::paygate::plugins::verifier::{
    EventStatus, Guest, PaymentRef, VerifyError, WebhookEvent, WebhookRequest,
};
use guest_common::{crypto, hex, settings, signature};
use paygate::plugins::config;
use serde_json::Value;

struct LegacyHmac;

impl Guest for LegacyHmac {
    fn verify(request: WebhookRequest) -> Result<Vec<WebhookEvent>, VerifyError> {
        let secret =
            settings::required("secret", "webhook-secret", config::secret("webhook-secret"))
                .map_err(VerifyError::Misconfigured)?;
        signature::check_internal(&secret, &request.headers, &request.body)?;
        let body: Value = serde_json::from_slice(&request.body)
            .map_err(|e| VerifyError::Malformed(format!("body is not JSON ({e})")))?;
        let reference = match body.get("reference").and_then(Value::as_str) {
            Some(r) if !r.is_empty() && r.len() <= 255 => r.to_owned(),
            _ => return Err(VerifyError::Malformed("`reference` is missing".into())),
        };
        let status = match body.get("status").and_then(Value::as_str) {
            Some("finished") => EventStatus::Finished,
            Some("failed") => EventStatus::Failed,
            _ => return Err(VerifyError::Malformed("`status` is unknown".into())),
        };
        let digest = hex::encode(&crypto::sha256(&request.body));
        Ok(vec![WebhookEvent {
            event_id: format!("legacy_{}", &digest[..32]),
            payment: PaymentRef::ProviderReference(reference),
            status,
            provider_type: "legacy.status".into(),
        }])
    }
}

export!(LegacyHmac);
