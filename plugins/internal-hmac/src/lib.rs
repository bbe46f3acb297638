//! paygate webhook verifier for the internal scheme: a hex HMAC-SHA256 of
//! the raw body, and a body of `{"payment_id": <int>, "status": ...}` or,
//! for a refund, `{"refund_id": <int>, "status": ...}`. WIT 0.2.0.
//!
//! Secret: `webhook-secret`. No settings.

mod webhook;

wit_bindgen::generate!({
    path: "../../wit",
    world: "webhook-verifier",
    // The host interfaces are 0.1.0's, from wit/deps/.
    generate_all,
});
guest_common::verifier_glue!(crate::exports::paygate::plugins0_2_0::verifier);

use exports::paygate::plugins0_2_0::verifier::{Event, Guest, VerifyError, WebhookRequest};
use guest_common::{settings, signature};
use paygate::plugins0_1_0::config;

/// The exported verifier.
struct InternalHmac;

impl Guest for InternalHmac {
    fn verify(request: WebhookRequest) -> Result<Vec<Event>, VerifyError> {
        let secret =
            settings::required("secret", "webhook-secret", config::secret("webhook-secret"))
                .map_err(VerifyError::Misconfigured)?;
        signature::check_internal(&secret, &request.headers, &request.body)?;
        Ok(vec![webhook::parse_event(&request.body)?])
    }
}

export!(InternalHmac);
