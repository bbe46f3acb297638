//! Provider-neutral failure classification for provider adapters.
//!
//! Each adapter crate generates its own copy of the WIT types, so the logic
//! here works on [`Failure`] and [`provider_glue!`](crate::provider_glue)
//! bridges it to the crate's generated `provider-error` and `http-error`.

use serde_json::Value;

/// Longest provider message passed on, so an error page cannot bloat logs.
const MAX_MESSAGE: usize = 300;

/// A failed provider call, mirroring the WIT `provider-error` cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The provider refused the payment.
    Declined(String),
    /// The provider says the request is wrong.
    InvalidRequest(String),
    /// Worth retrying later.
    Unavailable(String),
    /// Missing setting or secret, or credentials refused.
    Misconfigured(String),
}

/// An error response body reduced to what the classification needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ErrorDetail {
    /// Human-readable message, when the provider gave one.
    pub message: Option<String>,
    /// Provider's error category (Stripe's `error.type`).
    pub kind: Option<String>,
}

/// Reads the common error shapes: `{"error": {"message", "type"}}`,
/// `{"error": "..."}` and `{"message": "..."}`; anything else yields nothing.
pub fn error_detail(body: &[u8]) -> ErrorDetail {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return ErrorDetail::default();
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(truncate);
    match json.get("error") {
        Some(Value::String(message)) => ErrorDetail {
            message: Some(truncate(message)),
            kind: None,
        },
        Some(error @ Value::Object(_)) => ErrorDetail {
            message: text(error.get("message")),
            kind: text(error.get("type")),
        },
        _ => ErrorDetail {
            message: text(json.get("message")),
            kind: None,
        },
    }
}

/// Classifies a non-2xx provider answer.
///
/// Credentials problems (401/403) are the operator's to fix, so they are
/// `misconfigured`; 429 and 5xx are transient; 402 or a Stripe `card_error`
/// is a refusal of this payment; any other 4xx blames the request.
pub fn classify_status(status: u16, body: &[u8]) -> Failure {
    let detail = error_detail(body);
    let summary = match &detail.message {
        Some(message) => format!("HTTP {status}: {message}"),
        None => format!("HTTP {status}"),
    };
    let message = detail
        .message
        .unwrap_or_else(|| format!("provider answered HTTP {status}"));
    match status {
        401 | 403 => {
            Failure::Misconfigured(format!("provider refused the credentials ({summary})"))
        }
        402 => Failure::Declined(message),
        429 => Failure::Unavailable(format!("provider rate limit ({summary})")),
        400..=499 if detail.kind.as_deref() == Some("card_error") => Failure::Declined(message),
        400..=499 => Failure::InvalidRequest(message),
        _ => Failure::Unavailable(format!("provider unavailable ({summary})")),
    }
}

/// `{collection}/{reference}` with the reference encoded as one path
/// segment. An empty reference is refused: it would address the whole
/// collection, whose listing would then be misread as one payment.
pub fn item_path(collection: &str, reference: &str) -> Result<String, Failure> {
    if reference.is_empty() {
        return Err(Failure::InvalidRequest("empty provider reference".into()));
    }
    Ok(format!(
        "{collection}/{}",
        crate::url::path_segment(reference)
    ))
}

/// A 2xx answer the adapter cannot use; the provider may have changed or a
/// proxy interfered, which is worth retrying rather than blaming the merchant.
pub fn malformed(what: &str) -> Failure {
    Failure::Unavailable(format!("malformed provider response: {what}"))
}

/// Turns a provider answer into its JSON object when the status is 2xx and
/// into the classified [`Failure`] otherwise.
pub fn success_object(status: u16, body: &[u8]) -> Result<serde_json::Map<String, Value>, Failure> {
    if (200..300).contains(&status) {
        json_object(body)
    } else {
        Err(classify_status(status, body))
    }
}

/// Parses a 2xx body as a JSON object.
pub fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, Failure> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(malformed("body is not a JSON object")),
        Err(err) => Err(malformed(&format!("body is not JSON ({err})"))),
    }
}

/// A non-empty string field of a response object.
pub fn required_str(
    object: &serde_json::Map<String, Value>,
    field: &str,
) -> Result<String, Failure> {
    match object.get(field).and_then(Value::as_str) {
        Some(text) if !text.is_empty() => Ok(text.to_string()),
        _ => Err(malformed(&format!("missing string field `{field}`"))),
    }
}

/// `text` cut to its first 300 characters (with `...` when cut), so a
/// provider's text cannot bloat an error or a log line.
pub fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// Bridges [`Failure`] to the WIT types generated in the calling crate.
///
/// Expand once at the root of a crate whose `generate!` targets the
/// `provider-adapter` world: `provider_glue!()` where the package's module
/// is `paygate::plugins` (one WIT version in the crate's `wit/`), or
/// `provider_glue!(crate::exports::paygate::plugins0_2_0::provider,
/// crate::paygate::plugins0_1_0::http)` naming the generated modules. It
/// implements `From<Failure>` for the exported `ProviderError` and
/// `From<HttpError>` for `Failure`; the latter treats a denied or unusable
/// URL as configuration (the operator's allow-list or `base-url`) and
/// timeouts, transport faults and oversized bodies as transient.
// `crate` (not `$crate`) is deliberate: the generated types live in the
// crate that expands the macro.
#[allow(clippy::crate_in_macro_def)]
#[macro_export]
macro_rules! provider_glue {
    () => {
        $crate::provider_glue!(
            crate::exports::paygate::plugins::provider,
            crate::paygate::plugins::http
        );
    };
    ($($provider:ident)::+, $($http:ident)::+) => {
        impl ::core::convert::From<$crate::provider::Failure>
            for $($provider)::+::ProviderError
        {
            fn from(failure: $crate::provider::Failure) -> Self {
                use $crate::provider::Failure as F;
                match failure {
                    F::Declined(m) => Self::Declined(m),
                    F::InvalidRequest(m) => Self::InvalidRequest(m),
                    F::Unavailable(m) => Self::Unavailable(m),
                    F::Misconfigured(m) => Self::Misconfigured(m),
                }
            }
        }

        impl ::core::convert::From<$($http)::+::HttpError> for $crate::provider::Failure {
            fn from(error: $($http)::+::HttpError) -> Self {
                use $($http)::+::HttpError as H;
                match error {
                    H::Denied(host) => {
                        Self::Misconfigured(format!("host {host} is not on the allow-list"))
                    }
                    H::InvalidRequest(m) => Self::Misconfigured(format!("unusable request: {m}")),
                    H::Timeout => Self::Unavailable("provider timed out".into()),
                    H::TooLarge => Self::Unavailable("provider response too large".into()),
                    H::Transport(m) => Self::Unavailable(format!("transport error: {m}")),
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        let stripe = br#"{"error":{"message":"Your card was declined.","type":"card_error"}}"#;
        assert_eq!(
            classify_status(400, stripe),
            Failure::Declined("Your card was declined.".into())
        );
        let bad = br#"{"error":{"message":"Invalid currency","type":"invalid_request_error"}}"#;
        assert_eq!(
            classify_status(400, bad),
            Failure::InvalidRequest("Invalid currency".into())
        );
        assert!(matches!(
            classify_status(401, b""),
            Failure::Misconfigured(_)
        ));
        assert!(matches!(
            classify_status(403, b""),
            Failure::Misconfigured(_)
        ));
        assert!(matches!(classify_status(402, b""), Failure::Declined(_)));
        assert!(matches!(classify_status(429, b""), Failure::Unavailable(_)));
        assert!(matches!(
            classify_status(503, b"<html>"),
            Failure::Unavailable(_)
        ));
        assert_eq!(
            classify_status(422, br#"{"error":"bad amount"}"#),
            Failure::InvalidRequest("bad amount".into())
        );
        assert_eq!(
            classify_status(404, br#"{"message":"no such link"}"#),
            Failure::InvalidRequest("no such link".into())
        );
    }

    #[test]
    fn truncates_long_messages() {
        let long = format!(r#"{{"error":"{}"}}"#, "é".repeat(1000));
        let message = error_detail(long.as_bytes()).message.unwrap();
        assert_eq!(message.chars().count(), MAX_MESSAGE + 3);
    }

    #[test]
    fn reads_required_fields() {
        let object = json_object(br#"{"id":"cs_1","url":""}"#).unwrap();
        assert_eq!(required_str(&object, "id"), Ok("cs_1".into()));
        assert!(matches!(
            required_str(&object, "url"),
            Err(Failure::Unavailable(_))
        ));
        assert!(json_object(b"[1]").is_err());
        assert!(json_object(b"nope").is_err());
    }

    #[test]
    fn builds_item_paths() {
        assert_eq!(item_path("v1/x", "cs_1/.."), Ok("v1/x/cs_1%2F..".into()));
        assert!(matches!(
            item_path("v1/x", ""),
            Err(Failure::InvalidRequest(_))
        ));
    }

    #[test]
    fn success_needs_2xx() {
        assert!(success_object(201, br#"{"id":"x"}"#).is_ok());
        assert!(matches!(
            success_object(500, b""),
            Err(Failure::Unavailable(_))
        ));
        assert!(matches!(
            success_object(200, b"<html>"),
            Err(Failure::Unavailable(_))
        ));
    }
}
