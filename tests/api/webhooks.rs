//! Provider webhooks: verified by plugins, recorded, applied once, and
//! written with their outbox row in one transaction.

use std::time::Duration;

use hmac::{Hmac, Mac};
use paygate::PaymentId;
use serde_json::{Value, json};
use sha2::Sha256;

use super::app::{Reply, TestApp, clicker, spawn_app};
use super::registry::{TOKEN, admin};

/// The secret `Config::for_tests` gives the internal scheme.
pub(crate) const INTERNAL_SECRET: &[u8] = b"test-internal-secret";

pub(crate) fn hex_hmac(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub(crate) async fn internal_webhook(
    app: &TestApp,
    body: &str,
    signature: Option<String>,
    request_id: &str,
) -> Reply {
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        ("x-request-id", request_id.to_owned()),
    ];
    if let Some(sig) = signature {
        headers.push(("x-internal-signature", sig));
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.post_raw(
        "/api/v1/payments/webhook",
        None,
        &headers,
        body.as_bytes().to_vec(),
    )
    .await
}

async fn status_of(app: &TestApp, id: i64) -> String {
    let r = app
        .get(
            &format!("/api/v1/payments/{id}/show"),
            Some(&app.merchant.read_api_key.clone()),
        )
        .await;
    r.body["status"].as_str().unwrap().to_owned()
}

async fn pending_payment(app: &TestApp, order: i64, alias: &str) -> i64 {
    let mut body = app.body(order);
    body["alias"] = json!(alias);
    let r = app.create(&body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["payment_id"].as_i64().unwrap()
}

#[tokio::test]
async fn a_signed_webhook_finishes_the_payment_once() {
    let app = spawn_app().await;
    let id = pending_payment(&app, 1, "sandbox").await;
    let body = format!(r#"{{"payment_id": {id}, "status": "finished"}}"#);
    let sig = hex_hmac(INTERNAL_SECRET, body.as_bytes());

    let r = internal_webhook(&app, &body, Some(sig.clone()), "wh-1").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body,
        json!({"status": "ok", "result": {"message": "payment updated", "payment_id": id, "status": "PAYMENT_FINISHED"}})
    );
    assert_eq!(status_of(&app, id).await, "PAYMENT_FINISHED");

    // A replay is a no-op, and so is a later contrary event: terminal states stay.
    let r = internal_webhook(&app, &body, Some(sig.to_uppercase()), "wh-2").await;
    assert_eq!(r.body["result"]["message"], "already processed");
    let failed = format!(r#"{{"payment_id": {id}, "status": "failed"}}"#);
    let r = internal_webhook(
        &app,
        &failed,
        Some(hex_hmac(INTERNAL_SECRET, failed.as_bytes())),
        "wh-3",
    )
    .await;
    assert_eq!(
        r.body["result"],
        json!({"message": "already processed", "payment_id": id, "status": "PAYMENT_FINISHED"})
    );
    assert_eq!(status_of(&app, id).await, "PAYMENT_FINISHED");

    // Exactly one outbox row, written with the change (the notifier may
    // already be working on it).
    let outbox = outbox_of(&app, id).await;
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0].0, "payment.finished");
    let events: Vec<Value> = app
        .get(
            &format!("/api/v1/payments/{id}/tracking"),
            Some(&app.merchant.read_api_key.clone()),
        )
        .await
        .body["events"]
        .as_array()
        .unwrap()
        .clone();
    // The webhook's entry, then only the notifier's attempts.
    let webhook_at = events
        .iter()
        .position(|e| e["event_type"] == "EVENT_PROVIDER_WEBHOOK")
        .expect("the webhook is on the timeline");
    assert!(
        events[webhook_at + 1..]
            .iter()
            .all(|e| e["event_type"] == "EVENT_MERCHANT_NOTIFICATION"),
        "{events:?}"
    );

    // Recorded in the logs database, signature redacted.
    let logged = app.webhooks.log.verdicts("wh-1").await.unwrap();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].0, "valid");
    assert_eq!(logged[0].1["x-internal-signature"], "[redacted]");
}

#[tokio::test]
async fn bad_signatures_are_refused_recorded_and_not_applied() {
    let app = spawn_app().await;
    let id = pending_payment(&app, 1, "sandbox").await;
    let body = format!(r#"{{"payment_id": {id}, "status": "finished"}}"#);
    let good = hex_hmac(INTERNAL_SECRET, body.as_bytes());
    let tampered = body.replace("finished", "failed");
    for (i, (body, sig)) in [
        (body.as_str(), None),
        (
            body.as_str(),
            Some(hex_hmac(b"wrong secret", body.as_bytes())),
        ),
        (body.as_str(), Some(good[..32].to_owned())),
        (tampered.as_str(), Some(good.clone())),
    ]
    .into_iter()
    .enumerate()
    {
        let rid = format!("bad-{i}");
        let r = internal_webhook(&app, body, sig, &rid).await;
        assert_eq!(
            (r.status, r.code()),
            (403, "invalid_signature"),
            "case {i}: {:?}",
            r.body
        );
        assert_eq!(
            app.webhooks.log.verdicts(&rid).await.unwrap()[0].0,
            "invalid_signature"
        );
    }
    assert_eq!(status_of(&app, id).await, "PAYMENT_PENDING");
    assert!(outbox_of(&app, id).await.is_empty());

    let unknown = format!(r#"{{"payment_id": {id}, "status": "refunded"}}"#);
    let r = internal_webhook(
        &app,
        &unknown,
        Some(hex_hmac(INTERNAL_SECRET, unknown.as_bytes())),
        "bad-status",
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
    assert_eq!(status_of(&app, id).await, "PAYMENT_PENDING");
}

#[tokio::test]
async fn unknown_payments_and_other_providers_payments_are_not_found() {
    let app = spawn_app().await;
    let body = r#"{"payment_id": 987654321, "status": "finished"}"#;
    let r = internal_webhook(
        &app,
        body,
        Some(hex_hmac(INTERNAL_SECRET, body.as_bytes())),
        "nf-1",
    )
    .await;
    assert_eq!(
        r.body["result"],
        json!({"message": "payment not found", "payment_id": 987654321, "status": null})
    );

    // A stripe payment cannot be moved by the internal verifier.
    let id = pending_payment(&app, 2, "stripe").await;
    let body = format!(r#"{{"payment_id": {id}, "status": "failed"}}"#);
    let r = internal_webhook(
        &app,
        &body,
        Some(hex_hmac(INTERNAL_SECRET, body.as_bytes())),
        "nf-2",
    )
    .await;
    assert_eq!(r.body["result"]["message"], "payment not found");
    assert_eq!(status_of(&app, id).await, "PAYMENT_PENDING");

    let r = app
        .post_raw(
            "/api/v1/payments/webhook/nosuchalias",
            None,
            &[("content-type", "application/json")],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
}

#[tokio::test]
async fn clicking_pay_on_the_sandbox_page_finishes_a_stripe_payment() {
    let app = spawn_app().await;
    let mut body = app.body(3);
    body["alias"] = json!("stripe");
    let created = app.create(&body).await;
    let id = created.body["payment_id"].as_i64().unwrap();
    let url = created.body["payment_url"].as_str().unwrap().to_owned();
    // The sandbox signs a checkout.session.completed event with Stripe's scheme.
    let client = clicker();
    let clicked = client.post(format!("{url}/pay")).send().await.unwrap();
    assert!(
        clicked.status().is_success() || clicked.status().is_redirection(),
        "{}",
        clicked.status()
    );
    let started = std::time::Instant::now();
    while status_of(&app, id).await != "PAYMENT_FINISHED" {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the webhook never finished the payment"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(outbox_of(&app, id).await.len(), 1);
}

/// The receiving service on its own, no HTTP in front: verdicts are typed,
/// every delivery is logged, and events are applied to the payment.
#[tokio::test]
async fn the_webhook_service_verifies_logs_and_applies_without_http() {
    use paygate::payments::PaymentStatus;
    use paygate::payments::webhook::Applied;
    use paygate::webhooks::{Delivery, EventOutcome, Route, WebhookError};

    let app = spawn_app().await;
    let id = pending_payment(&app, 1, "sandbox").await;
    let body = format!(r#"{{"payment_id": {id}, "status": "finished"}}"#);
    let delivery = |request_id: &'static str, signature: String| Delivery {
        request_id,
        client_ip: None,
        path: "/api/v1/payments/webhook",
        headers: vec![("x-internal-signature".into(), signature)],
        body: body.as_bytes(),
    };

    let forged = delivery("svc-forged", hex_hmac(b"not the secret", body.as_bytes()));
    let refused = app.webhooks.receive(Route::Internal, forged).await;
    assert!(
        matches!(refused, Err(WebhookError::InvalidSignature)),
        "{refused:?}"
    );
    let unbound = delivery("svc-unbound", String::new());
    let refused = app
        .webhooks
        .receive(Route::Alias("nosuchalias"), unbound)
        .await;
    assert!(
        matches!(refused, Err(WebhookError::UnknownAlias)),
        "{refused:?}"
    );

    let signed = delivery("svc-signed", hex_hmac(INTERNAL_SECRET, body.as_bytes()));
    let outcomes = app.webhooks.receive(Route::Internal, signed).await.unwrap();
    assert_eq!(
        outcomes,
        [EventOutcome::Payment {
            named_id: Some(id as u64),
            applied: Applied::Updated {
                payment_id: PaymentId::new(id),
                status: PaymentStatus::Finished,
                alias: "sandbox".to_owned(),
            },
        }]
    );
    assert_eq!(status_of(&app, id).await, "PAYMENT_FINISHED");
    for (request_id, verdict) in [("svc-forged", "invalid_signature"), ("svc-signed", "valid")] {
        assert_eq!(
            app.webhooks.log.verdicts(request_id).await.unwrap()[0].0,
            verdict
        );
    }
    // An alias with no verifier is refused before anything is logged.
    assert!(
        app.webhooks
            .log
            .verdicts("svc-unbound")
            .await
            .unwrap()
            .is_empty()
    );
}

/// Security review, finding 17: a NUL (or anything no alias can hold) in
/// the alias reached the database, which refused it: 503 and an error log.
/// It is simply no alias: 404, the database never asked.
#[tokio::test]
async fn an_alias_no_binding_could_have_is_not_found() {
    let app = spawn_app().await;
    for alias in ["a%00b", "%00", "Stripe", "strip%C3%A9", &"a".repeat(65)] {
        let r = app
            .post_raw(
                &format!("/api/v1/payments/webhook/{alias}"),
                None,
                &[("content-type", "application/json")],
                b"{}".to_vec(),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (404, "not_found"),
            "{alias}: {:?}",
            r.body
        );
    }
}

/// The outbox rows of payment `id`: (event type, status).
pub(crate) async fn outbox_of(app: &TestApp, id: i64) -> Vec<(String, String)> {
    let id = PaymentId::new(id);
    app.payment_store.outbox_of(id).await.unwrap()
}

/// Security review, finding 1: every unknown alias looked up stayed in the
/// bindings cache for good, so unauthenticated webhooks to made-up aliases
/// grew the host's memory without bound. Misses are cached only while the
/// cache has room; what it holds stays under its cap.
#[tokio::test]
async fn unknown_aliases_do_not_grow_the_bindings_cache() {
    let app = spawn_app().await;
    let cap = paygate::providers::ProviderStore::CACHE_CAP;
    for i in 0..cap + 500 {
        let alias = format!("made-up-{i}");
        assert_eq!(app.providers.get(&alias).await.unwrap(), None);
    }
    let cached = app.providers.cached();
    assert!(cached <= cap, "{cached} entries cached, cap {cap}");
    // Bindings still resolve, and a miss is still a miss.
    assert!(app.providers.get("sandbox").await.unwrap().is_some());
    assert_eq!(app.providers.get("made-up-0").await.unwrap(), None);
}

/// The secret `Config::for_tests` gives the Stripe verifier.
const STRIPE_SECRET: &[u8] = b"whsec_test";

/// POSTs `event` to the stripe alias, signed with Stripe's scheme.
pub(crate) async fn stripe_webhook(app: &TestApp, event: &Value, request_id: &str) -> Reply {
    let body = event.to_string();
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let v1 = hex_hmac(STRIPE_SECRET, format!("{t}.{body}").as_bytes());
    let signature = format!("t={t},v1={v1}");
    let headers = [
        ("content-type", "application/json"),
        ("x-request-id", request_id),
        ("stripe-signature", signature.as_str()),
    ];
    app.post_raw(
        "/api/v1/payments/webhook/stripe",
        None,
        &headers,
        body.into_bytes(),
    )
    .await
}

/// A `checkout.session.completed` of session `session` naming payment `id`.
/// A text column of payment `id` as stored.
async fn stored_column(app: &TestApp, id: i64, column: &str) -> String {
    sqlx::query_scalar(&format!("SELECT {column} FROM payments WHERE id = $1"))
        .bind(id)
        .fetch_one(&app.dbs.payments)
        .await
        .unwrap()
}

fn session_completed(event_id: &str, session: &str, id: i64, amount_total: i64) -> Value {
    json!({"id": event_id, "object": "event", "type": "checkout.session.completed",
           "data": {"object": {"id": session, "object": "checkout.session",
                               "client_reference_id": id.to_string(), "payment_status": "paid",
                               "amount_total": amount_total, "currency": "eur"}}})
}

/// Security review, finding 9: any correctly signed
/// `checkout.session.completed` naming a payment in `client_reference_id`
/// finished it, whichever session it was about (one the attacker opened
/// for a cent in the same Stripe account, say). The event must be about the
/// Checkout Session paygate opened for the payment: another session's is
/// refused ("payment not found", verdict `unmatched`), and changes nothing.
#[tokio::test]
async fn a_stripe_event_for_another_session_does_not_finish_the_payment() {
    let app = spawn_app().await;
    let id = pending_payment(&app, 1, "stripe").await;
    let session = stored_column(&app, id, "provider_reference").await;
    assert!(session.starts_with("cs_"), "{session}");

    let forged = session_completed("evt_forged", "cs_opened_by_someone_else", id, 1);
    let r = stripe_webhook(&app, &forged, "stripe-forged").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["result"]["message"], "payment not found");
    assert_eq!(status_of(&app, id).await, "PAYMENT_PENDING");
    assert!(outbox_of(&app, id).await.is_empty());
    let logged = app.webhooks.log.verdicts("stripe-forged").await.unwrap();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].0, "unmatched");

    // The session paygate opened finishes it.
    let genuine = session_completed("evt_genuine", &session, id, 1000);
    let r = stripe_webhook(&app, &genuine, "stripe-genuine").await;
    assert_eq!(
        r.body["result"],
        json!({"message": "payment updated", "payment_id": id, "status": "PAYMENT_FINISHED"})
    );
    assert_eq!(
        app.webhooks.log.verdicts("stripe-genuine").await.unwrap()[0].0,
        "valid"
    );
}

/// Security review, finding 9, second half: a correctly signed event about
/// the payment's own session must also be about its money. An event whose
/// amount or currency is not the payment's price moves nothing (answer
/// "amount mismatch", verdict `amount_mismatch`, a timeline entry for the
/// merchant and no notification); the right amount still finishes it. The
/// `stripe` verifier is a WIT 0.2.0 component, which says the amount.
#[tokio::test]
async fn a_stripe_event_for_other_money_does_not_finish_the_payment() {
    let app = spawn_app().await;
    let id = pending_payment(&app, 1, "stripe").await;
    let session = stored_column(&app, id, "provider_reference").await;

    let mut in_dollars = session_completed("evt_usd", &session, id, 1000);
    in_dollars["data"]["object"]["currency"] = json!("usd");
    for (n, (event, why)) in [
        (session_completed("evt_cent", &session, id, 1), "a cent"),
        (in_dollars, "dollars"),
    ]
    .into_iter()
    .enumerate()
    {
        let request_id = format!("stripe-mismatch-{n}");
        let r = stripe_webhook(&app, &event, &request_id).await;
        assert_eq!(r.status, 200, "{why}: {:?}", r.body);
        assert_eq!(
            r.body["result"],
            json!({"message": "amount mismatch", "payment_id": id, "status": "PAYMENT_PENDING"}),
            "{why}"
        );
        let logged = app.webhooks.log.verdicts(&request_id).await.unwrap();
        assert_eq!(logged[0].0, "amount_mismatch", "{why}");
    }
    assert_eq!(status_of(&app, id).await, "PAYMENT_PENDING");
    assert!(outbox_of(&app, id).await.is_empty());
    let read = app.merchant.read_api_key.clone();
    let timeline = app
        .get(&format!("/api/v1/payments/{id}/tracking"), Some(&read))
        .await;
    let refused: Vec<&Value> = timeline.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "EVENT_PROVIDER_AMOUNT_MISMATCH")
        .collect();
    assert_eq!(refused.len(), 2, "{}", timeline.body);
    let message = refused[0]["message"].as_str().unwrap();
    assert!(
        message.contains("0.01 EUR") && message.contains("10.00 EUR"),
        "{message}"
    );

    let genuine = session_completed("evt_right", &session, id, 1000);
    let r = stripe_webhook(&app, &genuine, "stripe-right-amount").await;
    assert_eq!(
        r.body["result"],
        json!({"message": "payment updated", "payment_id": id, "status": "PAYMENT_FINISHED"})
    );
}

/// Security review, finding 16: the sandbox provider opens a payment link
/// for whoever asks and signs its outcome, so anyone who could reach it
/// opened a link naming another payment's id, paid a cent, and the signed
/// internal-scheme webhook finished that payment. The sandbox now sends the
/// link's id as `reference`, the internal verifier names the payment by it,
/// and a link paygate did not open moves nothing.
#[tokio::test]
async fn a_sandbox_link_opened_by_someone_else_does_not_finish_a_payment() {
    let app = spawn_app().await;
    let id = pending_payment(&app, 1, "sandbox").await;
    let client = clicker();
    let pay = async |url: &str| {
        let clicked = client.post(format!("{url}/pay")).send().await.unwrap();
        assert!(clicked.status().is_success(), "{}", clicked.status());
    };

    // The attacker's link, for a cent, naming the victim's payment.
    let link: Value = client
        .post(format!("{}/payment-links", app.sandbox_url))
        .json(
            &json!({"payment_id": id, "merchant_id": app.merchant.merchant_id, "order_id": 1,
                      "amount": "1", "price": "0.01", "currency": "EUR",
                      "idempotency_key": "attacker"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The click answers once the sandbox's first delivery has its answer.
    pay(link["payment_url"].as_str().unwrap()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let verdicts: Vec<String> =
            sqlx::query_scalar("SELECT verdict FROM inbound_webhooks ORDER BY id")
                .fetch_all(&app.dbs.logs)
                .await
                .unwrap();
        if verdicts.iter().any(|v| v == "unmatched") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{verdicts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_of(&app, id).await, "PAYMENT_PENDING");
    assert!(outbox_of(&app, id).await.is_empty());

    // The link paygate opened still finishes it.
    let url = stored_column(&app, id, "payment_url").await;
    pay(&url).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while status_of(&app, id).await != "PAYMENT_FINISHED" {
        assert!(std::time::Instant::now() < deadline, "never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A verifier built against WIT 0.1.0 (before refund events and amounts)
/// is served beside the 0.2.0 ones and still moves the payments of its
/// alias; the admin API says which version each verifier speaks.
#[tokio::test]
async fn a_verifier_built_against_wit_0_1_0_still_moves_payments() {
    let spec = "[secrets]\nwebhook-secret = \"env:INTERNAL_WEBHOOK_SECRET\"\n".to_owned();
    let legacy = ("legacy-webhook", "legacy_hmac", spec);
    let app = super::app::spawn_app_with(super::app::LAX_RATE_LIMIT, vec![legacy], |c| c).await;
    let alias = "legacy-verified";
    super::app::bind_verified(&app.providers, alias, "sandbox", "legacy-webhook").await;
    let (_, listed) = admin(&app, "GET", "/admin/v1/plugins", None, Some(TOKEN)).await;
    let wit_of = |name: &str| {
        listed["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["wit"].clone())
    };
    assert_eq!(wit_of("legacy-webhook"), Some(json!("0.1.0")), "{listed}");
    for name in ["stripe-webhook", "internal-webhook"] {
        assert_eq!(wit_of(name), Some(json!("0.2.0")), "{name}: {listed}");
    }

    let id = pending_payment(&app, 1, alias).await;
    let reference = stored_column(&app, id, "provider_reference").await;
    let body = json!({"reference": reference, "status": "finished"}).to_string();
    let signature = hex_hmac(INTERNAL_SECRET, body.as_bytes());
    let headers = [
        ("content-type", "application/json"),
        ("x-internal-signature", signature.as_str()),
    ];
    let path = format!("/api/v1/payments/webhook/{alias}");
    let r = app
        .post_raw(&path, None, &headers, body.clone().into_bytes())
        .await;
    assert_eq!(
        r.body["result"],
        json!({"message": "payment updated", "payment_id": id, "status": "PAYMENT_FINISHED"}),
        "{:?}",
        r.body
    );
    let again = app.post_raw(&path, None, &headers, body.into_bytes()).await;
    assert_eq!(again.body["result"]["message"], "already processed");
    assert_eq!(status_of(&app, id).await, "PAYMENT_FINISHED");
}

#[tokio::test]
async fn logged_webhooks_replay_as_fixtures_that_keep_their_verdicts() {
    let app = super::app::isolated_app("webhookreplay", Vec::new()).await;
    let logs_url = super::app::isolated("webhookreplay").await.0.logs;
    let id = pending_payment(&app, 1, "sandbox").await;
    let finished = format!(r#"{{"payment_id": {id}, "status": "finished"}}"#);
    let signed = |body: &str| Some(hex_hmac(INTERNAL_SECRET, body.as_bytes()));
    let r = internal_webhook(&app, &finished, signed(&finished), "rp-1").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let tampered = finished.replace("finished", "failed");
    let r = internal_webhook(&app, &tampered, signed(&finished), "rp-2").await;
    assert_eq!(r.body["error"], "invalid_signature", "{:?}", r.body);
    let malformed = r#"{"payment_id": "not a number", "status": "finished"}"#;
    let r = internal_webhook(&app, malformed, signed(malformed), "rp-3").await;
    assert_eq!(r.status, 400, "{:?}", r.body);

    let dir = tempfile::tempdir().unwrap();
    let fixtures = dir.path().join("fixtures");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_paygate"))
        .args([
            "plugin",
            "replay",
            "--from-logs",
            "--scheme",
            "internal-hmac",
        ])
        .args(["--alias", "internal", "--out"])
        .arg(&fixtures)
        .env("PAYGATE_LOGS_DATABASE_URL", &logs_url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("3 of 3 logged webhooks written"),
        "{stdout}"
    );

    let mut expects = Vec::new();
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        // No credential of the log, and not the host's own secret.
        assert!(
            !text.contains("[redacted]") && !text.contains("test-internal-secret"),
            "{text}"
        );
        let fixture: Value = serde_json::from_str(&text).unwrap();
        expects.push(fixture["expect"].as_str().unwrap().to_owned());
    }
    expects.sort();
    assert_eq!(expects, ["invalid-signature", "malformed", "ok"]);

    // The verifier that judged them passes them: the verdicts are its own.
    let component = crate::helpers::root().join("plugins/dist/internal_hmac.wasm");
    let tested = std::process::Command::new(env!("CARGO_BIN_EXE_paygate"))
        .args(["plugin", "test"])
        .arg(&component)
        .arg("--fixtures")
        .arg(&fixtures)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&tested.stdout);
    assert!(tested.status.success(), "{report}");
    assert_eq!(report.matches("logged webhook").count(), 3, "{report}");
}
