//! The webhook-verifier suite: valid, tampered, expired, malformed
//! signature, malformed body and missing secret.
//!
//! The harness can only sign what it knows how to sign, so the built-in
//! cases exist for the two schemes paygate ships ([`Scheme`]); the scheme
//! is named with `--scheme` or detected by signing a valid webhook each way
//! until the plugin accepts one. A plugin with a scheme of its own is
//! tested through fixtures: recorded, already signed webhooks with the
//! verdict each must get (see [`crate::fixtures`]).

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::case::{CaseResult, Label, Meter, Subject, Verdict, mark_replacements};
use crate::fixtures::Fixture;
use crate::outcome::Outcome;
use paygate_runtime::bindings::WebhookRequest;

/// The secret key a built-in scheme signs with.
pub const SECRET_KEY: &str = "webhook-secret";

/// How old the expired case's signature is: far past any sane tolerance.
const EXPIRED_BY_SECONDS: u64 = 24 * 3600;

/// A signature scheme the harness can sign webhooks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// paygate's internal scheme: hex HMAC-SHA256 of the raw body in
    /// `x-internal-signature`; body `{"payment_id": 42, "status": "finished"}`.
    InternalHmac,
    /// Stripe's `stripe-signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`
    /// over a `checkout.session.completed` event.
    Stripe,
}

impl Scheme {
    /// Every built-in scheme, in the order detection tries them.
    pub const ALL: [Scheme; 2] = [Scheme::InternalHmac, Scheme::Stripe];

    /// The name `--scheme` takes.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::InternalHmac => "internal-hmac",
            Scheme::Stripe => "stripe",
        }
    }

    /// A body the provider would send about paygate payment 42, finished.
    fn valid_body(self) -> &'static str {
        match self {
            Scheme::InternalHmac => r#"{"payment_id": 42, "status": "finished"}"#,
            Scheme::Stripe => {
                r#"{"id":"evt_harness_1","object":"event","type":"checkout.session.completed","data":{"object":{"id":"cs_harness_1","object":"checkout.session","client_reference_id":"42","payment_status":"paid"}}}"#
            }
        }
    }

    /// How the verifier names the payment of [`Self::valid_body`]: Stripe's
    /// by the Checkout Session, never by the client reference anyone can set.
    fn valid_payment(self) -> Value {
        match self {
            Scheme::InternalHmac => json!({ "payment-id": 42 }),
            Scheme::Stripe => json!({ "provider-reference": "cs_harness_1" }),
        }
    }

    /// The header carrying the signature.
    fn header(self) -> &'static str {
        match self {
            Scheme::InternalHmac => "x-internal-signature",
            Scheme::Stripe => "stripe-signature",
        }
    }

    /// Whether signatures carry a time that can expire.
    fn expires(self) -> bool {
        self == Scheme::Stripe
    }

    /// The signature header of `body` signed at `unix_seconds`.
    pub(crate) fn sign(self, secret: &str, body: &[u8], unix_seconds: u64) -> (String, String) {
        let value = match self {
            Scheme::InternalHmac => hmac_hex(secret, &[body]),
            Scheme::Stripe => {
                let t = unix_seconds.to_string();
                let mac = hmac_hex(secret, &[t.as_bytes(), b".", body]);
                format!("t={t},v1={mac}")
            }
        };
        (self.header().to_owned(), value)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheme {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown scheme {s:?}: expected internal-hmac or stripe"))
    }
}

fn hmac_hex(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// One verifier case: a webhook and the verdict it must get.
struct VerifierCase {
    label: Label,
    request: WebhookRequest,
    /// Set the clock here for the call (a recorded webhook's time).
    now_ms: Option<u64>,
    bare: bool,
    expect: String,
    /// A valid webhook must yield this many events.
    events: Option<usize>,
    /// The first event must have these fields (built-in valid case).
    first_event: Option<Value>,
}

/// Runs the built-in cases of `scheme` (or of the detected one), then one
/// case per fixture.
pub async fn run(
    subject: &Subject<'_>,
    fixtures: &[Fixture],
    scheme: Option<Scheme>,
) -> Vec<CaseResult> {
    let mut results = Vec::new();
    let scheme = match scheme {
        Some(scheme) => Some(scheme),
        None => detect(subject).await,
    };
    let mut replaced = Vec::new();
    match scheme {
        Some(scheme) => {
            for case in built_ins(subject, scheme) {
                if case.label.replaced_by(fixtures) {
                    replaced.push(case.label.name);
                    continue;
                }
                results.push(run_case(subject, &case).await);
            }
            if !scheme.expires() {
                let label = Label::built_in(
                    "expired",
                    "a correct signature from long ago: signature-expired",
                );
                let why = format!("the {scheme} scheme signs no time, so nothing expires");
                results.push(label.without_calls(Verdict::Skip(why)));
            }
        }
        None => {
            let why = "no built-in scheme (internal-hmac, stripe) got a correctly signed webhook accepted; name one with --scheme, or describe the plugin's own scheme with fixtures (--fixtures)";
            let verdict = if fixtures.is_empty() {
                Verdict::Fail(why.into())
            } else {
                Verdict::Skip(why.into())
            };
            let label =
                Label::built_in("scheme", "a built-in signature scheme the verifier accepts");
            results.push(label.without_calls(verdict));
        }
    }
    for fixture in fixtures {
        match from_fixture(fixture) {
            Ok(case) => results.push(run_case(subject, &case).await),
            Err(why) => results.push(Label::fixture(fixture).without_calls(Verdict::Fail(why))),
        }
    }
    mark_replacements(&mut results, &replaced);
    results
}

/// The first built-in scheme whose valid webhook the plugin accepts.
async fn detect(subject: &Subject<'_>) -> Option<Scheme> {
    for scheme in Scheme::ALL {
        let case = &built_ins(subject, scheme)[0];
        let outcome = Outcome::events(subject.plugin.verify("harness", &case.request).await);
        if outcome.ok
            && outcome.value["ok"]
                .as_array()
                .is_some_and(|e| !e.is_empty())
        {
            return Some(scheme);
        }
    }
    None
}

/// The cases of `scheme`, the valid one first; `expired` only for schemes
/// that sign a time.
fn built_ins(subject: &Subject<'_>, scheme: Scheme) -> Vec<VerifierCase> {
    let secret = subject.host.secret(SECRET_KEY).unwrap_or_default();
    let now = subject.host.services.clock.now_ms() / 1000;
    let body = scheme.valid_body().as_bytes();
    let signed = |body: &[u8], at: u64| vec![scheme.sign(secret, body, at)];
    let case = |name: &str, about: &str, headers, body: &[u8], expect: &str| VerifierCase {
        label: Label {
            source: format!("built-in ({scheme})"),
            ..Label::built_in(name, about)
        },
        request: WebhookRequest {
            path: "/api/v1/payments/webhook".into(),
            headers,
            body: body.to_vec(),
        },
        now_ms: None,
        bare: false,
        expect: expect.into(),
        events: None,
        first_event: None,
    };
    let tampered = String::from_utf8_lossy(body).replace("42", "43");
    let junk = b"this is not a webhook body";
    let mut cases = vec![
        VerifierCase {
            events: Some(1),
            first_event: Some(json!({ "payment": scheme.valid_payment(), "status": "finished" })),
            ..case(
                "valid",
                "a correctly signed webhook about payment 42: ok, one event",
                signed(body, now),
                body,
                "ok",
            )
        },
        case(
            "tampered",
            "the body changed after signing: invalid-signature",
            signed(body, now),
            tampered.as_bytes(),
            "invalid-signature",
        ),
        case(
            "malformed-signature",
            "a signature header that does not parse: invalid-signature",
            vec![(scheme.header().into(), "not a signature".into())],
            body,
            "invalid-signature",
        ),
        case(
            "malformed-body",
            "a correctly signed body that is not the provider's: malformed",
            signed(junk, now),
            junk,
            "malformed",
        ),
        VerifierCase {
            bare: true,
            ..case(
                "missing-secret",
                "no secret configured: misconfigured",
                signed(body, now),
                body,
                "misconfigured",
            )
        },
    ];
    if scheme.expires() {
        let then = now - EXPIRED_BY_SECONDS;
        cases.insert(
            2,
            case(
                "expired",
                "a correct signature from a day ago: signature-expired",
                signed(body, then),
                body,
                "signature-expired",
            ),
        );
    }
    cases
}

fn from_fixture(fixture: &Fixture) -> Result<VerifierCase, String> {
    let Some(webhook) = &fixture.webhook else {
        return Err("a webhook-verifier fixture needs a `webhook` (headers and body)".into());
    };
    Ok(VerifierCase {
        label: Label::fixture(fixture),
        request: webhook.request(),
        now_ms: fixture.now_ms,
        bare: false,
        expect: fixture.expect.clone(),
        events: fixture.events,
        first_event: None,
    })
}

async fn run_case(subject: &Subject<'_>, case: &VerifierCase) -> CaseResult {
    if let Some(verdict) = subject.not_run(&case.label) {
        return case.label.without_calls(verdict);
    }
    let mut slot = None;
    let plugin = match subject.plugin_for(case.bare, &mut slot) {
        Ok(plugin) => plugin,
        Err(verdict) => return case.label.without_calls(verdict),
    };
    let clock = &subject.host.services.clock;
    let restore = clock.now_ms();
    if let Some(now) = case.now_ms {
        clock.set_ms(now);
    }
    let meter = Meter::start(plugin);
    let outcome = Outcome::events(plugin.verify("harness", &case.request).await);
    let measured = meter.stop();
    clock.set_ms(restore);
    case.label.result(judge(case, &outcome), measured)
}

fn judge(case: &VerifierCase, outcome: &Outcome) -> Verdict {
    if !outcome.matches(&case.expect) {
        return Verdict::Fail(format!(
            "expected {}, got {}",
            case.expect,
            outcome.summary()
        ));
    }
    let events = outcome.value["ok"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if let Some(wanted) = case.events.filter(|n| outcome.ok && events.len() != *n) {
        return Verdict::Fail(format!(
            "expected {wanted} event(s), got {}",
            outcome.summary()
        ));
    }
    if let (Some(wanted), Some(first)) = (&case.first_event, events.first()) {
        let differs = wanted
            .as_object()
            .into_iter()
            .flatten()
            .any(|(field, value)| first.get(field) != Some(value));
        if differs {
            return Verdict::Fail(format!("expected an event with {wanted}, got {first}"));
        }
    }
    Verdict::Pass(outcome.summary())
}
