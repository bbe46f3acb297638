//! paygate provider adapter for the original system's payment-link API,
//! used against the sandbox provider in development and tests.
//!
//! Setting: `base-url` (required). No secrets.

mod links;

use exports::paygate::plugins::provider as api;
use guest_common::provider::{Failure, item_path};
use guest_common::{settings, url};
use paygate::plugins::{config, http};

wit_bindgen::generate!({
    path: "../../wit/deps/paygate-plugins-0.1.0",
    world: "provider-adapter",
});
guest_common::provider_glue!();

/// The exported adapter.
struct SandboxAdapter;

impl api::Guest for SandboxAdapter {
    fn create_payment(
        request: api::PaymentRequest,
    ) -> Result<api::PaymentSession, api::ProviderError> {
        let response = http::send(&http::Request {
            method: http::Method::Post,
            url: url::join(&base_url()?, "payment-links"),
            headers: vec![
                ("Idempotency-Key".into(), request.idempotency_key.clone()),
                ("Content-Type".into(), "application/json".into()),
            ],
            body: links::create_body(&request),
            timeout_ms: None,
        })
        .map_err(Failure::from)?;
        Ok(links::parse_link(response.status, &response.body)?)
    }

    fn payment_status(reference: String) -> Result<api::PaymentState, api::ProviderError> {
        let response = http::send(&http::Request {
            method: http::Method::Get,
            url: url::join(&base_url()?, &item_path("payment-links", &reference)?),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
        })
        .map_err(Failure::from)?;
        Ok(links::parse_status(response.status, &response.body)?)
    }
}

fn base_url() -> Result<String, Failure> {
    settings::required("setting", "base-url", config::get("base-url"))
        .map_err(Failure::Misconfigured)
}

export!(SandboxAdapter);
