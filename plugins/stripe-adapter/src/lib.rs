//! paygate provider adapter for Stripe Checkout Sessions.
//!
//! Settings: `base-url` (default `https://api.stripe.com`), `success-url`
//! and `cancel-url` (default: the payment's return URL). Secret:
//! `secret-key`.

mod checkout;
mod form;

wit_bindgen::generate!({
    path: "../../wit/deps/paygate-plugins-0.1.0",
    world: "provider-adapter",
});
guest_common::provider_glue!();

use checkout::RedirectUrls;
use exports::paygate::plugins::provider::{
    Guest, PaymentRequest, PaymentSession, PaymentState, ProviderError,
};
use guest_common::provider::{Failure, item_path};
use guest_common::{settings, url};
use paygate::plugins::{config, http};

const DEFAULT_BASE_URL: &str = "https://api.stripe.com";
/// Used when neither the settings nor the payment name a return URL; Stripe
/// insists on one, and `.invalid` can never resolve to a real site.
const FALLBACK_RETURN_URL: &str = "https://example.invalid/return";

/// The exported adapter.
struct StripeAdapter;

impl Guest for StripeAdapter {
    fn create_payment(request: PaymentRequest) -> Result<PaymentSession, ProviderError> {
        let key = secret_key()?;
        let fallback = request
            .return_url
            .clone()
            .unwrap_or_else(|| FALLBACK_RETURN_URL.to_string());
        let urls = RedirectUrls {
            success: config::get("success-url").unwrap_or_else(|| fallback.clone()),
            cancel: config::get("cancel-url").unwrap_or(fallback),
        };
        let body = checkout::create_form(&request, &urls)?;
        let response = send(http::Request {
            method: http::Method::Post,
            url: url::join(&base_url(), "v1/checkout/sessions"),
            headers: vec![
                ("Authorization".into(), format!("Bearer {key}")),
                ("Idempotency-Key".into(), request.idempotency_key.clone()),
                (
                    "Content-Type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
            ],
            body: body.into_bytes(),
            timeout_ms: None,
        })?;
        Ok(checkout::parse_session(response.status, &response.body)?)
    }

    fn payment_status(reference: String) -> Result<PaymentState, ProviderError> {
        let key = secret_key()?;
        let path = item_path("v1/checkout/sessions", &reference)?;
        let response = send(http::Request {
            method: http::Method::Get,
            url: url::join(&base_url(), &path),
            headers: vec![("Authorization".into(), format!("Bearer {key}"))],
            body: Vec::new(),
            timeout_ms: None,
        })?;
        Ok(checkout::parse_status(response.status, &response.body)?)
    }
}

fn secret_key() -> Result<String, Failure> {
    settings::required("secret", "secret-key", config::secret("secret-key"))
        .map_err(Failure::Misconfigured)
}

fn base_url() -> String {
    config::get("base-url").unwrap_or_else(|| DEFAULT_BASE_URL.to_string())
}

fn send(request: http::Request) -> Result<http::Response, Failure> {
    Ok(http::send(&request)?)
}

export!(StripeAdapter);
