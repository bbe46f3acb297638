//! The conformance cases of a provider adapter, written once and run
//! against every build: what the adapter sends, what it makes of each
//! provider answer, and the fake provider that gives those answers.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use paygate::plugins::PluginError;
use paygate::plugins::bindings::{PaymentState, ProviderError};
use serde_json::json;

use super::Subject;
use crate::helpers::payment;
use crate::sandbox_provider::{Sandbox, gateway, with_plugins::open_and_click};

/// How long the slow provider takes: far past the spec's HTTP timeout.
const SLOW_ANSWER: Duration = Duration::from_secs(3);

/// Runs every case against `subject`.
pub(super) async fn run_all(subject: &Subject) {
    opens_a_payment_link(subject).await;
    reads_payment_states(subject).await;
    maps_provider_refusals(subject).await;
    gives_up_on_a_slow_provider(subject).await;
    without_base_url_is_misconfigured(subject).await;
    agrees_with_the_sandbox_provider(subject).await;
}

/// The success path: what the adapter sends and the session it returns.
async fn opens_a_payment_link(subject: &Subject) {
    let adapter = subject.at("ok");
    let session = adapter
        .create_payment("req-polyglot", &payment(42, &[]))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{}: {e:?}", subject.name()));
    assert_eq!(
        (session.reference.as_str(), session.payment_url.as_str()),
        ("pl_1", "https://sandbox.test/pay/pl_1"),
        "{}",
        subject.name()
    );

    let sent = subject.provider.requests().pop().expect("a request");
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/ok/payment-links")
    );
    assert_eq!(sent.headers["idempotency-key"], "idem-42");
    assert_eq!(sent.headers["content-type"], "application/json");
    assert_eq!(sent.headers["x-request-id"], "req-polyglot");
    let body: serde_json::Value = serde_json::from_str(&sent.body).unwrap();
    let mut expected = json!({
        "payment_id": 42, "merchant_id": 7, "order_id": 1042, "amount": "1",
        "price": "10.00", "currency": "EUR", "idempotency_key": "idem-42",
        "return_url": "https://shop.example/return",
    });
    // A 0.2.0 adapter also has the payment's cancel URL and passes on its
    // metadata; a 0.1.0 port sends what 0.1.0 defined.
    if adapter.wit_version() == "0.2.0" {
        expected["cancel_url"] = json!("https://shop.example/cancel");
        expected["metadata"] = json!({});
    }
    assert_eq!(body, expected, "{}", subject.name());

    let numeric = subject
        .at("numeric-id")
        .create_payment("r", &payment(43, &[]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(numeric.reference, "42", "{}", subject.name());
}

/// `payment-status`: each state, an unknown one, and awkward references.
async fn reads_payment_states(subject: &Subject) {
    let adapter = subject.at("ok");
    for (reference, state) in [
        ("pending", PaymentState::Pending),
        ("finished", PaymentState::Finished),
        ("failed", PaymentState::Failed),
    ] {
        let seen = adapter.payment_status("r", reference).await.unwrap();
        assert_eq!(seen.ok(), Some(state), "{}: {reference}", subject.name());
    }

    // The reference is one path segment however it is spelled.
    let outcome = adapter.payment_status("r", "pl 1/..?#é").await;
    let sent = subject.provider.requests().pop().expect("a request");
    assert_eq!(sent.path, "/ok/payment-links/pl%201%2F..%3F%23%C3%A9");
    assert_refused(
        subject,
        outcome,
        "unavailable",
        Message::Is(r#"malformed provider response: unknown status "pl 1/..?#é""#),
    );

    let outcome = adapter.payment_status("r", "").await;
    assert_refused(
        subject,
        outcome,
        "invalid-request",
        Message::Is("empty provider reference"),
    );
}

/// Declines, other 4xx, 5xx and malformed answers, each to its `provider-error`.
async fn maps_provider_refusals(subject: &Subject) {
    for refusal in REFUSALS {
        let outcome = subject
            .at(refusal.case)
            .create_payment("r", &payment(44, &[]))
            .await;
        assert_refused(subject, outcome, refusal.error, refusal.message);
    }

    // Provider messages are cut at 300 characters, not bytes.
    let outcome = subject
        .at("long-error")
        .create_payment("r", &payment(44, &[]))
        .await;
    let cut = format!("{}...", "é".repeat(300));
    assert_refused(subject, outcome, "invalid-request", Message::Is(&cut));
}

/// A provider slower than the HTTP timeout is given up on, not waited for.
async fn gives_up_on_a_slow_provider(subject: &Subject) {
    let started = Instant::now();
    let outcome = subject
        .at("slow")
        .create_payment("r", &payment(45, &[]))
        .await;
    // The host's HTTP timeout answers `timeout` to the guest; a guest that
    // kept waiting would hit the call's deadline instead. Either is fine,
    // hanging on is not.
    match outcome {
        Err(PluginError::DeadlineExceeded { .. }) => {}
        other => assert_refused(
            subject,
            other,
            "unavailable",
            Message::Is("provider timed out"),
        ),
    }
    assert!(started.elapsed() < SLOW_ANSWER, "{}", subject.name());
}

/// Without `base-url` the adapter says what is missing and sends nothing.
async fn without_base_url_is_misconfigured(subject: &Subject) {
    let adapter = subject.configured(&subject.provider.addr.to_string(), None);
    let before = subject.provider.requests().len();
    let expected = Message::Is("setting `base-url` is not set");
    let outcome = adapter.create_payment("r", &payment(46, &[])).await;
    assert_refused(subject, outcome, "misconfigured", expected);
    let outcome = adapter.payment_status("r", "pl_1").await;
    assert_refused(subject, outcome, "misconfigured", expected);
    assert_eq!(subject.provider.requests().len(), before, "nothing sent");
}

/// The real sandbox accepts what the adapter sends and the adapter reads
/// what the sandbox answers, through a paid and a declined payment.
async fn agrees_with_the_sandbox_provider(subject: &Subject) {
    let gateway = gateway().await;
    let sandbox = Sandbox::start(&gateway.url()).await;
    let host = sandbox.url.trim_start_matches("http://");
    let adapter = subject.configured(host, Some(&sandbox.url));
    for (id, button, state) in [
        (71, "pay", PaymentState::Finished),
        (72, "decline", PaymentState::Failed),
    ] {
        let reference = open_and_click(&adapter, id, button).await;
        let seen = adapter.payment_status("r", &reference).await.unwrap();
        assert_eq!(seen.ok(), Some(state), "{}: {button}", subject.name());
    }
}

/// What the fake provider answers at `{base}/{case}/payment-links`, and
/// the `provider-error` the adapter must make of it.
struct Refusal {
    case: &'static str,
    status: u16,
    body: &'static str,
    error: &'static str,
    message: Message<'static>,
}

/// The expected message of a `provider-error`.
#[derive(Clone, Copy, Debug)]
enum Message<'a> {
    Is(&'a str),
    /// The rest quotes the guest language's JSON parser.
    StartsWith(&'a str),
}

const REFUSALS: &[Refusal] = &[
    Refusal {
        case: "declined",
        status: 402,
        body: r#"{"error":"card declined"}"#,
        error: "declined",
        message: Message::Is("card declined"),
    },
    Refusal {
        case: "card-error",
        status: 400,
        body: r#"{"error":{"type":"card_error","message":"Your card was declined."}}"#,
        error: "declined",
        message: Message::Is("Your card was declined."),
    },
    Refusal {
        case: "rejected",
        status: 422,
        body: r#"{"error":{"type":"invalid_request_error","message":"price must be positive"}}"#,
        error: "invalid-request",
        message: Message::Is("price must be positive"),
    },
    Refusal {
        case: "not-found",
        status: 404,
        body: "",
        error: "invalid-request",
        message: Message::Is("provider answered HTTP 404"),
    },
    Refusal {
        case: "unauthorized",
        status: 401,
        body: "",
        error: "misconfigured",
        message: Message::Is("provider refused the credentials (HTTP 401)"),
    },
    Refusal {
        case: "rate-limited",
        status: 429,
        body: r#"{"message":"slow down"}"#,
        error: "unavailable",
        message: Message::Is("provider rate limit (HTTP 429: slow down)"),
    },
    Refusal {
        case: "down",
        status: 503,
        body: "<html>down for maintenance</html>",
        error: "unavailable",
        message: Message::Is("provider unavailable (HTTP 503)"),
    },
    Refusal {
        case: "not-json",
        status: 201,
        body: "<html>",
        error: "unavailable",
        message: Message::StartsWith("malformed provider response: body is not JSON ("),
    },
    Refusal {
        case: "not-an-object",
        status: 201,
        body: r#"["pl_1"]"#,
        error: "unavailable",
        message: Message::Is("malformed provider response: body is not a JSON object"),
    },
    Refusal {
        case: "no-id",
        status: 201,
        body: r#"{"id":"","payment_url":"https://sandbox.test/pay/x"}"#,
        error: "unavailable",
        message: Message::Is("malformed provider response: missing field `id`"),
    },
    Refusal {
        case: "no-url",
        status: 201,
        body: r#"{"id":"pl_1","payment_url":7}"#,
        error: "unavailable",
        message: Message::Is("malformed provider response: missing string field `payment_url`"),
    },
];

/// A provider whose answer depends on the first path segment, so each case
/// is a provider at its own base URL. `GET` answers with the reference as
/// the status, so one route serves every state, unknown ones included.
pub(super) fn fake_provider() -> Router {
    Router::new()
        .route(
            "/{case}/payment-links",
            post(|Path(case): Path<String>| async move {
                let (status, body) = match case.as_str() {
                    "ok" => (201, LINK.to_owned()),
                    "slow" => {
                        tokio::time::sleep(SLOW_ANSWER).await;
                        (201, LINK.to_owned())
                    }
                    "long-error" => (422, json!({"error": "é".repeat(400)}).to_string()),
                    "numeric-id" => (
                        201,
                        r#"{"id":42,"payment_url":"https://sandbox.test/pay/42"}"#.to_owned(),
                    ),
                    case => REFUSALS
                        .iter()
                        .find(|r| r.case == case)
                        .map(|r| (r.status, r.body.to_owned()))
                        .unwrap_or_else(|| panic!("no case {case}")),
                };
                (
                    StatusCode::from_u16(status).unwrap(),
                    [("content-type", "application/json")],
                    body,
                )
            }),
        )
        .route(
            "/{case}/payment-links/{reference}",
            get(|Path((_, reference)): Path<(String, String)>| async move {
                axum::Json(json!({"id": reference, "status": reference}))
            }),
        )
}

/// The link the fake provider opens.
const LINK: &str = r#"{"id":"pl_1","object":"payment_link","status":"pending","payment_url":"https://sandbox.test/pay/pl_1"}"#;

/// Checks that a call returned the `provider-error` case `error` with
/// `message`.
fn assert_refused<T: std::fmt::Debug>(
    subject: &Subject,
    outcome: Result<Result<T, ProviderError>, PluginError>,
    error: &str,
    message: Message,
) {
    let seen = match &outcome {
        Ok(Err(e)) => describe(e),
        _ => panic!("{}: expected {error}, got {outcome:?}", subject.name()),
    };
    let matches = match message {
        Message::Is(text) => seen.1 == text,
        Message::StartsWith(text) => seen.1.starts_with(text),
    };
    assert!(
        seen.0 == error && matches,
        "{}: expected {error} {message:?}, got {seen:?}",
        subject.name()
    );
}

/// A `provider-error` as its WIT case name and message.
fn describe(error: &ProviderError) -> (&'static str, &str) {
    match error {
        ProviderError::Declined(m) => ("declined", m),
        ProviderError::InvalidRequest(m) => ("invalid-request", m),
        ProviderError::Unavailable(m) => ("unavailable", m),
        ProviderError::Misconfigured(m) => ("misconfigured", m),
    }
}
