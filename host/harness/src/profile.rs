//! Whose answers the mock provider gives in the built-in provider-adapter
//! cases (`--profile`): what a provider says is its own, but what an
//! adapter must make of it is the same everywhere. A decline is HTTP 402
//! at Stripe and HTTP 200 with `resultCode: Refused` at Adyen; both must
//! come out `declined`. Each built-in case names the situation
//! ([`Situation`]); the profile gives the provider's answer to it, or says
//! why the provider has no such answer (the case is then skipped, with that
//! reason, instead of asking an adapter to invent one).

use std::fmt;
use std::str::FromStr;

use serde_json::{Value, json};

use crate::fixtures::{FixtureResponse, RequestMatch};
use crate::verifier::Scheme;

/// A provider answer shape the built-in cases speak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// A plain JSON API: `{"id", "url"}` for a payment, `{"id", "status"}`
    /// for its state and refunds, failures by HTTP status (402 declined,
    /// 400 invalid, 401 refused credentials). What `plugin new` writes.
    #[default]
    Generic,
    /// Stripe: Checkout Sessions, Refunds, `{"error": {"type"}}` failures.
    Stripe,
    /// Adyen's Checkout API: `resultCode` in a 200 body, refunds confirmed
    /// only by webhook, `{"status", "errorCode", "errorType"}` failures.
    Adyen,
}

/// What the provider is asked to do in a built-in case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Situation {
    /// The payment is opened: a reference and a page to pay on.
    Opened,
    /// The provider refuses the payment.
    Declined,
    /// The provider says the request is wrong.
    Invalid,
    /// The provider refuses the credentials.
    Unauthorized,
    /// The provider fails (5xx).
    Failing,
    /// The provider asks to slow down (429).
    RateLimited,
    /// Asked for its state, the payment is paid.
    Paid,
    /// Asked for its state, the payment is still open.
    Unpaid,
    /// The refund is done at once.
    RefundDone,
    /// The refund is taken and confirmed later.
    RefundTaken,
    /// The provider refuses the refund.
    RefundRefused,
    /// Asked for its state, the refund is done.
    RefundSettled,
}

/// The provider's id of the harness's payment; `payment-status` is asked
/// about it.
pub const PAYMENT_REFERENCE: &str = "harness_session_1";

/// The provider's id of the harness's refund; `refund-status` is asked
/// about it.
pub const REFUND_REFERENCE: &str = "harness_refund_1";

impl Profile {
    /// Every profile, in `--help` order.
    pub const ALL: [Profile; 3] = [Profile::Generic, Profile::Stripe, Profile::Adyen];

    /// The name `--profile` takes.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Generic => "generic",
            Profile::Stripe => "stripe",
            Profile::Adyen => "adyen",
        }
    }

    /// The webhook scheme of this provider, for a verifier run without
    /// `--scheme`; `None`: detect it.
    pub fn scheme(self) -> Option<Scheme> {
        match self {
            Profile::Generic => None,
            Profile::Stripe => Some(Scheme::Stripe),
            Profile::Adyen => Some(Scheme::Adyen),
        }
    }

    /// The provider's answer in `situation`, and the words for it in the
    /// case's description; or why this provider has no such answer.
    pub fn answer(self, situation: Situation) -> Result<(FixtureResponse, String), String> {
        use Situation::*;
        let json = FixtureResponse::json;
        Ok(match (self, situation) {
            (_, Failing) => (
                json(503, self.error(503, "service unavailable")),
                "HTTP 503".into(),
            ),
            (_, RateLimited) => (
                json(429, self.error(429, "too many requests")),
                "HTTP 429".into(),
            ),
            (Profile::Adyen, Opened) => (
                json(200, adyen_payment("RedirectShopper")),
                "HTTP 200 resultCode RedirectShopper with a redirect action".into(),
            ),
            (Profile::Adyen, Declined) => {
                let mut refused = adyen_payment("Refused");
                refused["refusalReason"] = json!("Refused");
                (json(200, refused), "HTTP 200 resultCode Refused".into())
            }
            (Profile::Adyen, Invalid) => (
                json(422, self.error(422, "Invalid amount specified")),
                "HTTP 422 errorType validation".into(),
            ),
            (Profile::Adyen, Unauthorized) => (
                json(401, self.error(401, "HTTP Status Response - Unauthorized")),
                "HTTP 401 errorType security".into(),
            ),
            (Profile::Adyen, Paid | Unpaid | RefundSettled) => {
                return Err(
                    "Adyen's Checkout API has no lookup by reference; its webhooks \
                            report outcomes"
                        .into(),
                );
            }
            (Profile::Adyen, RefundDone | RefundRefused) => {
                return Err(
                    "Adyen takes every refund as `received` and confirms or refuses \
                            it later, by webhook"
                        .into(),
                );
            }
            (Profile::Adyen, RefundTaken) => (
                json(
                    201,
                    json!({
                        "merchantAccount": "HarnessMerchant",
                        "paymentPspReference": PAYMENT_REFERENCE,
                        "pspReference": REFUND_REFERENCE,
                        "reference": "paygate-refund-9",
                        "status": "received",
                        "amount": { "value": 250, "currency": "EUR" },
                    }),
                ),
                "HTTP 201 status received".into(),
            ),
            (Profile::Stripe, Opened) => (
                json(200, stripe_session("open", "unpaid")),
                "HTTP 200 with an open Checkout Session".into(),
            ),
            (Profile::Stripe, Paid) => (
                json(200, stripe_session("complete", "paid")),
                "a complete, paid Checkout Session".into(),
            ),
            (Profile::Stripe, Unpaid) => (
                json(200, stripe_session("open", "unpaid")),
                "an open, unpaid Checkout Session".into(),
            ),
            (Profile::Stripe, RefundDone | RefundSettled) => (
                json(200, stripe_refund("succeeded")),
                "HTTP 200 refund succeeded".into(),
            ),
            (Profile::Stripe, RefundTaken) => (
                json(200, stripe_refund("pending")),
                "HTTP 200 refund pending".into(),
            ),
            (Profile::Generic, Opened) => (
                json(
                    200,
                    json!({
                        "id": PAYMENT_REFERENCE,
                        "status": "pending",
                        "url": "https://pay.example/harness_session_1",
                        "payment_url": "https://pay.example/harness_session_1",
                    }),
                ),
                "HTTP 200 with an id and a payment URL".into(),
            ),
            (Profile::Generic, Paid) => (
                json(
                    200,
                    json!({ "id": PAYMENT_REFERENCE, "status": "finished" }),
                ),
                "HTTP 200 status finished".into(),
            ),
            (Profile::Generic, Unpaid) => (
                json(200, json!({ "id": PAYMENT_REFERENCE, "status": "pending" })),
                "HTTP 200 status pending".into(),
            ),
            (Profile::Generic, RefundDone | RefundSettled) => (
                json(
                    200,
                    json!({ "id": REFUND_REFERENCE, "status": "succeeded" }),
                ),
                "HTTP 200 status succeeded".into(),
            ),
            (Profile::Generic, RefundTaken) => (
                json(200, json!({ "id": REFUND_REFERENCE, "status": "pending" })),
                "HTTP 200 status pending".into(),
            ),
            (Profile::Generic | Profile::Stripe, Declined | RefundRefused) => (
                json(402, self.error(402, "The card was declined.")),
                "HTTP 402".into(),
            ),
            (Profile::Generic | Profile::Stripe, Invalid) => (
                json(400, self.error(400, "Invalid currency: xyz")),
                "HTTP 400".into(),
            ),
            (Profile::Generic | Profile::Stripe, Unauthorized) => (
                json(401, self.error(401, "Invalid API key provided")),
                "HTTP 401".into(),
            ),
        })
    }

    /// What the adapter must send to open the harness's payment (10.00
    /// EUR), where the provider documents it: the amount in minor units.
    pub fn opening_request(self) -> Option<RequestMatch> {
        match self {
            Profile::Generic => None,
            Profile::Stripe => Some(RequestMatch {
                method: Some("POST".into()),
                path: Some("/v1/checkout/sessions".into()),
                form: [
                    ("line_items[0][price_data][unit_amount]", "1000"),
                    ("line_items[0][price_data][currency]", "eur"),
                ]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
                ..RequestMatch::default()
            }),
            Profile::Adyen => Some(RequestMatch {
                method: Some("POST".into()),
                json: Some(json!({ "amount": { "value": 1000, "currency": "EUR" } })),
                ..RequestMatch::default()
            }),
        }
    }

    /// The provider's error body for an HTTP failure.
    fn error(self, status: u16, message: &str) -> Value {
        match self {
            Profile::Adyen => {
                let error_type = match status {
                    401 | 403 => "security",
                    400..=499 => "validation",
                    _ => "internal",
                };
                json!({
                    "status": status,
                    "errorCode": "000",
                    "message": message,
                    "errorType": error_type,
                    "pspReference": "HARNESSPSPERR001",
                })
            }
            Profile::Stripe => {
                let error_type = match status {
                    402 => "card_error",
                    429 => "rate_limit_error",
                    400..=499 => "invalid_request_error",
                    _ => "api_error",
                };
                json!({ "error": { "type": error_type, "message": message } })
            }
            Profile::Generic => json!({ "error": { "message": message } }),
        }
    }
}

/// An Adyen `/payments` answer with `result_code`.
fn adyen_payment(result_code: &str) -> Value {
    let mut answer = json!({
        "resultCode": result_code,
        "pspReference": PAYMENT_REFERENCE,
        "merchantReference": "42",
    });
    if result_code == "RedirectShopper" {
        answer["action"] = json!({
            "type": "redirect",
            "method": "GET",
            "paymentMethodType": "ideal",
            "url": "https://checkoutshopper-test.adyen.com/checkoutshopper/harness",
        });
    }
    answer
}

/// A Checkout Session; it names its PaymentIntent, which a refund needs.
fn stripe_session(status: &str, payment_status: &str) -> Value {
    json!({
        "id": PAYMENT_REFERENCE,
        "object": "checkout.session",
        "status": status,
        "payment_status": payment_status,
        "payment_intent": "pi_harness_1",
        "url": "https://checkout.stripe.com/c/pay/harness_session_1",
    })
}

/// A Stripe refund. It also names the PaymentIntent, so an adapter that
/// looks the payment up first (as Stripe's must) finds it in the same
/// answer: the mock gives one answer to every request of a case.
fn stripe_refund(status: &str) -> Value {
    json!({
        "id": REFUND_REFERENCE,
        "object": "refund",
        "status": status,
        "payment_intent": "pi_harness_1",
        "amount": 250,
        "currency": "eur",
    })
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown profile {s:?}: expected generic, stripe or adyen"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_answers_every_failure_with_its_own_error_body() {
        for profile in Profile::ALL {
            for situation in [Situation::Failing, Situation::RateLimited] {
                let (response, _) = profile.answer(situation).unwrap();
                assert!(response.status >= 429, "{profile} {situation:?}");
                assert!(response.body.is_object(), "{profile} {situation:?}");
            }
        }
        assert_eq!(Profile::Adyen.error(422, "x")["errorType"], "validation");
        assert_eq!(
            Profile::Stripe.error(402, "x")["error"]["type"],
            "card_error"
        );
    }

    #[test]
    fn an_adyen_refusal_is_a_200_and_its_refunds_have_no_instant_outcome() {
        let (refused, _) = Profile::Adyen.answer(Situation::Declined).unwrap();
        assert_eq!(refused.status, 200);
        assert_eq!(refused.body["resultCode"], "Refused");
        assert!(Profile::Adyen.answer(Situation::RefundDone).is_err());
        assert!(Profile::Adyen.answer(Situation::Paid).is_err());
        assert!(Profile::Stripe.answer(Situation::Paid).is_ok());
    }

    #[test]
    fn names_round_trip_and_a_typo_is_refused() {
        for profile in Profile::ALL {
            assert_eq!(profile.name().parse::<Profile>(), Ok(profile));
        }
        assert!(
            "strip"
                .parse::<Profile>()
                .unwrap_err()
                .contains("generic, stripe or adyen")
        );
    }
}
