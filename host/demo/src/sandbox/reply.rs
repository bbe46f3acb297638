//! Response shapes and input checks both provider dialects share.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Longest URL accepted; browsers and proxies start failing past this.
const MAX_URL: usize = 2048;
/// Stripe's limit on idempotency keys; the link API uses the same.
const MAX_KEY: usize = 255;

/// The link API's error: `{"error": {"message": ...}}`.
pub(crate) fn link_error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({ "error": { "message": message.into() } });
    (status, axum::Json(body)).into_response()
}

/// Stripe's error shape; `param` names the offending parameter when known.
pub(crate) fn stripe_error(
    status: StatusCode,
    kind: &str,
    message: impl Into<String>,
    param: Option<&str>,
) -> Response {
    let mut error = json!({ "type": kind, "message": message.into() });
    if let Some(param) = param {
        error["param"] = Value::from(param);
    }
    (status, axum::Json(json!({ "error": error }))).into_response()
}

/// The `Idempotency-Key` header: absent or empty is `None`.
pub(crate) fn idempotency_header(headers: &HeaderMap) -> Result<Option<String>, String> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| "Idempotency-Key must be visible ASCII".to_string())?;
            idempotency_key(text)
        }
    }
}

/// Checks a key from a header or a body field; empty means none.
pub(crate) fn idempotency_key(text: &str) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.len() > MAX_KEY {
        return Err(format!(
            "idempotency key is longer than {MAX_KEY} characters"
        ));
    }
    Ok((!text.is_empty()).then(|| text.to_string()))
}

/// An absolute `http(s)` URL the buyer may be sent to. Only visible ASCII
/// is accepted so the URL can go into a `Location` header as given.
pub(crate) fn redirect_url(field: &str, text: &str) -> Result<String, String> {
    let usable = text.len() <= MAX_URL
        && text.bytes().all(|b| b.is_ascii_graphic())
        && reqwest::Url::parse(text).is_ok_and(|url| matches!(url.scheme(), "http" | "https"));
    if usable {
        Ok(text.to_string())
    } else {
        Err(format!(
            "{field} must be an absolute http or https URL of at most {MAX_URL} characters"
        ))
    }
}

/// Three ASCII letters, the shape of an ISO 4217 code.
pub(crate) fn is_currency(text: &str) -> bool {
    text.len() == 3 && text.bytes().all(|b| b.is_ascii_alphabetic())
}
