//! paygate webhook verifier for Stripe's `Stripe-Signature` scheme, its
//! Checkout Session events and its Refund events; WIT 0.2.0, so each event
//! says the session's or refund's amount and the host checks it against
//! the payment's or refund's.
//!
//! Setting: `tolerance-seconds` (default 300). Secret: `webhook-secret`
//! (the `whsec_...` string, used whole as the HMAC key).

mod events;

wit_bindgen::generate!({
    path: "../../wit",
    world: "webhook-verifier",
    // The host interfaces are 0.1.0's, from wit/deps/.
    generate_all,
});
guest_common::verifier_glue!(crate::exports::paygate::plugins0_2_0::verifier);

use exports::paygate::plugins0_2_0::verifier::{Event, Guest, VerifyError, WebhookRequest};
use guest_common::{headers, settings, signature};
use paygate::plugins0_1_0::{clock, config};

/// Stripe's own libraries default to five minutes.
const DEFAULT_TOLERANCE_SECONDS: u64 = 300;

/// The exported verifier.
struct StripeVerifier;

impl Guest for StripeVerifier {
    fn verify(request: WebhookRequest) -> Result<Vec<Event>, VerifyError> {
        let secret =
            settings::required("secret", "webhook-secret", config::secret("webhook-secret"))
                .map_err(VerifyError::Misconfigured)?;
        let tolerance = settings::parse_or(
            "tolerance-seconds",
            config::get("tolerance-seconds"),
            DEFAULT_TOLERANCE_SECONDS,
        )
        .map_err(VerifyError::Misconfigured)?;
        signature::check_stripe(
            &secret,
            headers::find(&request.headers, "stripe-signature"),
            &request.body,
            clock::now_ms(),
            tolerance,
        )?;
        events::map(&request.body)
    }
}

export!(StripeVerifier);
