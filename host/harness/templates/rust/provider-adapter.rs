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

use exports::paygate::plugins0_2_0::provider::{self as api, ProviderError};
use paygate::plugins0_1_0::{config, http};
use serde_json::{Map, Value, json};

wit_bindgen::generate!({
    path: "wit",
    world: "provider-adapter",
    // wit/ holds 0.2.0 and, in wit/deps/, the 0.1.0 interfaces it imports.
    generate_all,
});

/// The longest provider message passed on, so an error page cannot bloat logs.
const MAX_MESSAGE: usize = 200;

struct Adapter;

impl api::Guest for Adapter {
    fn create_payment(
        request: api::PaymentRequest,
    ) -> Result<api::PaymentSession, ProviderError> {
        let body = json!({
            "reference": request.payment_id.to_string(),
            "order": request.order_id.to_string(),
            "amount": request.price,
            "currency": request.currency,
            "success_url": request.return_url,
            "cancel_url": request.cancel_url,
            "metadata": metadata(request.metadata),
        });
        let answer = send(http::Method::Post, "payments", Some((&request.idempotency_key, body)))?;
        Ok(api::PaymentSession {
            reference: text(&answer, "id")?,
            payment_url: text(&answer, "url")?,
        })
    }

    fn payment_status(reference: String) -> Result<api::PaymentState, ProviderError> {
        let answer = send(http::Method::Get, &format!("payments/{}", segment(&reference)?), None)?;
        Ok(match text(&answer, "status")?.as_str() {
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
            reference: text(&answer, "id")?,
            state: refund_state(&answer)?,
        })
    }

    fn refund_status(reference: String) -> Result<api::RefundState, ProviderError> {
        let answer = send(http::Method::Get, &format!("refunds/{}", segment(&reference)?), None)?;
        refund_state(&answer)
    }
}

/// Sends one request under `base-url` and returns its JSON object, or the
/// `provider-error` its failure means. A body comes with its idempotency key.
fn send(
    method: http::Method,
    path: &str,
    body: Option<(&str, Value)>,
) -> Result<Map<String, Value>, ProviderError> {
    // Checked before anything is sent: without them no request can be right.
    let base_url = required(config::get("base-url"), "setting `base-url`")?;
    let key = required(config::secret("secret-key"), "secret `secret-key`")?;
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
        url: format!("{}/{path}", base_url.trim_end_matches('/')),
        headers,
        body: bytes,
        timeout_ms: None,
    })
    .map_err(transport_error)?;
    let json = serde_json::from_slice::<Value>(&response.body).ok();
    match (response.status, json) {
        (200..=299, Some(Value::Object(object))) => Ok(object),
        (status @ 200..=299, _) => Err(ProviderError::Unavailable(format!(
            "HTTP {status} whose body is not a JSON object"
        ))),
        (status, json) => Err(status_error(status, json.as_ref().and_then(message))),
    }
}

/// What an HTTP status means for the payment or refund.
fn status_error(status: u16, message: Option<String>) -> ProviderError {
    let message = message.unwrap_or_else(|| format!("HTTP {status}"));
    match status {
        402 => ProviderError::Declined(message),
        401 | 403 => ProviderError::Misconfigured(format!("credentials refused: {message}")),
        408 | 429 | 500..=599 => ProviderError::Unavailable(message),
        400..=499 => ProviderError::InvalidRequest(message),
        _ => ProviderError::Unavailable(message),
    }
}

/// What a failed send means: the host refused it, or the provider did not answer.
fn transport_error(error: http::HttpError) -> ProviderError {
    match error {
        http::HttpError::Denied(host) => ProviderError::Misconfigured(format!(
            "{host} is not among the plugin's allowed_hosts"
        )),
        http::HttpError::InvalidRequest(why) => {
            ProviderError::Misconfigured(format!("the request could not be sent: {why}"))
        }
        http::HttpError::Timeout => ProviderError::Unavailable("no answer in time".into()),
        http::HttpError::TooLarge => ProviderError::Unavailable("the answer is too large".into()),
        http::HttpError::Transport(why) => ProviderError::Unavailable(why),
    }
}

/// The provider's own words about a failure: `{"error": {"message"}}` or `{"message"}`.
fn message(json: &Value) -> Option<String> {
    let text = json["error"]["message"]
        .as_str()
        .or_else(|| json["message"].as_str())?;
    Some(text.chars().take(MAX_MESSAGE).collect())
}

fn refund_state(answer: &Map<String, Value>) -> Result<api::RefundState, ProviderError> {
    match text(answer, "status")?.as_str() {
        "succeeded" => Ok(api::RefundState::Succeeded),
        "pending" | "processing" => Ok(api::RefundState::Pending),
        "failed" | "canceled" => Ok(api::RefundState::Failed),
        other => Err(ProviderError::Unavailable(format!("unknown refund status {other:?}"))),
    }
}

/// A non-empty string field of an answer; its absence means the answer is
/// not what the provider sends, so the call is worth asking again.
fn text(answer: &Map<String, Value>, field: &str) -> Result<String, ProviderError> {
    match answer.get(field).and_then(Value::as_str) {
        Some(value) if !value.is_empty() => Ok(value.to_owned()),
        _ => Err(ProviderError::Unavailable(format!("the answer has no `{field}`"))),
    }
}

fn required(value: Option<String>, what: &str) -> Result<String, ProviderError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ProviderError::Misconfigured(format!("{what} is not set")))
}

/// A reference as one path segment: the provider's ids are plain, and
/// anything else must not reach another path.
fn segment(reference: &str) -> Result<&str, ProviderError> {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !reference.is_empty() && reference.len() <= 255 && reference.chars().all(plain) {
        Ok(reference)
    } else {
        Err(ProviderError::InvalidRequest(format!("reference {reference:?} is not a provider id")))
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
