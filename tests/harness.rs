//! The plugin test harness (`paygate plugin test` / `plugin run`) against
//! every shipped component and a misbehaving one, as a library and through
//! the built `paygate` binary.

use std::time::Duration;

use paygate_harness::{Harness, Profile, Report, RunInput, Scheme, Verdict, run_once};
use paygate_plugin_registry::PluginKind;
use serde_json::{Value, json};

use crate::helpers::{root, wasm};

async fn test_component(name: &str) -> Report {
    harness(name).run().await.expect("harness runs")
}

fn harness(name: &str) -> Harness {
    Harness::new(format!("{name}.wasm"), wasm(name))
}

fn names(report: &Report) -> Vec<&str> {
    report.cases.iter().map(|c| c.name.as_str()).collect()
}

/// The reason a case failed, or a panic naming what it did instead.
fn failure<'a>(report: &'a Report, case: &str) -> &'a str {
    match &report
        .case(case)
        .unwrap_or_else(|| panic!("no case {case}"))
        .verdict
    {
        Verdict::Fail(why) => why,
        other => panic!("{case} should fail, got {other:?}\n{}", report.text()),
    }
}

/// The Stripe adapter, against answers in Stripe's words.
fn stripe_adapter() -> Harness {
    harness("stripe_adapter").profile(Profile::Stripe)
}

#[tokio::test]
async fn harness_passes_the_stripe_adapter_and_measures_each_case() {
    let report = stripe_adapter().run().await.unwrap();
    report.assert_passed();
    assert_eq!(report.world, Some(PluginKind::ProviderAdapter));
    assert_eq!(report.profile, Some(Profile::Stripe));
    assert_eq!(
        names(&report),
        [
            "success",
            "decline",
            "invalid-request",
            "unauthorized",
            "provider-5xx",
            "rate-limited",
            "payment-status",
            "payment-status-pending",
            "slow-provider",
            "malformed-response",
            "missing-config",
            "refund-success",
            "refund-pending",
            "refund-declined",
            "refund-5xx",
            "refund-status",
        ]
    );
    assert_eq!(report.size_bytes, wasm("stripe_adapter").len());
    for case in &report.cases {
        let s = case.stats;
        assert_eq!(s.calls, 1, "{}", case.name);
        assert!(s.fuel > 0 && s.micros > 0, "{}: {s:?}", case.name);
        assert!(s.peak_memory_bytes >= 64 << 10, "{}: {s:?}", case.name);
    }
    // The slow provider is cut off by the plugin's HTTP timeout, not waited for.
    let slow = report.case("slow-provider").unwrap();
    assert!(
        slow.elapsed >= Duration::from_millis(450) && slow.elapsed < Duration::from_millis(1400),
        "{:?}",
        slow.elapsed
    );
}

#[tokio::test]
async fn each_profile_speaks_its_own_providers_words() {
    // Stripe's adapter is right about Stripe and wrong about Adyen, which
    // refuses a payment in an HTTP 200 body: the suite says so.
    let report = harness("stripe_adapter")
        .profile(Profile::Adyen)
        .run()
        .await
        .unwrap();
    assert!(
        failure(&report, "decline").starts_with("expected declined, got unavailable"),
        "{}",
        report.text()
    );
    assert!(
        report.text().contains("profile    adyen"),
        "{}",
        report.text()
    );
    // What Adyen has no answer for is skipped, saying why, never failed.
    for case in [
        "payment-status",
        "refund-success",
        "refund-declined",
        "refund-status",
    ] {
        let verdict = &report.case(case).unwrap().verdict;
        assert!(
            matches!(verdict, Verdict::Skip(why) if why.starts_with("profile adyen: Adyen")),
            "{case}: {verdict:?}"
        );
    }
    // Under Stripe's words the same adapter passes.
    stripe_adapter().run().await.unwrap().assert_passed();
}

#[tokio::test]
async fn harness_passes_the_adyen_plugins_in_adyens_words_and_fixtures() {
    let adapter = harness("adyen_adapter")
        .profile(Profile::Adyen)
        .config("merchant-account", "PaygateDemo")
        .config("payment-method", "ideal")
        .fixtures(root().join("plugins/adyen-adapter/fixtures"))
        .run()
        .await
        .unwrap();
    adapter.assert_passed();
    // The built-in success case checked the amount in minor units.
    assert!(adapter.case("success").unwrap().passed());
    // Only what Adyen cannot be asked is skipped; its recorded answers ran.
    let skipped: Vec<_> = adapter
        .cases
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::Skip(_)))
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        skipped,
        [
            "payment-status",
            "payment-status-pending",
            "refund-success",
            "refund-declined",
            "refund-status"
        ]
    );
    assert!(adapter.cases.len() >= 26, "{}", adapter.text());

    // The verifier: found to speak Adyen's scheme without being told, its
    // built-in cases signed that way, then its recorded webhooks.
    let verifier = harness("adyen_verifier")
        .fixtures(root().join("plugins/adyen-verifier/fixtures"))
        .run()
        .await
        .unwrap();
    verifier.assert_passed();
    let built_in = |c: &&paygate_harness::CaseResult| c.source == "built-in (adyen)";
    assert_eq!(
        verifier
            .cases
            .iter()
            .filter(built_in)
            .filter(|c| c.passed())
            .count(),
        5,
        "{}",
        verifier.text()
    );

    // A readable fixture: the harness signs its body in the scheme named.
    let dir = tempfile::tempdir().unwrap();
    let item = json!({
        "amount": { "currency": "EUR", "value": 2500 },
        "eventCode": "AUTHORISATION", "merchantAccountCode": "PaygateDemo",
        "merchantReference": "77", "pspReference": "READABLE00000077", "success": "false",
    });
    let body =
        json!({ "live": "false", "notificationItems": [{ "NotificationRequestItem": item }] });
    for (file, sign) in [("a.json", "adyen"), ("b.json", "paypal")] {
        let fixture = json!({
            "name": format!("signed by the harness: {sign}"),
            "webhook": { "body": body, "sign": sign },
            "expect": "ok",
            "events": 1,
        });
        std::fs::write(dir.path().join(file), fixture.to_string()).unwrap();
    }
    let signed = harness("adyen_verifier")
        .profile(Profile::Adyen)
        .fixtures(dir.path())
        .run()
        .await
        .unwrap();
    let readable = signed.case("signed by the harness: adyen").unwrap();
    assert!(readable.passed(), "{}", signed.text());
    assert!(
        failure(&signed, "signed by the harness: paypal").contains("unknown scheme \"paypal\""),
        "{}",
        signed.text()
    );
}

#[tokio::test]
async fn harness_passes_the_sandbox_adapter() {
    let report = test_component("sandbox_adapter").await;
    report.assert_passed();
    // Eleven payment cases and five refund cases: a WIT 0.2.0 adapter,
    // in the generic profile's words.
    assert_eq!(report.cases.len(), 16);
    assert!(report.cases.iter().all(|c| c.passed()), "{}", report.text());
}

#[tokio::test]
async fn harness_detects_each_shipped_verifier_scheme() {
    let stripe = test_component("stripe_verifier").await;
    stripe.assert_passed();
    assert_eq!(stripe.world, Some(PluginKind::WebhookVerifier));
    assert_eq!(
        names(&stripe),
        [
            "valid",
            "tampered",
            "expired",
            "malformed-signature",
            "malformed-body",
            "missing-secret"
        ]
    );
    assert!(stripe.cases.iter().all(|c| c.source == "built-in (stripe)"));

    let internal = test_component("internal_hmac").await;
    internal.assert_passed();
    // The internal scheme signs no timestamp, so expiry is skipped, not failed.
    let expired = internal.case("expired").unwrap();
    assert!(matches!(&expired.verdict, Verdict::Skip(why) if why.contains("signs no time")));
    assert_eq!(internal.cases.iter().filter(|c| c.passed()).count(), 5);
}

#[tokio::test]
async fn harness_names_a_verifier_scheme_the_plugin_does_not_speak() {
    let report = harness("stripe_verifier")
        .scheme(Scheme::InternalHmac)
        .run()
        .await
        .unwrap();
    assert!(!report.passed());
    assert!(failure(&report, "valid").contains("expected ok, got invalid-signature"));
}

#[tokio::test]
async fn harness_passes_the_token_bucket_with_its_own_settings() {
    let report = test_component("token_bucket").await;
    report.assert_passed();
    assert_eq!(report.world, Some(PluginKind::RateLimitPolicy));
    assert_eq!(names(&report), ["allow", "deny", "retry-after"]);
    let deny = report.case("deny").unwrap();
    assert_eq!(deny.stats.calls, 41, "the default burst is 40");

    let tight = harness("token_bucket")
        .config("ip-burst", "5")
        .run()
        .await
        .unwrap();
    tight.assert_passed();
    let deny = tight.case("deny").unwrap();
    assert!(
        deny.verdict.text().contains("denied after 5 allowed"),
        "{deny:?}"
    );
}

#[tokio::test]
async fn harness_fails_a_misbehaving_adapter_with_clear_reasons() {
    // chaos answers ok whatever the provider says, and never calls it.
    let report = test_component("chaos").await;
    assert!(!report.passed());
    let failed = report.cases.iter().filter(|c| c.failed()).count();
    assert_eq!(failed, 11, "{}", report.text());
    assert!(failure(&report, "success").contains("without calling the provider"));
    assert!(failure(&report, "decline").starts_with("expected declined, got ok"));
    assert!(failure(&report, "missing-config").starts_with("expected misconfigured, got ok"));
    // A WIT 0.1.0 adapter has no refunds: those cases are skipped, saying why.
    let refund = report.case("refund-success").unwrap();
    assert!(
        matches!(&refund.verdict, Verdict::Skip(why) if why.contains("0.1.0")),
        "{refund:?}"
    );
    let text = report.text();
    assert!(text.contains("FAIL  decline"), "{text}");
    assert!(text.contains("0 passed, 11 failed, 5 skipped"), "{text}");
}

#[tokio::test]
async fn harness_reports_a_component_that_does_not_load() {
    let mut truncated = wasm("sandbox_adapter");
    truncated.truncate(truncated.len() / 2);
    for (bytes, needle) in [
        (truncated, "not a WebAssembly component"),
        (b"\0asm\x01\0\0\0".to_vec(), "core WebAssembly module"),
    ] {
        let report = Harness::new("broken.wasm", bytes).run().await.unwrap();
        assert_eq!(report.world, None);
        assert!(
            failure(&report, "load").contains(needle),
            "{}",
            report.text()
        );
        assert_eq!(report.cases.len(), 1);
    }
}

#[tokio::test]
async fn user_fixtures_add_provider_cases() {
    let dir = tempfile::tempdir().unwrap();
    let write = |file: &str, value: Value| {
        std::fs::write(dir.path().join(file), value.to_string()).unwrap();
    };
    write(
        "1-bad-currency.json",
        json!({
            "name": "recorded invalid currency",
            "request": { "method": "POST", "path": "/v1/checkout/sessions" },
            "response": { "status": 400, "body": { "error": {
                "type": "invalid_request_error", "message": "Invalid currency: eur" } } },
            "expect": "invalid-request"
        }),
    );
    write(
        "2-status.json",
        json!({
            "name": "session paid",
            "call": "payment-status",
            "reference": "cs_paid",
            "request": { "method": "GET", "path": "/v1/checkout/sessions/cs_paid" },
            "response": { "body": { "id": "cs_paid", "status": "complete", "payment_status": "paid" } },
            "expect": "finished"
        }),
    );
    write(
        "3-wrong-path.json",
        json!({
            "name": "expects another endpoint",
            "request": { "path": "/v2/*" },
            "response": { "status": 200, "body": { "id": "x", "url": "https://pay.example/x" } },
            "expect": "ok"
        }),
    );
    std::fs::write(
        dir.path().join("4-unusable.toml"),
        "name = \"no response\"\nexpect = \"ok\"\n",
    )
    .unwrap();

    let report = stripe_adapter().fixtures(dir.path()).run().await.unwrap();
    assert_eq!(report.cases.len(), 20, "{}", report.text());
    for passing in ["recorded invalid currency", "session paid"] {
        assert!(report.case(passing).unwrap().passed(), "{}", report.text());
    }
    assert!(
        failure(&report, "expects another endpoint")
            .contains("sent POST /v1/checkout/sessions, the fixture expects any method /v2/*")
    );
    assert!(failure(&report, "no response").contains("needs a `response`"));
    assert!(
        report
            .case("session paid")
            .unwrap()
            .source
            .ends_with("2-status.json")
    );
}

#[tokio::test]
async fn user_fixtures_carry_recorded_webhooks() {
    use hmac::{Hmac, Mac};
    // A webhook as Stripe would have sent it, signed with the endpoint's own
    // secret at a time long past: fresh only at its recorded `now_ms`.
    let secret = "whsec_recorded";
    let body =
        r#"{"id":"evt_rec","type":"checkout.session.expired","data":{"object":{"id":"cs_rec"}}}"#;
    let t = 1_700_000_000u64;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let signature = format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()));
    let dir = tempfile::tempdir().unwrap();
    let fixture = |now_ms: u64, expect: &str| {
        json!({
            "name": format!("recorded, verified at {now_ms}"),
            "webhook": { "headers": { "Stripe-Signature": signature }, "body": body },
            "now_ms": now_ms,
            "expect": expect,
            "events": 1,
        })
    };
    std::fs::write(
        dir.path().join("fresh.json"),
        fixture(t * 1000 + 5_000, "ok").to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("stale.json"),
        fixture(t * 1000 + 3_600_000, "signature-expired").to_string(),
    )
    .unwrap();

    let report = harness("stripe_verifier")
        .secret("webhook-secret", secret)
        .fixtures(dir.path())
        .run()
        .await
        .unwrap();
    report.assert_passed();
    assert_eq!(report.cases.len(), 8);
}

#[tokio::test]
async fn junit_xml_has_one_testcase_per_case_and_the_failures() {
    let report = test_component("chaos").await;
    let xml = report.junit();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let suite = doc.root_element();
    assert_eq!(suite.tag_name().name(), "testsuite");
    assert_eq!(suite.attribute("tests"), Some("16"));
    assert_eq!(suite.attribute("failures"), Some("11"));
    assert_eq!(suite.attribute("skipped"), Some("5"));
    let cases: Vec<_> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 16);
    let decline = cases
        .iter()
        .find(|c| c.attribute("name") == Some("decline"))
        .unwrap();
    assert_eq!(
        decline.attribute("classname"),
        Some("provider-adapter.errors")
    );
    let failure = decline
        .children()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert!(
        failure
            .attribute("message")
            .unwrap()
            .starts_with("expected declined, got ok {\"payment-url\"")
    );
    let out = decline
        .children()
        .find(|n| n.has_tag_name("system-out"))
        .unwrap();
    assert!(out.text().unwrap().contains("fuel="), "{xml}");

    let skipped = test_component("internal_hmac").await.junit();
    let doc = roxmltree::Document::parse(&skipped).unwrap();
    assert_eq!(doc.root_element().attribute("skipped"), Some("1"));
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("failure"))
            .count(),
        0
    );
}

#[tokio::test]
async fn run_once_makes_one_call_and_returns_json() {
    let input: RunInput = serde_json::from_value(json!({
        "input": { "payment_id": 9, "price": "25.00" },
        "provider_response": { "status": 200, "body": { "id": "cs_9", "url": "https://pay.example/cs_9" } }
    }))
    .unwrap();
    let out = run_once("stripe", &wasm("stripe_adapter"), input, None)
        .await
        .unwrap();
    assert!(out.completed);
    assert_eq!(out.json["call"], "create-payment");
    assert_eq!(out.json["result"]["ok"]["reference"], "cs_9");
    let sent = &out.json["http"].as_array().unwrap()[..];
    assert_eq!(sent.len(), 1, "{}", out.json);
    assert_eq!(sent[0]["method"], "POST");
    assert_eq!(sent[0]["path"], "/v1/checkout/sessions");
    // What was sent, for the integrator to see: the body, and the headers
    // with the credential shown by its scheme only.
    assert!(
        sent[0]["body"]
            .as_str()
            .unwrap()
            .contains("unit_amount%5D=2500"),
        "{}",
        out.json
    );
    assert_eq!(sent[0]["headers"]["authorization"], "Bearer <redacted>");
    assert!(out.json["stats"]["fuel"].as_u64().unwrap() > 0);

    // The host stopping a call is not a completed call.
    let input: RunInput = serde_json::from_value(json!({
        "input": { "metadata": { "chaos": "panic" } }
    }))
    .unwrap();
    let out = run_once("chaos", &wasm("chaos"), input, None)
        .await
        .unwrap();
    assert!(!out.completed);
    assert_eq!(out.json["result"]["host-error"]["kind"], "panic");
}

/// Runs the built `paygate` binary with `args`.
async fn paygate(args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_paygate"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn dist(name: &str) -> String {
    root()
        .join(format!("plugins/dist/{name}.wasm"))
        .display()
        .to_string()
}

#[tokio::test]
async fn cli_plugin_test_passes_stripe_with_its_recorded_fixtures() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().display().to_string();
    // The example fixtures shipped with the adapter run as extra cases.
    let fixtures = root().join("plugins/stripe-adapter/fixtures");
    let (code, stdout) = paygate(&[
        "plugin",
        "test",
        &dist("stripe_adapter"),
        "--profile",
        "stripe",
        "--cache-dir",
        &cache_dir,
        "--fixtures",
        &fixtures.display().to_string(),
    ])
    .await;
    assert_eq!(code, 0, "{stdout}");
    // Eleven payment cases, five refund cases, four recorded fixtures.
    assert!(stdout.contains("20 cases: 20 passed, 0 failed"), "{stdout}");
    assert!(stdout.contains("session paid (recorded)"), "{stdout}");
    assert!(stdout.contains("refund succeeded (recorded)"), "{stdout}");
    // A failing component, its exit code and JUnit: host/harness/tests/standalone.rs
    // runs them through `paygate-plugin`, which shares this command's code.
}

// `plugin run` through the shared command code: host/harness/tests/standalone.rs.
