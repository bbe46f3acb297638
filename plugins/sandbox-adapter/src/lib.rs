//! paygate provider adapter for the original system's payment-link API,
//! used against the sandbox provider in development and tests; WIT 0.2.0,
//! so it also gives money back (`POST /payment-links/{id}/refunds`).
//!
//! Setting: `base-url` (required). No secrets.

mod links;

use exports::paygate::plugins0_2_0::provider as api;
use guest_common::provider::{Failure, item_path};
use guest_common::{settings, url};
use paygate::plugins0_1_0::{config, http};

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

/// The exported adapter.
struct SandboxAdapter;

impl api::Guest for SandboxAdapter {
    fn create_payment(
        request: api::PaymentRequest,
    ) -> Result<api::PaymentSession, api::ProviderError> {
        let body = links::create_body(&request);
        let response = post("payment-links".into(), &request.idempotency_key, body)?;
        Ok(links::parse_link(response.status, &response.body)?)
    }

    fn payment_status(reference: String) -> Result<api::PaymentState, api::ProviderError> {
        let response = get(&item_path("payment-links", &reference)?)?;
        Ok(links::parse_status(response.status, &response.body)?)
    }

    fn refund(request: api::RefundRequest) -> Result<api::RefundSession, api::ProviderError> {
        let link = item_path("payment-links", &request.payment_reference)?;
        let body = links::refund_body(&request);
        let response = post(format!("{link}/refunds"), &request.idempotency_key, body)?;
        Ok(links::parse_refund(response.status, &response.body)?)
    }

    fn refund_status(reference: String) -> Result<api::RefundState, api::ProviderError> {
        let response = get(&item_path("refunds", &reference)?)?;
        Ok(links::parse_refund(response.status, &response.body)?.state)
    }
}

/// `POST` of a JSON body under an idempotency key.
fn post(path: String, idempotency_key: &str, body: Vec<u8>) -> Result<http::Response, Failure> {
    Ok(http::send(&http::Request {
        method: http::Method::Post,
        url: url::join(&base_url()?, &path),
        headers: vec![
            ("Idempotency-Key".into(), idempotency_key.to_string()),
            ("Content-Type".into(), "application/json".into()),
        ],
        body,
        timeout_ms: None,
    })?)
}

/// `GET` of one object.
fn get(path: &str) -> Result<http::Response, Failure> {
    Ok(http::send(&http::Request {
        method: http::Method::Get,
        url: url::join(&base_url()?, path),
        headers: Vec::new(),
        body: Vec::new(),
        timeout_ms: None,
    })?)
}

fn base_url() -> Result<String, Failure> {
    settings::required("setting", "base-url", config::get("base-url"))
        .map_err(Failure::Misconfigured)
}

export!(SandboxAdapter);
