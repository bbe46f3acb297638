//! paygate webhook verifier for the internal scheme: a hex HMAC-SHA256 of
//! the raw body, and a body of `{"payment_id": <int>, "status": ...}`.
//!
//! Secret: `webhook-secret`. No settings.

mod webhook;

wit_bindgen::generate!({
    path: "../../wit/deps/paygate-plugins-0.1.0",
    world: "webhook-verifier",
});
guest_common::verifier_glue!();

use exports::paygate::plugins::verifier::{Guest, VerifyError, WebhookEvent, WebhookRequest};
use guest_common::{settings, signature};
use paygate::plugins::config;

/// The exported verifier.
struct InternalHmac;

impl Guest for InternalHmac {
    fn verify(request: WebhookRequest) -> Result<Vec<WebhookEvent>, VerifyError> {
        let secret =
            settings::required("secret", "webhook-secret", config::secret("webhook-secret"))
                .map_err(VerifyError::Misconfigured)?;
        signature::check_internal(&secret, &request.headers, &request.body)?;
        Ok(vec![webhook::parse_event(&request.body)?])
    }
}

export!(InternalHmac);
