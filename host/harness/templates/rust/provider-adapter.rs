//! {{name}}: a paygate provider adapter (WIT `paygate:plugins@0.2.0`,
//! world `provider-adapter`), made by `paygate plugin new`.
//!
//! It speaks a small JSON API under the `base-url` setting; change the
//! paths and field names in the four exports to your provider's:
//! - `POST payments` opens a payment: `{"id", "url"}` back;
//! - `GET payments/{id}` reads it: `{"status"}`;
//! - `POST refunds` gives money back: `{"id", "status"}`;
//! - `GET refunds/{id}` reads a refund: `{"status"}`.
//!
//! Setting: `base-url` (required). Secret: `secret-key` (required), sent as
//! a bearer token. Every failure is one of the WIT's `provider-error` cases,
//! which decide what paygate does next (`unavailable` is retried later and
//! counts against the provider's circuit breaker; the others are final).
//!
//! The common work (status → `provider-error`, JSON answers, path
//! segments, minor units, HMAC) is the guest SDK's, vendored in
//! `guest-common/`: what is left here is your provider's field mapping.

use exports::paygate::plugins0_2_0::provider::{self as api, ProviderError};
use guest_common::provider::{Failure, item_path, required_str, success_object};
use guest_common::{settings, url};
use paygate::plugins0_1_0::{config, http};
use serde_json::{Map, Value, json};

wit_bindgen::generate!({
    path: "wit",
    world: "provider-adapter",
    // wit/ holds 0.3.0's worlds; the provider and verifier are 0.2.0's,
    // the host interfaces 0.1.0's (wit/deps/).
    generate_all,
});

// The guest SDK (guest-common/, paygate's own plugins use it too) works on
// its provider-neutral `Failure`; this turns it into the WIT's
// `provider-error`, and the `http` import's errors into a `Failure`, so `?`
// carries both out of the exports.
guest_common::provider_glue!(
    crate::exports::paygate::plugins0_2_0::provider,
    crate::paygate::plugins0_1_0::http
);

struct Adapter;

impl api::Guest for Adapter {
    fn create_payment(
        request: api::PaymentRequest,
    ) -> Result<api::PaymentSession, ProviderError> {
        let body = json!({
            "reference": request.payment_id.to_string(),
            "order": request.order_id.to_string(),
            "amount": request.price,
            // Most providers want integer minor units instead:
            // guest_common::money::to_minor_units(&request.price, &request.currency)
            "currency": request.currency,
            "success_url": request.return_url,
            "cancel_url": request.cancel_url,
            "metadata": metadata(request.metadata),
        });
        let answer = send(http::Method::Post, "payments", Some((&request.idempotency_key, body)))?;
        Ok(api::PaymentSession {
            reference: required_str(&answer, "id")?,
            payment_url: required_str(&answer, "url")?,
        })
    }

    fn payment_status(reference: String) -> Result<api::PaymentState, ProviderError> {
        let answer = send(http::Method::Get, &item_path("payments", &reference)?, None)?;
        Ok(match required_str(&answer, "status")?.as_str() {
            "succeeded" | "paid" | "finished" => api::PaymentState::Finished,
            "failed" | "canceled" | "expired" => api::PaymentState::Failed,
            _ => api::PaymentState::Pending,
        })
    }

    fn refund(request: api::RefundRequest) -> Result<api::RefundSession, ProviderError> {
        let mut metadata = metadata(request.metadata);
        // The provider's refund webhooks can then name paygate's refund.
        metadata.insert("paygate_refund_id".into(), request.refund_id.to_string().into());
        let body = json!({
            "payment": request.payment_reference,
            "amount": request.price,
            "currency": request.currency,
            "reason": request.reason.map(reason),
            "metadata": metadata,
        });
        let answer = send(http::Method::Post, "refunds", Some((&request.idempotency_key, body)))?;
        Ok(api::RefundSession {
            reference: required_str(&answer, "id")?,
            state: refund_state(&answer)?,
        })
    }

    fn refund_status(reference: String) -> Result<api::RefundState, ProviderError> {
        let answer = send(http::Method::Get, &item_path("refunds", &reference)?, None)?;
        Ok(refund_state(&answer)?)
    }
}

/// Sends one request under `base-url` and returns the JSON object of a 2xx
/// answer. Any other answer is the failure its status means
/// (`guest_common::provider::classify_status`: 402 declined, 401/403
/// misconfigured, 429 and 5xx unavailable, other 4xx invalid-request). A
/// body comes with its idempotency key.
fn send(
    method: http::Method,
    path: &str,
    body: Option<(&str, Value)>,
) -> Result<Map<String, Value>, Failure> {
    // Checked before anything is sent: without them no request can be right.
    let base_url = settings::required("setting", "base-url", config::get("base-url"))
        .map_err(Failure::Misconfigured)?;
    let key = settings::required("secret", "secret-key", config::secret("secret-key"))
        .map_err(Failure::Misconfigured)?;
    let mut headers = vec![
        ("Authorization".to_owned(), format!("Bearer {key}")),
        ("Accept".to_owned(), "application/json".to_owned()),
    ];
    let mut bytes = Vec::new();
    if let Some((idempotency_key, value)) = body {
        headers.push(("Idempotency-Key".into(), idempotency_key.to_owned()));
        headers.push(("Content-Type".into(), "application/json".into()));
        bytes = value.to_string().into_bytes();
    }
    let response = http::send(&http::Request {
        method,
        url: url::join(&base_url, path),
        headers,
        body: bytes,
        timeout_ms: None,
    })?;
    success_object(response.status, &response.body)
}

fn refund_state(answer: &Map<String, Value>) -> Result<api::RefundState, Failure> {
    match required_str(answer, "status")?.as_str() {
        "succeeded" => Ok(api::RefundState::Succeeded),
        "pending" | "processing" => Ok(api::RefundState::Pending),
        "failed" | "canceled" => Ok(api::RefundState::Failed),
        other => Err(Failure::Unavailable(format!("unknown refund status {other:?}"))),
    }
}

fn metadata(pairs: Vec<(String, String)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect()
}

fn reason(reason: api::RefundReason) -> &'static str {
    match reason {
        api::RefundReason::RequestedByCustomer => "requested_by_customer",
        api::RefundReason::Duplicate => "duplicate",
        api::RefundReason::Fraudulent => "fraudulent",
    }
}

export!(Adapter);
