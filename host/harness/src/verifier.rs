//! The webhook-verifier suite: valid, tampered, expired, malformed
//! signature, malformed body and missing secret.
//!
//! The harness can only sign what it knows how to sign, so the built-in
//! cases exist for the schemes it knows ([`Scheme`]: paygate's internal
//! one, Stripe's and Adyen's); the scheme is named with `--scheme` (or by
//! `--profile`) or detected by signing a valid webhook each way until the
//! plugin accepts one. A plugin with a scheme of its own is
//! tested through fixtures: recorded, already signed webhooks with the
//! verdict each must get (see [`crate::fixtures`]).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::case::{CaseResult, Label, Meter, Subject, Verdict, mark_replacements};
use crate::fixtures::Fixture;
use crate::outcome::Outcome;
use paygate_runtime::bindings::WebhookRequest;

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
    /// Adyen's standard webhooks: each notification item carries, in
    /// `additionalData.hmacSignature`, the base64 HMAC-SHA256 of eight of
    /// its fields joined by `:`, keyed by the hex key of the secret
    /// `hmac-key`; over an `AUTHORISATION` item.
    Adyen,
}

impl Scheme {
    /// Every built-in scheme, in the order detection tries them.
    pub const ALL: [Scheme; 3] = [Scheme::InternalHmac, Scheme::Stripe, Scheme::Adyen];

    /// The name `--scheme` takes.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::InternalHmac => "internal-hmac",
            Scheme::Stripe => "stripe",
            Scheme::Adyen => "adyen",
        }
    }

    /// The secret the scheme signs with, as the shipped verifiers name it
    /// (the harness gives each a test value, [`crate::DEFAULT_SECRETS`]).
    pub fn secret_name(self) -> &'static str {
        match self {
            Scheme::InternalHmac | Scheme::Stripe => "webhook-secret",
            Scheme::Adyen => "hmac-key",
        }
    }

    /// A body the provider would send about paygate payment 42, finished.
    fn valid_body(self) -> &'static str {
        match self {
            Scheme::InternalHmac => r#"{"payment_id": 42, "status": "finished"}"#,
            Scheme::Stripe => {
                r#"{"id":"evt_harness_1","object":"event","type":"checkout.session.completed","data":{"object":{"id":"cs_harness_1","object":"checkout.session","client_reference_id":"42","payment_status":"paid"}}}"#
            }
            Scheme::Adyen => {
                r#"{"live":"false","notificationItems":[{"NotificationRequestItem":{"additionalData":{},"amount":{"currency":"EUR","value":1000},"eventCode":"AUTHORISATION","eventDate":"2026-12-03T10:00:00+01:00","merchantAccountCode":"HarnessMerchant","merchantReference":"42","paymentMethod":"ideal","pspReference":"HARNESSPSP000042","reason":"","success":"true"}}]}"#
            }
        }
    }

    /// How the verifier names the payment of [`Self::valid_body`]: Stripe's
    /// by the Checkout Session, never by the client reference anyone can set.
    fn valid_payment(self) -> Value {
        match self {
            Scheme::InternalHmac => json!({ "payment-id": 42 }),
            Scheme::Stripe => json!({ "provider-reference": "cs_harness_1" }),
            Scheme::Adyen => json!({ "provider-reference": "HARNESSPSP000042" }),
        }
    }

    /// The header carrying the signature; Adyen's is in the body.
    fn header(self) -> Option<&'static str> {
        match self {
            Scheme::InternalHmac => Some("x-internal-signature"),
            Scheme::Stripe => Some("stripe-signature"),
            Scheme::Adyen => None,
        }
    }

    /// `body` with a signature that does not parse.
    fn badly_signed(self, body: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
        match self.header() {
            Some(header) => (
                vec![(header.into(), "not a signature".into())],
                body.to_vec(),
            ),
            None => (Vec::new(), adyen_signed(body, |_| "not a signature".into())),
        }
    }

    /// Whether signatures carry a time that can expire.
    fn expires(self) -> bool {
        self == Scheme::Stripe
    }

    /// `body` signed with `secret` at `unix_seconds`: the headers to send
    /// with it, and the body itself (Adyen's carries its signatures; a body
    /// that is not an Adyen notification stays as it is, unsigned).
    pub(crate) fn sign(
        self,
        secret: &str,
        body: &[u8],
        unix_seconds: u64,
    ) -> (Vec<(String, String)>, Vec<u8>) {
        let header = |value| vec![(self.header().unwrap_or_default().to_owned(), value)];
        match self {
            Scheme::InternalHmac => (header(hmac_hex(secret, &[body])), body.to_vec()),
            Scheme::Stripe => {
                let t = unix_seconds.to_string();
                let mac = hmac_hex(secret, &[t.as_bytes(), b".", body]);
                (header(format!("t={t},v1={mac}")), body.to_vec())
            }
            Scheme::Adyen => {
                // The key is shown in hex by Adyen; a key that is not hex
                // (a replay's deliberately wrong one) signs as its bytes.
                let key = hex::decode(secret).unwrap_or_else(|_| secret.as_bytes().to_vec());
                let sign = |item: &Value| {
                    let mut mac =
                        Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any size");
                    mac.update(adyen_signing_string(item).as_bytes());
                    BASE64.encode(mac.finalize().into_bytes())
                };
                (Vec::new(), adyen_signed(body, sign))
            }
        }
    }
}

/// What Adyen signs of a notification item: eight fields joined by `:`,
/// each as written, an absent one empty.
fn adyen_signing_string(item: &Value) -> String {
    let text = |value: &Value| match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    [
        &item["pspReference"],
        &item["originalReference"],
        &item["merchantAccountCode"],
        &item["merchantReference"],
        &item["amount"]["value"],
        &item["amount"]["currency"],
        &item["eventCode"],
        &item["success"],
    ]
    .map(text)
    .join(":")
}

/// `body` with each notification item's `additionalData.hmacSignature` set
/// to `signature(item)`; a body that is not an Adyen notification as it is.
fn adyen_signed(body: &[u8], signature: impl Fn(&Value) -> String) -> Vec<u8> {
    let Ok(mut json) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    let Some(items) = json["notificationItems"].as_array_mut() else {
        return body.to_vec();
    };
    for entry in items {
        let item = &mut entry["NotificationRequestItem"];
        if !item.is_object() {
            continue;
        }
        let value = signature(item);
        item["additionalData"]["hmacSignature"] = Value::String(value);
    }
    json.to_string().into_bytes()
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
            .ok_or_else(|| format!("unknown scheme {s:?}: expected internal-hmac, stripe or adyen"))
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
            let why = "no built-in scheme (internal-hmac, stripe, adyen) got a correctly signed webhook accepted; name one with --scheme, or describe the plugin's own scheme with fixtures (--fixtures)";
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
        match from_fixture(subject, fixture) {
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
    let secret = subject
        .host
        .secret(scheme.secret_name())
        .unwrap_or_default();
    let now = subject.host.services.clock.now_ms() / 1000;
    let body = scheme.valid_body().as_bytes();
    let signed = |body: &[u8], at: u64| scheme.sign(secret, body, at);
    let case =
        |name: &str, about: &str, (headers, body): (Vec<_>, Vec<u8>), expect: &str| VerifierCase {
            label: Label {
                source: format!("built-in ({scheme})"),
                ..Label::built_in(name, about)
            },
            request: WebhookRequest {
                path: "/api/v1/payments/webhook".into(),
                headers,
                body,
            },
            now_ms: None,
            bare: false,
            expect: expect.into(),
            events: None,
            first_event: None,
        };
    let (valid_headers, valid_body) = signed(body, now);
    let tampered = String::from_utf8_lossy(&valid_body).replace("42", "43");
    let junk = b"this is not a webhook body";
    let mut cases = vec![
        VerifierCase {
            events: Some(1),
            first_event: Some(json!({ "payment": scheme.valid_payment(), "status": "finished" })),
            ..case(
                "valid",
                "a correctly signed webhook about payment 42: ok, one event",
                (valid_headers.clone(), valid_body.clone()),
                "ok",
            )
        },
        case(
            "tampered",
            "the body changed after signing: invalid-signature",
            (valid_headers, tampered.into_bytes()),
            "invalid-signature",
        ),
        case(
            "malformed-signature",
            "a signature that does not parse: invalid-signature",
            scheme.badly_signed(body),
            "invalid-signature",
        ),
        case(
            "malformed-body",
            "a correctly signed body that is not the provider's: malformed",
            signed(junk, now),
            "malformed",
        ),
        VerifierCase {
            bare: true,
            ..case(
                "missing-secret",
                "no secret configured: misconfigured",
                signed(body, now),
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
                "signature-expired",
            ),
        );
    }
    cases
}

fn from_fixture(subject: &Subject<'_>, fixture: &Fixture) -> Result<VerifierCase, String> {
    let Some(webhook) = &fixture.webhook else {
        return Err("a webhook-verifier fixture needs a `webhook` (headers and body)".into());
    };
    let mut request = webhook.request();
    if let Some(scheme) = &webhook.sign {
        let scheme: Scheme = scheme.parse()?;
        let secret = subject
            .host
            .secret(scheme.secret_name())
            .unwrap_or_default();
        let now_ms = (fixture.now_ms).unwrap_or_else(|| subject.host.services.clock.now_ms());
        let (headers, body) = scheme.sign(secret, &request.body, now_ms / 1000);
        request.headers.extend(headers);
        request.body = body;
    }
    Ok(VerifierCase {
        label: Label::fixture(fixture),
        request,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adyen_signs_each_item_over_its_eight_fields_with_the_hex_key() {
        let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let (headers, body) = Scheme::Adyen.sign(key, Scheme::Adyen.valid_body().as_bytes(), 0);
        assert!(headers.is_empty(), "Adyen signs in the body");
        let body: Value = serde_json::from_slice(&body).unwrap();
        let item = &body["notificationItems"][0]["NotificationRequestItem"];
        // originalReference is absent: an empty field between two colons.
        let signed = "HARNESSPSP000042::HarnessMerchant:42:1000:EUR:AUTHORISATION:true";
        assert_eq!(adyen_signing_string(item), signed);
        let mut mac = Hmac::<Sha256>::new_from_slice(&hex::decode(key).unwrap()).unwrap();
        mac.update(signed.as_bytes());
        let expected = BASE64.encode(mac.finalize().into_bytes());
        assert_eq!(item["additionalData"]["hmacSignature"], expected.as_str());
        // Everything else is as it was.
        assert_eq!(item["amount"]["value"], 1000);
        assert_eq!(body["live"], "false");
    }

    #[test]
    fn a_body_that_is_no_adyen_notification_is_left_unsigned() {
        for junk in [&b"not json"[..], br#"{"notificationItems": 3}"#] {
            assert_eq!(
                Scheme::Adyen.sign("00", junk, 0),
                (Vec::new(), junk.to_vec())
            );
        }
    }

    #[test]
    fn header_schemes_leave_the_body_alone() {
        let (headers, body) = Scheme::Stripe.sign("whsec_x", b"{}", 1_700_000_000);
        assert_eq!(body, b"{}");
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[0].0, "stripe-signature");
        assert!(headers[0].1.starts_with("t=1700000000,v1="));
    }
}
