//! Recorded exchanges: what the mock provider answers, what a webhook looks
//! like, and the outcome the plugin must give. Users add cases by dropping
//! JSON or TOML files into a folder (`--fixtures DIR`).
//!
//! A provider-adapter fixture:
//!
//! ```json
//! {
//!   "name": "card declined",
//!   "call": "create-payment",
//!   "request": { "method": "POST", "path": "/v1/checkout/sessions" },
//!   "response": { "status": 402, "headers": { "content-type": "application/json" },
//!                 "body": { "error": { "type": "card_error" } }, "delay_ms": 0 },
//!   "expect": "declined"
//! }
//! ```
//!
//! A webhook-verifier fixture (signed with the secret passed as `--secret`):
//!
//! ```json
//! {
//!   "name": "recorded checkout.session.completed",
//!   "webhook": { "headers": { "stripe-signature": "t=...,v1=..." }, "body": "{...}" },
//!   "now_ms": 1700000000000,
//!   "expect": "ok",
//!   "events": 1
//! }
//! ```
//!
//! `expect` names the WIT outcome: `ok` or an error case of the world's
//! error variant in WIT spelling (`declined`, `invalid-request`,
//! `unavailable`, `misconfigured`; `invalid-signature`, `signature-expired`,
//! `malformed`), or for `payment-status` a state (`pending`, `finished`,
//! `failed`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::mock::Received;
use paygate_runtime::bindings::WebhookRequest;

/// One user case, read from a file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// The case's name in the report.
    pub name: String,
    /// Provider adapters: `create-payment` (default) or `payment-status`.
    #[serde(default)]
    pub call: Option<String>,
    /// The reference `payment-status` is asked about.
    #[serde(default)]
    pub reference: Option<String>,
    /// When set, every request the plugin sends must match it.
    #[serde(default)]
    pub request: Option<RequestMatch>,
    /// What the mock provider answers (provider adapters).
    #[serde(default)]
    pub response: Option<FixtureResponse>,
    /// The webhook to verify (webhook verifiers).
    #[serde(default)]
    pub webhook: Option<WebhookFixture>,
    /// The clock the plugin sees, in Unix milliseconds (a recorded
    /// webhook's signature is only fresh at the time it was sent).
    #[serde(default)]
    pub now_ms: Option<u64>,
    /// The outcome the plugin must give.
    pub expect: String,
    /// Verifiers: how many events a valid webhook must yield.
    #[serde(default)]
    pub events: Option<usize>,
    /// The file it came from.
    #[serde(skip)]
    pub path: PathBuf,
}

/// The request a fixture expects the plugin to send: every part given must
/// hold for every request of the case.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestMatch {
    /// Upper-case method, e.g. `POST`.
    #[serde(default)]
    pub method: Option<String>,
    /// The path without the query; a trailing `*` matches any rest.
    #[serde(default)]
    pub path: Option<String>,
    /// Headers that must be sent with exactly these values (names in any
    /// case), e.g. `"authorization": "Bearer sk_test_paygate_harness"`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body must hold these fields with these values; objects are
    /// compared field by field, so only what is named is checked.
    #[serde(default)]
    pub json: Option<Value>,
    /// A form body (`a=1&b%5Bc%5D=2`) must hold these pairs, decoded,
    /// e.g. `"line_items[0][price_data][unit_amount]": "1000"`.
    #[serde(default)]
    pub form: BTreeMap<String, String>,
    /// The body must contain each of these texts.
    #[serde(default)]
    pub body_contains: Vec<String>,
}

impl RequestMatch {
    /// Why `received` does not match, or `None` when it does.
    pub fn mismatch(&self, received: &Received) -> Option<String> {
        let (method, path) = (&received.method, &received.path);
        let method_ok = self
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method));
        let path_ok = self
            .path
            .as_deref()
            .is_none_or(|p| match p.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => p == path,
            });
        if !(method_ok && path_ok) {
            return Some(format!(
                "the plugin sent {method} {path}, the fixture expects {} {}",
                self.method.as_deref().unwrap_or("any method"),
                self.path.as_deref().unwrap_or("any path")
            ));
        }
        let sent = |what: String| Some(format!("{method} {path}: {what}"));
        for (name, wanted) in &self.headers {
            let found = received
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str());
            if found != Some(wanted.as_str()) {
                return sent(match found {
                    None => format!("no {name} header, the fixture expects {wanted:?}"),
                    Some(v) => format!("header {name} is {v:?}, the fixture expects {wanted:?}"),
                });
            }
        }
        let text = String::from_utf8_lossy(&received.body);
        if let Some(wanted) = &self.json {
            let body = serde_json::from_slice::<Value>(&received.body);
            match body {
                Err(_) => return sent(format!("the body is not JSON: {}", excerpt(&text))),
                Ok(body) => {
                    if let Some(why) = json_mismatch(wanted, &body, "") {
                        return sent(format!("in the JSON body, {why}"));
                    }
                }
            }
        }
        if !self.form.is_empty() {
            let pairs: Vec<_> = form_urlencoded::parse(&received.body).collect();
            for (name, wanted) in &self.form {
                let found = pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v);
                if found.map(|v| v.as_ref()) != Some(wanted.as_str()) {
                    return sent(match found {
                        None => {
                            format!("the form body has no {name}, the fixture expects {wanted:?}")
                        }
                        Some(v) => {
                            format!("form field {name} is {v:?}, the fixture expects {wanted:?}")
                        }
                    });
                }
            }
        }
        for wanted in &self.body_contains {
            if !text.contains(wanted.as_str()) {
                return sent(format!("the body lacks {wanted:?}: {}", excerpt(&text)));
            }
        }
        None
    }
}

/// Where `actual` differs from the fields `wanted` names, or `None`.
fn json_mismatch(wanted: &Value, actual: &Value, at: &str) -> Option<String> {
    match (wanted, actual) {
        (Value::Object(fields), Value::Object(have)) => fields.iter().find_map(|(k, w)| {
            let at = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            match have.get(k) {
                None => Some(format!("`{at}` is missing, the fixture expects {w}")),
                Some(a) => json_mismatch(w, a, &at),
            }
        }),
        _ if wanted == actual => None,
        _ => {
            let at = if at.is_empty() { "the body" } else { at };
            Some(format!("`{at}` is {actual}, the fixture expects {wanted}"))
        }
    }
}

/// The start of a body, for a failure message.
pub fn excerpt(text: &str) -> String {
    const MAX: usize = 300;
    if text.chars().count() > MAX {
        format!("{}...", text.chars().take(MAX).collect::<String>())
    } else if text.is_empty() {
        "(empty)".into()
    } else {
        text.to_owned()
    }
}

/// What the mock provider sends back.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureResponse {
    /// HTTP status, 200 unless given.
    #[serde(default = "ok_status")]
    pub status: u16,
    /// Response headers, added to the content type the body implies.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A string is sent as it is; anything else is sent as JSON.
    #[serde(default)]
    pub body: Value,
    /// Wait this long before answering, to play a slow provider.
    #[serde(default)]
    pub delay_ms: u64,
}

fn ok_status() -> u16 {
    200
}

impl FixtureResponse {
    /// A JSON answer.
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: BTreeMap::new(),
            body,
            delay_ms: 0,
        }
    }

    /// The body's bytes and, when the fixture names none, its content type.
    pub fn body_bytes(&self) -> (Vec<u8>, Option<&'static str>) {
        match &self.body {
            Value::Null => (Vec::new(), None),
            Value::String(text) => (text.clone().into_bytes(), None),
            json => (json.to_string().into_bytes(), Some("application/json")),
        }
    }
}

/// A webhook as it arrives at paygate.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookFixture {
    /// The path it arrived on; the webhook route of paygate unless given.
    #[serde(default = "webhook_path")]
    pub path: String,
    /// Header names are lower-cased before the call, as the host does.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The raw body: a string is used byte for byte, anything else as JSON.
    #[serde(default)]
    pub body: Value,
    /// Sign the body at the case's time with the harness's test secret in
    /// this scheme (`internal-hmac`, `stripe`, `adyen`), instead of carrying
    /// a signature: a readable fixture needs no signing tool.
    #[serde(default)]
    pub sign: Option<String>,
}

fn webhook_path() -> String {
    "/api/v1/payments/webhook".into()
}

impl WebhookFixture {
    /// The webhook as the host hands it to a verifier.
    pub fn request(&self) -> WebhookRequest {
        let body = match &self.body {
            Value::Null => Vec::new(),
            Value::String(text) => text.clone().into_bytes(),
            json => json.to_string().into_bytes(),
        };
        WebhookRequest {
            path: self.path.clone(),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            body,
        }
    }
}

/// A fixture file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("fixture {path}: {reason}")]
pub struct FixtureError {
    /// The file or folder.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Reads every `*.json` and `*.toml` file of `dir`, in name order.
pub fn load_dir(dir: &Path) -> Result<Vec<Fixture>, FixtureError> {
    let error = |path: &Path, reason: String| FixtureError {
        path: path.display().to_string(),
        reason,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| error(dir, e.to_string()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(extension(p), Some("json" | "toml")))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|e| error(&path, e.to_string()))?;
            let parsed = if extension(&path) == Some("toml") {
                toml::from_str::<Fixture>(&text).map_err(|e| e.to_string())
            } else {
                serde_json::from_str::<Fixture>(&text).map_err(|e| e.to_string())
            };
            let mut fixture = parsed.map_err(|reason| error(&path, reason))?;
            fixture.path = path;
            Ok(fixture)
        })
        .collect()
}

fn extension(path: &Path) -> Option<&str> {
    path.extension().and_then(|e| e.to_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_json_and_toml_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("b.toml"),
            "name = \"b\"\nexpect = \"declined\"\n[response]\nstatus = 402\nbody = \"no\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            r#"{"name":"a","expect":"ok","response":{"body":{"id":"x"}}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let fixtures = load_dir(dir.path()).unwrap();
        let names: Vec<_> = fixtures.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let a = fixtures[0].response.as_ref().unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(
            a.body_bytes(),
            (br#"{"id":"x"}"#.to_vec(), Some("application/json"))
        );
        assert_eq!(fixtures[1].response.as_ref().unwrap().body_bytes().0, b"no");
    }

    #[test]
    fn names_the_file_of_a_bad_fixture() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.json"), r#"{"name":"x"}"#).unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("bad.json"), "{err}");
        assert!(err.to_string().contains("expect"), "{err}");
    }

    fn received(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Received {
        Received {
            method: method.into(),
            path: path.into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).into(), (*v).into()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn matches_requests() {
        let m = RequestMatch {
            method: Some("POST".into()),
            path: Some("/v1/*".into()),
            ..RequestMatch::default()
        };
        assert_eq!(
            m.mismatch(&received("post", "/v1/checkout/sessions", &[], "")),
            None
        );
        assert!(m.mismatch(&received("GET", "/v1/x", &[], "")).is_some());
        assert!(m.mismatch(&received("POST", "/v2/x", &[], "")).is_some());
        assert_eq!(
            RequestMatch::default().mismatch(&received("GET", "/", &[], "")),
            None
        );
    }

    #[test]
    fn matches_headers_json_form_and_text_of_the_body() {
        let m: RequestMatch = serde_json::from_value(serde_json::json!({
            "headers": { "Authorization": "Bearer sk_1" },
            "json": { "amount": 1000, "metadata": { "order": "7" } },
        }))
        .unwrap();
        // The mismatch of a POST to /p with `authorization` and `body`.
        let post = |authorization: &str, body: &str| {
            m.mismatch(&received(
                "POST",
                "/p",
                &[("authorization", authorization)],
                body,
            ))
        };
        let good = r#"{"amount":1000,"currency":"eur","metadata":{"order":"7","x":"y"}}"#;
        assert_eq!(post("Bearer sk_1", good), None);
        let why = post("Bearer sk_2", "{}").unwrap();
        assert!(
            why.contains("header Authorization") && why.contains("sk_2"),
            "{why}"
        );
        let why = post(
            "Bearer sk_1",
            r#"{"amount":"10.00","metadata":{"order":"7"}}"#,
        )
        .unwrap();
        assert!(
            why.contains("`amount` is \"10.00\"") && why.contains("1000"),
            "{why}"
        );
        let why = post("Bearer sk_1", r#"{"amount":1000,"metadata":{}}"#).unwrap();
        assert!(why.contains("`metadata.order` is missing"), "{why}");

        let form: RequestMatch = serde_json::from_value(serde_json::json!({
            "form": { "line_items[0][price_data][unit_amount]": "1000", "mode": "payment" },
            "body_contains": ["currency=eur"],
        }))
        .unwrap();
        let body =
            "mode=payment&line_items%5B0%5D%5Bprice_data%5D%5Bunit_amount%5D=1000&currency=eur";
        assert_eq!(form.mismatch(&received("POST", "/", &[], body)), None);
        let why = form
            .mismatch(&received("POST", "/", &[], "mode=payment&currency=eur"))
            .unwrap();
        assert!(
            why.contains("has no line_items[0][price_data][unit_amount]"),
            "{why}"
        );
        let why = form
            .mismatch(&received("POST", "/", &[], &body.replace("eur", "usd")))
            .unwrap();
        assert!(why.contains("lacks \"currency=eur\""), "{why}");
        // `+` and `%20` are spaces in a form.
        let spaced: RequestMatch =
            serde_json::from_value(serde_json::json!({ "form": { "note": "a b c" } })).unwrap();
        assert_eq!(
            spaced.mismatch(&received("POST", "/", &[], "note=a+b%20c")),
            None
        );
        assert!(
            spaced
                .mismatch(&received("POST", "/", &[], "note=a+b"))
                .is_some()
        );
    }
}
