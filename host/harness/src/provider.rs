//! The provider-adapter suite: success, decline, provider 5xx, slow
//! provider, malformed provider response and missing config, each answered
//! by a built-in fixture; for an adapter that gives money back (WIT 0.2.0)
//! the refund cases too; then the user's fixtures.
//!
//! The built-in success body carries the field names of the common
//! checkout APIs (`id`, `url`, `payment_url`); an adapter for a provider
//! that answers otherwise needs a recorded success exchange as a fixture.

use serde_json::json;

use crate::case::{CaseResult, Label, Meter, Subject, Verdict, mark_replacements};
use crate::fixtures::{Fixture, FixtureResponse, RequestMatch, excerpt};
use crate::mock::Received;
use crate::outcome::Outcome;
use paygate_runtime::bindings::{PaymentRequest, RefundReason, RefundRequest};

/// How long past the plugin's HTTP timeout the slow provider answers.
const SLOW_BY_MS: u64 = 1000;

/// The payment every case opens.
pub fn sample_payment() -> PaymentRequest {
    PaymentRequest {
        payment_id: 42,
        merchant_id: 7,
        order_id: 1042,
        amount: "1".into(),
        price: "10.00".into(),
        currency: "EUR".into(),
        idempotency_key: "harness-idem-42".into(),
        return_url: Some("https://shop.example/return".into()),
        cancel_url: Some("https://shop.example/cancel".into()),
        metadata: Vec::new(),
    }
}

/// The refund the refund cases ask for: part of [`sample_payment`].
pub fn sample_refund() -> RefundRequest {
    RefundRequest {
        refund_id: 9,
        payment_id: 42,
        merchant_id: 7,
        payment_reference: "harness_session_1".into(),
        price: "2.50".into(),
        currency: "EUR".into(),
        reason: Some(RefundReason::RequestedByCustomer),
        idempotency_key: "paygate-refund-9".into(),
        metadata: Vec::new(),
    }
}

/// Which export a case calls.
#[derive(Clone, Debug)]
enum Call {
    CreatePayment,
    PaymentStatus(String),
    Refund,
    RefundStatus(String),
}

/// Whether the plugin must (or must not) reach the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    Must,
    MustNot,
    Either,
}

/// One case, built in or from a fixture.
struct ProviderCase {
    label: Label,
    call: Call,
    response: Option<FixtureResponse>,
    request: Option<RequestMatch>,
    /// Load without settings or secrets.
    bare: bool,
    expect: String,
    reach: Reach,
}

impl ProviderCase {
    fn built_in(name: &str, about: String, response: FixtureResponse, expect: &str) -> Self {
        Self {
            label: Label::built_in(name, about),
            call: Call::CreatePayment,
            response: Some(response),
            request: None,
            bare: false,
            expect: expect.into(),
            reach: Reach::Must,
        }
    }

    /// A case from a user fixture, or why the fixture is unusable.
    fn from_fixture(fixture: &Fixture) -> Result<Self, String> {
        let call = match (fixture.call.as_deref(), &fixture.reference) {
            (None | Some("create-payment"), _) => Call::CreatePayment,
            (Some("payment-status"), Some(reference)) => Call::PaymentStatus(reference.clone()),
            (Some("payment-status"), None) => {
                return Err("a payment-status fixture needs `reference`".into());
            }
            (Some("refund"), _) => Call::Refund,
            (Some("refund-status"), Some(reference)) => Call::RefundStatus(reference.clone()),
            (Some("refund-status"), None) => {
                return Err("a refund-status fixture needs `reference`".into());
            }
            (Some(other), _) => {
                return Err(format!(
                    "unknown call {other:?}: a provider adapter has create-payment, payment-status, \
                     and (WIT 0.2.0) refund and refund-status"
                ));
            }
        };
        let Some(response) = fixture.response.clone() else {
            return Err(
                "a provider-adapter fixture needs a `response` for the mock provider".into(),
            );
        };
        Ok(Self {
            label: Label::fixture(fixture),
            call,
            response: Some(response),
            request: fixture.request.clone(),
            bare: false,
            expect: fixture.expect.clone(),
            reach: Reach::Either,
        })
    }
}

/// The built-in cases; the slow one is timed against `http_timeout_ms`.
fn built_ins(http_timeout_ms: u32) -> Vec<ProviderCase> {
    let success = json!({
        "id": "harness_session_1",
        "object": "checkout.session",
        "status": "open",
        "url": "https://pay.example/harness_session_1",
        "payment_url": "https://pay.example/harness_session_1",
    });
    let delay_ms = u64::from(http_timeout_ms) + SLOW_BY_MS;
    let slow = FixtureResponse {
        delay_ms,
        ..FixtureResponse::json(200, success.clone())
    };
    let declined =
        json!({ "error": { "type": "card_error", "message": "Your card was declined." } });
    let html = FixtureResponse {
        body: json!("<html><body>Welcome to nginx!</body></html>"),
        headers: [("content-type".to_owned(), "text/html".to_owned())].into(),
        ..FixtureResponse::json(200, json!(null))
    };
    let mut cases = vec![
        ProviderCase::built_in(
            "success",
            "the provider opens the payment: ok with a reference and a payment URL".into(),
            FixtureResponse::json(200, success),
            "ok",
        ),
        ProviderCase::built_in(
            "decline",
            "HTTP 402 card_error: declined".into(),
            FixtureResponse::json(402, declined),
            "declined",
        ),
        ProviderCase::built_in(
            "provider-5xx",
            "HTTP 503: unavailable (worth retrying)".into(),
            FixtureResponse::json(
                503,
                json!({ "error": { "message": "service unavailable" } }),
            ),
            "unavailable",
        ),
        ProviderCase::built_in(
            "slow-provider",
            format!(
                "answers after {delay_ms} ms, past the {http_timeout_ms} ms HTTP timeout: unavailable"
            ),
            slow,
            "unavailable",
        ),
        ProviderCase::built_in(
            "malformed-response",
            "HTTP 200 with an HTML body: unavailable".into(),
            html,
            "unavailable",
        ),
    ];
    cases.push(ProviderCase {
        bare: true,
        reach: Reach::MustNot,
        response: None,
        ..ProviderCase::built_in(
            "missing-config",
            "no settings and no secrets: misconfigured, before any request".into(),
            FixtureResponse::json(200, json!(null)),
            "misconfigured",
        )
    });
    cases
}

/// The refund cases, for an adapter that exports `refund`. The success body
/// names the refund (`id`, `status`) and the payment's PaymentIntent
/// (`payment_intent`), so an adapter that looks the payment up first (as
/// Stripe's must) finds what it needs in the same answer.
fn refund_built_ins() -> Vec<ProviderCase> {
    let refund = |status: &str| {
        json!({
            "id": "harness_refund_1",
            "object": "refund",
            "status": status,
            "payment_intent": "pi_harness_1",
            "amount": 250,
            "currency": "eur",
        })
    };
    let declined =
        json!({ "error": { "type": "card_error", "message": "The refund was declined." } });
    let refund_case = |name: &str, about: &str, response, expect: &str| ProviderCase {
        call: Call::Refund,
        ..ProviderCase::built_in(name, about.to_owned(), response, expect)
    };
    vec![
        refund_case(
            "refund-success",
            "the provider gives 2.50 EUR back at once: succeeded, with the refund's reference",
            FixtureResponse::json(200, refund("succeeded")),
            "succeeded",
        ),
        refund_case(
            "refund-pending",
            "the provider confirms later: pending, with the refund's reference",
            FixtureResponse::json(200, refund("pending")),
            "pending",
        ),
        refund_case(
            "refund-declined",
            "HTTP 402 card_error: declined",
            FixtureResponse::json(402, declined),
            "declined",
        ),
        refund_case(
            "refund-5xx",
            "HTTP 503: unavailable (asked again later under the same key)",
            FixtureResponse::json(
                503,
                json!({ "error": { "message": "service unavailable" } }),
            ),
            "unavailable",
        ),
        ProviderCase {
            call: Call::RefundStatus("harness_refund_1".into()),
            ..ProviderCase::built_in(
                "refund-status",
                "the refund's state by its reference: succeeded".into(),
                FixtureResponse::json(200, refund("succeeded")),
                "succeeded",
            )
        },
    ]
}

/// Runs the built-in cases, then one case per fixture.
pub async fn run(subject: &Subject<'_>, fixtures: &[Fixture]) -> Vec<CaseResult> {
    let mut results = Vec::new();
    let mut replaced = Vec::new();
    for case in built_ins(subject.host.http_timeout_ms()) {
        if case.label.replaced_by(fixtures) {
            replaced.push(case.label.name);
            continue;
        }
        results.push(run_case(subject, &case).await);
    }
    for case in refund_built_ins() {
        if case.label.replaced_by(fixtures) {
            replaced.push(case.label.name);
        } else if let Some(verdict) = subject.not_run(&case.label) {
            results.push(case.label.without_calls(verdict));
        } else if subject.plugin.refunds() {
            results.push(run_case(subject, &case).await);
        } else {
            let why = "the adapter has no refund export (WIT 0.1.0)".to_owned();
            results.push(case.label.without_calls(Verdict::Skip(why)));
        }
    }
    for fixture in fixtures {
        match ProviderCase::from_fixture(fixture) {
            Ok(case) => results.push(run_case(subject, &case).await),
            Err(why) => results.push(Label::fixture(fixture).without_calls(Verdict::Fail(why))),
        }
    }
    mark_replacements(&mut results, &replaced);
    results
}

async fn run_case(subject: &Subject<'_>, case: &ProviderCase) -> CaseResult {
    if let Some(verdict) = subject.not_run(&case.label) {
        return case.label.without_calls(verdict);
    }
    let mut slot = None;
    let plugin = match subject.plugin_for(case.bare, &mut slot) {
        Ok(plugin) => plugin,
        Err(verdict) => return case.label.without_calls(verdict),
    };
    let mock = &subject.host.provider;
    mock.answer_with(case.response.clone());
    let meter = Meter::start(plugin);
    let outcome = match &case.call {
        Call::CreatePayment => {
            Outcome::session(plugin.create_payment("harness", &sample_payment()).await)
        }
        Call::PaymentStatus(reference) => {
            Outcome::state(plugin.payment_status("harness", reference).await)
        }
        Call::Refund => Outcome::refund(plugin.refund("harness", &sample_refund()).await),
        Call::RefundStatus(reference) => {
            Outcome::refund_state(plugin.refund_status("harness", reference).await)
        }
    };
    let measured = meter.stop();
    let verdict = judge(case, &outcome, &mock.received(), &mock.url());
    case.label.result(verdict, measured)
}

/// What the plugin sent and what the mock provider answered, for a failed
/// case: the integrator sees the exchange their code got wrong.
fn exchange(case: &ProviderCase, received: &[Received]) -> String {
    let sent = match received {
        [] => "; the plugin sent no request".to_owned(),
        [one] => format!("; the plugin sent {} {}", one.method, one.path),
        [first, ..] => format!(
            "; the plugin sent {} requests, the first {} {}",
            received.len(),
            first.method,
            first.path
        ),
    };
    let answered = match (&case.response, received.is_empty()) {
        (Some(response), false) => {
            let (body, _) = response.body_bytes();
            format!(
                ", and the mock provider answered HTTP {}{} {}",
                response.status,
                if response.delay_ms > 0 {
                    format!(" after {} ms", response.delay_ms)
                } else {
                    String::new()
                },
                excerpt(&String::from_utf8_lossy(&body))
            )
        }
        _ => String::new(),
    };
    sent + &answered
}

/// Compares what the plugin did with what the case expects.
fn judge(case: &ProviderCase, outcome: &Outcome, received: &[Received], url: &str) -> Verdict {
    if !outcome.matches(&case.expect) {
        return Verdict::Fail(format!(
            "expected {}, got {}{}",
            case.expect,
            outcome.summary(),
            exchange(case, received)
        ));
    }
    if let Some(why) = case
        .request
        .as_ref()
        .and_then(|m| received.iter().find_map(|r| m.mismatch(r)))
    {
        return Verdict::Fail(why);
    }
    match case.reach {
        Reach::Must if received.is_empty() => {
            return Verdict::Fail(format!(
                "the plugin answered without calling the provider; it must send its requests to the `base-url` setting ({url})"
            ));
        }
        Reach::MustNot if !received.is_empty() => {
            return Verdict::Fail(format!(
                "the plugin sent {} request(s) without its settings; it must answer misconfigured first",
                received.len()
            ));
        }
        _ => {}
    }
    let answer = &outcome.value["ok"];
    let empty = |field: &str| answer[field].as_str().is_some_and(str::is_empty);
    match case.call {
        Call::CreatePayment if outcome.ok && (empty("reference") || empty("payment-url")) => {
            return Verdict::Fail(format!(
                "a session needs a reference and a payment URL, got {answer}"
            ));
        }
        // The host finds a refund's webhooks and asks its status by it.
        Call::Refund if outcome.ok && empty("reference") => {
            return Verdict::Fail(format!(
                "a refund needs the provider's reference, got {answer}"
            ));
        }
        _ => {}
    }
    Verdict::Pass(outcome.summary())
}
