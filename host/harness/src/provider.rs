//! The provider-adapter suite. Its built-in cases are grouped by what they
//! test (`case::group`): the contract (a payment opened, its state asked,
//! a missing setting), errors (a decline, a wrong request, refused
//! credentials, a failing provider, a body that is not the provider's),
//! limits (a slow provider, a rate limit) and, for an adapter that gives
//! money back (WIT 0.2.0), refunds. The provider's answers are those of a
//! profile (`--profile generic|stripe|adyen`, [`Profile`]); the outcome an
//! adapter must make of them is the same for every profile. Then the user's
//! fixtures, each of which replaces the built-in case of its name.

use serde_json::json;

use crate::case::{CaseResult, Label, Meter, Subject, Verdict, mark_replacements};
use crate::fixtures::{Fixture, FixtureResponse, RequestMatch, excerpt};
use crate::mock::Received;
use crate::outcome::Outcome;
use crate::profile::{PAYMENT_REFERENCE, Profile, REFUND_REFERENCE, Situation};
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

/// A built-in case: its name, the call, the provider's situation and the
/// outcome any adapter must make of it.
struct BuiltIn {
    name: &'static str,
    call: Call,
    situation: Situation,
    expect: &'static str,
}

/// The payment cases, whatever the profile (`missing-config`,
/// `slow-provider` and `malformed-response` need no provider's words).
fn payment_built_ins() -> Vec<BuiltIn> {
    let status = || Call::PaymentStatus(PAYMENT_REFERENCE.into());
    let case = |name, call, situation, expect| BuiltIn {
        name,
        call,
        situation,
        expect,
    };
    vec![
        case("success", Call::CreatePayment, Situation::Opened, "ok"),
        case(
            "decline",
            Call::CreatePayment,
            Situation::Declined,
            "declined",
        ),
        case(
            "invalid-request",
            Call::CreatePayment,
            Situation::Invalid,
            "invalid-request",
        ),
        case(
            "unauthorized",
            Call::CreatePayment,
            Situation::Unauthorized,
            "misconfigured",
        ),
        case(
            "provider-5xx",
            Call::CreatePayment,
            Situation::Failing,
            "unavailable",
        ),
        case(
            "rate-limited",
            Call::CreatePayment,
            Situation::RateLimited,
            "unavailable",
        ),
        case("payment-status", status(), Situation::Paid, "finished"),
        case(
            "payment-status-pending",
            status(),
            Situation::Unpaid,
            "pending",
        ),
    ]
}

/// The refund cases, for an adapter that exports `refund` (WIT 0.2.0).
fn refund_built_ins() -> Vec<BuiltIn> {
    let case = |name, call, situation, expect| BuiltIn {
        name,
        call,
        situation,
        expect,
    };
    let status = Call::RefundStatus(REFUND_REFERENCE.into());
    vec![
        case(
            "refund-success",
            Call::Refund,
            Situation::RefundDone,
            "succeeded",
        ),
        case(
            "refund-pending",
            Call::Refund,
            Situation::RefundTaken,
            "pending",
        ),
        case(
            "refund-declined",
            Call::Refund,
            Situation::RefundRefused,
            "declined",
        ),
        case(
            "refund-5xx",
            Call::Refund,
            Situation::Failing,
            "unavailable",
        ),
        case(
            "refund-status",
            status,
            Situation::RefundSettled,
            "succeeded",
        ),
    ]
}

/// What the case asks, in its description.
fn asked(call: &Call) -> String {
    match call {
        Call::CreatePayment => "opening the payment".into(),
        Call::PaymentStatus(r) => format!("asked about payment {r}"),
        Call::Refund => "a refund of 2.50 EUR".into(),
        Call::RefundStatus(r) => format!("asked about refund {r}"),
    }
}

/// A built-in case in `profile`'s words, or why the profile's provider has
/// no such answer.
fn in_profile(case: BuiltIn, profile: Profile) -> Result<ProviderCase, (Label, String)> {
    match profile.answer(case.situation) {
        Ok((response, shape)) => {
            let about = format!("{}: {shape}: {}", asked(&case.call), case.expect);
            let request = match case.situation {
                Situation::Opened => profile.opening_request(),
                _ => None,
            };
            Ok(ProviderCase {
                call: case.call,
                request,
                ..ProviderCase::built_in(case.name, about, response, case.expect)
            })
        }
        Err(why) => {
            let about = format!("{}: {}", asked(&case.call), case.expect);
            Err((
                Label::built_in(case.name, about),
                format!("profile {profile}: {why}"),
            ))
        }
    }
}

/// The cases that need no provider's words; the slow one is timed against
/// `http_timeout_ms`.
fn shapeless_built_ins(profile: Profile, http_timeout_ms: u32) -> Vec<ProviderCase> {
    let delay_ms = u64::from(http_timeout_ms) + SLOW_BY_MS;
    let opened = profile.answer(Situation::Opened).map(|(r, _)| r);
    let slow = FixtureResponse {
        delay_ms,
        ..opened.unwrap_or_else(|_| FixtureResponse::json(200, json!({})))
    };
    let html = FixtureResponse {
        body: json!("<html><body>Welcome to nginx!</body></html>"),
        headers: [("content-type".to_owned(), "text/html".to_owned())].into(),
        ..FixtureResponse::json(200, json!(null))
    };
    vec![
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
        ProviderCase {
            bare: true,
            reach: Reach::MustNot,
            response: None,
            ..ProviderCase::built_in(
                "missing-config",
                "no settings and no secrets: misconfigured, before any request".into(),
                FixtureResponse::json(200, json!(null)),
                "misconfigured",
            )
        },
    ]
}

/// Runs the built-in cases in `profile`'s words, then one case per fixture.
pub async fn run(subject: &Subject<'_>, fixtures: &[Fixture], profile: Profile) -> Vec<CaseResult> {
    let mut results = Vec::new();
    let mut replaced = Vec::new();
    let shaped = payment_built_ins()
        .into_iter()
        .map(|c| in_profile(c, profile));
    let shapeless = shapeless_built_ins(profile, subject.host.http_timeout_ms());
    for case in shaped.chain(shapeless.into_iter().map(Ok)) {
        let label = match &case {
            Ok(case) => &case.label,
            Err((label, _)) => label,
        };
        if label.replaced_by(fixtures) {
            replaced.push(label.name.clone());
            continue;
        }
        results.push(match case {
            Ok(case) => run_case(subject, &case).await,
            Err((label, why)) => not_in_profile(subject, &label, why),
        });
    }
    for case in refund_built_ins()
        .into_iter()
        .map(|c| in_profile(c, profile))
    {
        let label = match &case {
            Ok(case) => case.label.clone(),
            Err((label, _)) => label.clone(),
        };
        if label.replaced_by(fixtures) {
            replaced.push(label.name);
        } else if let Some(verdict) = subject.not_run(&label) {
            results.push(label.without_calls(verdict));
        } else if !subject.plugin.refunds() {
            let why = "the adapter has no refund export (WIT 0.1.0)".to_owned();
            results.push(label.without_calls(Verdict::Skip(why)));
        } else {
            results.push(match case {
                Ok(case) => run_case(subject, &case).await,
                Err((label, why)) => not_in_profile(subject, &label, why),
            });
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

/// A case the profile's provider has no answer for: skipped, saying why
/// (or listed).
fn not_in_profile(subject: &Subject<'_>, label: &Label, why: String) -> CaseResult {
    let verdict = subject.not_run(label).unwrap_or(Verdict::Skip(why));
    label.without_calls(verdict)
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
