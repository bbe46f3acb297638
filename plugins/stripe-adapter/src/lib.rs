//! paygate provider adapter for Stripe Checkout Sessions and Refunds; WIT
//! 0.2.0.
//!
//! Settings: `base-url` (default `https://api.stripe.com`), `success-url`
//! and `cancel-url` (used when the payment names no return or cancel URL).
//! Secret: `secret-key`.

mod checkout;
mod form;
mod refunds;

wit_bindgen::generate!({
    path: "../../wit",
    world: "provider-adapter",
    // The host interfaces are 0.1.0's, from wit/deps/.
    generate_all,
});
guest_common::provider_glue!(
    crate::exports::paygate::plugins0_2_0::provider,
    crate::paygate::plugins0_1_0::http
);

use checkout::RedirectUrls;
use exports::paygate::plugins0_2_0::provider::{
    Guest, PaymentRequest, PaymentSession, PaymentState, ProviderError, RefundRequest,
    RefundSession, RefundState,
};
use guest_common::provider::{Failure, item_path};
use guest_common::{settings, url};
use paygate::plugins0_1_0::{config, http};

const DEFAULT_BASE_URL: &str = "https://api.stripe.com";
/// Used when neither the payment nor the settings name a URL; Stripe
/// insists on one, and `.invalid` can never resolve to a real site.
const FALLBACK_RETURN_URL: &str = "https://example.invalid/return";

/// The exported adapter.
struct StripeAdapter;

impl Guest for StripeAdapter {
    fn create_payment(request: PaymentRequest) -> Result<PaymentSession, ProviderError> {
        let key = secret_key()?;
        // The merchant's URLs for this payment first, then the alias's.
        let success = request
            .return_url
            .clone()
            .or_else(|| config::get("success-url"))
            .unwrap_or_else(|| FALLBACK_RETURN_URL.to_string());
        let cancel = request
            .cancel_url
            .clone()
            .or_else(|| config::get("cancel-url"))
            .unwrap_or_else(|| success.clone());
        let urls = RedirectUrls { success, cancel };
        let body = checkout::create_form(&request, &urls)?;
        let response = post(&key, "v1/checkout/sessions", &request.idempotency_key, body)?;
        Ok(checkout::parse_session(response.status, &response.body)?)
    }

    fn payment_status(reference: String) -> Result<PaymentState, ProviderError> {
        let session = get(
            &secret_key()?,
            &item_path("v1/checkout/sessions", &reference)?,
        )?;
        Ok(checkout::parse_status(session.status, &session.body)?)
    }

    fn refund(request: RefundRequest) -> Result<RefundSession, ProviderError> {
        let key = secret_key()?;
        // A Checkout Session is refunded through the PaymentIntent it made.
        let path = item_path("v1/checkout/sessions", &request.payment_reference)?;
        let session = get(&key, &path)?;
        let intent = refunds::payment_intent(session.status, &session.body)?;
        let body = refunds::create_form(&request, &intent)?;
        let response = post(&key, "v1/refunds", &request.idempotency_key, body)?;
        Ok(refunds::parse_refund(response.status, &response.body)?)
    }

    fn refund_status(reference: String) -> Result<RefundState, ProviderError> {
        let refund = get(&secret_key()?, &item_path("v1/refunds", &reference)?)?;
        Ok(refunds::parse_refund(refund.status, &refund.body)?.state)
    }
}

fn secret_key() -> Result<String, Failure> {
    settings::required("secret", "secret-key", config::secret("secret-key"))
        .map_err(Failure::Misconfigured)
}

fn base_url() -> String {
    config::get("base-url").unwrap_or_else(|| DEFAULT_BASE_URL.to_string())
}

/// `POST` of a form to Stripe under an idempotency key.
fn post(
    key: &str,
    path: &str,
    idempotency_key: &str,
    body: String,
) -> Result<http::Response, Failure> {
    send(http::Request {
        method: http::Method::Post,
        url: url::join(&base_url(), path),
        headers: vec![
            ("Authorization".into(), format!("Bearer {key}")),
            ("Idempotency-Key".into(), idempotency_key.to_string()),
            (
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
        ],
        body: body.into_bytes(),
        timeout_ms: None,
    })
}

/// `GET` of one Stripe object.
fn get(key: &str, path: &str) -> Result<http::Response, Failure> {
    send(http::Request {
        method: http::Method::Get,
        url: url::join(&base_url(), path),
        headers: vec![("Authorization".into(), format!("Bearer {key}"))],
        body: Vec::new(),
        timeout_ms: None,
    })
}

fn send(request: http::Request) -> Result<http::Response, Failure> {
    Ok(http::send(&request)?)
}

export!(StripeAdapter);
