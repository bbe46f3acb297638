//! The conformance cases of a provider adapter, written once and run
//! against every build: what the adapter sends, what it makes of each
//! provider answer, and the fake provider that gives those answers.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use paygate::plugins::PluginError;
use paygate::plugins::bindings::{
    PaymentState, ProviderError, RefundReason, RefundRequest, RefundState,
};
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
    gives_money_back(subject).await;
    reads_refund_states(subject).await;
    maps_refund_refusals(subject).await;
    agrees_with_the_sandbox_provider(subject).await;
}

/// The success path: what the adapter sends and the session it returns.
async fn opens_a_payment_link(subject: &Subject) {
    let adapter = subject.at("ok");
    let session = adapter
        .create_payment(
            "req-polyglot",
            &payment(42, &[("cart", "c-1"), ("note", "é \"x\"")]),
        )
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
    let expected = json!({
        "payment_id": 42, "merchant_id": 7, "order_id": 1042, "amount": "1",
        "price": "10.00", "currency": "EUR", "idempotency_key": "idem-42",
        "return_url": "https://shop.example/return",
        "cancel_url": "https://shop.example/cancel",
        "metadata": {"cart": "c-1", "note": "é \"x\""},
    });
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
    refuses_empty_reference(subject, outcome);
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

/// A refund of part of a payment: what the adapter sends and the refund
/// it reads back.
async fn gives_money_back(subject: &Subject) {
    let refund = subject
        .at("ok")
        .refund("req-refund", &refund_of("pl 1/x", "2.50", u64::MAX))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{}: {e:?}", subject.name()));
    assert_eq!(refund.reference, "rf_1", "{}", subject.name());
    assert_eq!(refund.state, RefundState::Pending, "{}", subject.name());

    let sent = subject.provider.requests().pop().expect("a request");
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/ok/payment-links/pl%201%2Fx/refunds"),
        "{}",
        subject.name()
    );
    assert_eq!(
        sent.headers["idempotency-key"],
        "paygate-refund-18446744073709551615"
    );
    assert_eq!(sent.headers["content-type"], "application/json");
    // The ids are u64 to the last digit, which a JSON number in JavaScript
    // would round.
    let body: serde_json::Value = serde_json::from_str(&sent.body).unwrap();
    let expected = json!({
        "refund_id": u64::MAX, "payment_id": 42, "price": "2.50", "currency": "EUR",
        "reason": "duplicate", "metadata": {"cart": "c-1"},
    });
    assert_eq!(body, expected, "{}", subject.name());

    let mut no_reason = refund_of("pl_1", "1.00", 5);
    no_reason.reason = None;
    no_reason.metadata.clear();
    let outcome = subject.at("ok").refund("r", &no_reason).await.unwrap();
    assert!(outcome.is_ok(), "{}: {outcome:?}", subject.name());
    let sent: serde_json::Value =
        serde_json::from_str(&subject.provider.requests().pop().unwrap().body).unwrap();
    assert_eq!(
        (&sent["reason"], &sent["metadata"]),
        (&json!(null), &json!({})),
        "{}",
        subject.name()
    );

    let outcome = subject
        .at("ok")
        .refund("r", &refund_of("", "1.00", 6))
        .await;
    refuses_empty_reference(subject, outcome);
}

/// `refund-status`: each state, an unknown one, and an empty reference.
async fn reads_refund_states(subject: &Subject) {
    let adapter = subject.at("ok");
    for (reference, state) in [
        ("pending", RefundState::Pending),
        ("succeeded", RefundState::Succeeded),
        ("failed", RefundState::Failed),
    ] {
        let seen = adapter.refund_status("r", reference).await.unwrap();
        assert_eq!(seen.ok(), Some(state), "{}: {reference}", subject.name());
        let sent = subject.provider.requests().pop().expect("a request");
        assert_eq!(
            (sent.method.as_str(), sent.path.as_str()),
            ("GET", &*format!("/ok/refunds/{reference}"))
        );
    }
    let outcome = adapter.refund_status("r", "done").await;
    assert_refused(
        subject,
        outcome,
        "unavailable",
        Message::Is(r#"malformed provider response: unknown refund status "done""#),
    );
    let outcome = adapter.refund_status("r", "").await;
    refuses_empty_reference(subject, outcome);
}

/// A refund the provider refuses maps to the same `provider-error` cases as
/// a payment it refuses.
async fn maps_refund_refusals(subject: &Subject) {
    let answered_alike = [
        "declined",
        "card-error",
        "rejected",
        "not-found",
        "unauthorized",
        "rate-limited",
        "down",
        "not-json",
        "not-an-object",
    ];
    for refusal in REFUSALS.iter().filter(|r| answered_alike.contains(&r.case)) {
        let outcome = subject
            .at(refusal.case)
            .refund("r", &refund_of("pl_1", "2.50", 7))
            .await;
        assert_refused(subject, outcome, refusal.error, refusal.message);
    }
}

/// The refund the refund cases ask for, of the payment `reference`.
fn refund_of(reference: &str, price: &str, refund_id: u64) -> RefundRequest {
    RefundRequest {
        refund_id,
        payment_id: 42,
        merchant_id: 7,
        payment_reference: reference.into(),
        price: price.into(),
        currency: "EUR".into(),
        reason: Some(RefundReason::Duplicate),
        idempotency_key: format!("paygate-refund-{refund_id}"),
        metadata: vec![("cart".into(), "c-1".into())],
    }
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

    // Refunds of a paid payment, by the sandbox's test prices (API.md,
    // "Refunds"): any other price succeeds at once, one ending in 42 is
    // confirmed later, one ending in 13 is refused.
    let reference = open_and_click(&adapter, 73, "pay").await;
    for (refund_id, price, state) in [
        (1, "2.50", RefundState::Succeeded),
        (2, "0.42", RefundState::Pending),
    ] {
        let refund = adapter
            .refund("r", &refund_of(&reference, price, refund_id))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{}: {price}: {e:?}", subject.name()));
        assert_eq!(refund.state, state, "{}: {price}", subject.name());
        let seen = adapter.refund_status("r", &refund.reference).await.unwrap();
        assert_eq!(seen.ok(), Some(state), "{}: {price}", subject.name());
    }
    let outcome = adapter.refund("r", &refund_of(&reference, "0.13", 3)).await;
    assert_refused(
        subject,
        outcome,
        "declined",
        Message::Is("refund declined (test price ending in 13)"),
    );
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
                match case.as_str() {
                    "ok" => answer(201, LINK),
                    "slow" => {
                        tokio::time::sleep(SLOW_ANSWER).await;
                        answer(201, LINK)
                    }
                    "long-error" => answer(422, &json!({"error": "é".repeat(400)}).to_string()),
                    "numeric-id" => answer(
                        201,
                        r#"{"id":42,"payment_url":"https://sandbox.test/pay/42"}"#,
                    ),
                    case => refused(case),
                }
            }),
        )
        .route(
            "/{case}/payment-links/{reference}",
            get(|Path((_, reference)): Path<(String, String)>| async move {
                axum::Json(json!({"id": reference, "status": reference}))
            }),
        )
        .route(
            "/{case}/payment-links/{reference}/refunds",
            post(|Path((case, _)): Path<(String, String)>| async move {
                match case.as_str() {
                    "ok" => answer(201, REFUND),
                    case => refused(case),
                }
            }),
        )
        .route(
            "/{case}/refunds/{reference}",
            get(|Path((_, reference)): Path<(String, String)>| async move {
                axum::Json(json!({"id": reference, "object": "refund", "status": reference}))
            }),
        )
}

/// A JSON answer of the fake provider.
fn answer(status: u16, body: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body.to_owned(),
    )
        .into_response()
}

/// The answer of the [`REFUSALS`] case `case`.
fn refused(case: &str) -> Response {
    let refusal = REFUSALS
        .iter()
        .find(|r| r.case == case)
        .unwrap_or_else(|| panic!("no case {case}"));
    answer(refusal.status, refusal.body)
}

/// The refund the fake provider takes.
const REFUND: &str = r#"{"id":"rf_1","object":"refund","status":"pending","payment_link":"pl_1"}"#;

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

/// Checks that a call with an empty provider reference was refused: the
/// reference would address the whole collection.
fn refuses_empty_reference<T: std::fmt::Debug>(
    subject: &Subject,
    outcome: Result<Result<T, ProviderError>, PluginError>,
) {
    let message = Message::Is("empty provider reference");
    assert_refused(subject, outcome, "invalid-request", message);
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
