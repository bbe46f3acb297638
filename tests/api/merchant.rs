//! The merchant's own settings (API.md, "The merchant's own settings"):
//! read and changed with its own keys, default return URLs used by its
//! payments, and the webhook secret and API keys rotated with a grace
//! period.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::app::{LAX_RATE_LIMIT, Reply, TestApp, merchant_with, spawn_app, spawn_app_with};
use super::notifications::{MerchantEndpoint, app_notifying, settle_payment, wait_for_status};
use crate::helpers::Received;

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> Reply {
    let mut request = (app.client)
        .request(method, format!("{}{path}", app.url))
        .header("x-api-key", key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    super::app::reply(request.send().await.unwrap()).await
}

async fn patch(app: &TestApp, key: &str, body: Value) -> Reply {
    send(
        app,
        reqwest::Method::PATCH,
        "/api/v1/merchant",
        key,
        Some(body),
    )
    .await
}

async fn settings(app: &TestApp) -> Value {
    let r = app
        .get("/api/v1/merchant", Some(&app.merchant.read_api_key))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

fn field_names(reply: &Reply) -> Vec<&str> {
    (reply.body["fields"].as_array())
        .map(|f| f.iter().map(|e| e["field"].as_str().unwrap()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_merchant_reads_and_changes_its_own_settings() {
    let app = spawn_app().await;
    let shown = settings(&app).await;
    let subscription = app.merchant.subscription_id.get();
    assert_eq!(
        shown,
        json!({
            "merchant_id": app.merchant.merchant_id.get(), "name": "test merchant",
            "currency": "EUR", "callback_url": null, "default_return_url": null,
            "default_cancel_url": null, "signed_writes": false,
            "subscriptions": [{"subscription_id": subscription, "tokens_total": 1000,
                               "tokens_used": 0, "active": true}],
        })
    );
    assert_eq!(app.create(&app.body(1)).await.status, 200);
    assert_eq!(settings(&app).await["subscriptions"][0]["tokens_used"], 1);

    // A read key reads; it does not write.
    let read = app.merchant.read_api_key.clone();
    let r = patch(&app, &read, json!({"default_return_url": null})).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));

    let write = app.merchant.api_key.clone();
    let urls = json!({
        "default_return_url": "https://shop.example/thanks",
        "default_cancel_url": "https://shop.example/cart?step=2",
        "callback_url": "https://shop.example/paygate",
    });
    let r = patch(&app, &write, urls.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for field in ["default_return_url", "default_cancel_url", "callback_url"] {
        assert_eq!(r.body[field], urls[field], "{field}");
    }
    assert_eq!(settings(&app).await, r.body);

    // A payment without URLs of its own takes the defaults; one with its
    // own keeps them.
    let created = app.create(&app.body(2)).await;
    let id = created.body["payment_id"].as_i64().unwrap();
    let shown = app
        .get(&format!("/api/v1/payments/{id}/show"), Some(&read))
        .await;
    assert_eq!(
        (&shown.body["return_url"], &shown.body["cancel_url"]),
        (&urls["default_return_url"], &urls["default_cancel_url"])
    );
    let mut own = app.body(3);
    own["return_url"] = json!("https://shop.example/own");
    let created = app.create(&own).await;
    let id = created.body["payment_id"].as_i64().unwrap();
    let shown = app
        .get(&format!("/api/v1/payments/{id}/show"), Some(&read))
        .await;
    assert_eq!(shown.body["return_url"], "https://shop.example/own");
    assert_eq!(shown.body["cancel_url"], urls["default_cancel_url"]);

    // Every bad field is named, and nothing changes.
    let bad = json!({
        "name": "renamed",
        "callback_url": "http://shop.example/plain",
        "default_return_url": "ftp://shop.example/",
        "default_cancel_url": 5,
    });
    let r = patch(&app, &write, bad).await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
    assert_eq!(
        field_names(&r),
        [
            "name",
            "callback_url",
            "default_return_url",
            "default_cancel_url"
        ]
    );
    let long = format!("https://shop.example/{}", "a".repeat(2048));
    let r = patch(&app, &write, json!({"default_return_url": long})).await;
    assert_eq!(field_names(&r), ["default_return_url"]);
    let r = patch(&app, &write, json!(["not", "an", "object"])).await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
    assert_eq!(
        settings(&app).await["default_return_url"],
        urls["default_return_url"]
    );

    // Null clears a field; the others stay.
    let r = patch(&app, &write, json!({"default_return_url": null})).await;
    assert_eq!(r.body["default_return_url"], Value::Null);
    assert_eq!(r.body["default_cancel_url"], urls["default_cancel_url"]);
    let created = app.create(&app.body(4)).await;
    let id = created.body["payment_id"].as_i64().unwrap();
    let shown = app
        .get(&format!("/api/v1/payments/{id}/show"), Some(&read))
        .await;
    assert_eq!(shown.body["return_url"], Value::Null);

    // No key, no settings.
    let r = app.get("/api/v1/merchant", None).await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
}

/// A default URL stored before return and cancel URLs had to be ASCII
/// (2026-12-04) is used in its ASCII form, the host in punycode and the
/// path percent-encoded, and shown so: not dropped as if it were unset.
#[tokio::test]
async fn a_default_url_stored_before_the_ascii_rule_is_used_in_its_ascii_form() {
    let app = spawn_app().await;
    sqlx::query(
        "UPDATE merchants SET default_return_url = $2, default_cancel_url = $3 WHERE id = $1",
    )
    .bind(app.merchant.merchant_id.get())
    .bind("https://bücher.example/danke?session={CHECKOUT_SESSION_ID}")
    .bind("https://shop.example/zurück")
    .execute(&app.dbs.merchants)
    .await
    .unwrap();
    let ascii = (
        "https://xn--bcher-kva.example/danke?session={CHECKOUT_SESSION_ID}",
        "https://shop.example/zur%C3%BCck",
    );
    let shown = settings(&app).await;
    assert_eq!(
        (&shown["default_return_url"], &shown["default_cancel_url"]),
        (&json!(ascii.0), &json!(ascii.1))
    );
    let created = app.create(&app.body(1)).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let id = created.body["payment_id"].as_i64().unwrap();
    let payment = app
        .get(
            &format!("/api/v1/payments/{id}/show"),
            Some(&app.merchant.read_api_key),
        )
        .await;
    assert_eq!(
        (&payment.body["return_url"], &payment.body["cancel_url"]),
        (&json!(ascii.0), &json!(ascii.1))
    );
}

/// Where private callbacks are not allowed (every deployment but the demo
/// and the tests), a merchant cannot point its notifications at a loopback
/// or private address (server-side request forgery), by literal or by name.
#[tokio::test]
async fn a_callback_url_on_a_private_address_is_refused() {
    let app = spawn_app_with(LAX_RATE_LIMIT, Vec::new(), |mut c| {
        c.notifier.allow_private_callbacks = false;
        c
    })
    .await;
    let write = app.merchant.api_key.clone();
    for url in [
        "https://10.0.0.7/hook",
        "https://127.0.0.1:8443/hook",
        "http://localhost:9000/hook",
        "https://[::1]/hook",
        "https://[::ffff:192.168.1.1]/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://metadata.localhost/hook",
    ] {
        let r = patch(&app, &write, json!({"callback_url": url})).await;
        assert_eq!(field_names(&r), ["callback_url"], "{url}: {:?}", r.body);
    }
    let r = patch(
        &app,
        &write,
        json!({"callback_url": "https://shop.example/hook"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        settings(&app).await["callback_url"],
        "https://shop.example/hook"
    );
}

/// Which of `secrets` signed the notification, in the header's order.
fn signers(received: &Received, secrets: &[&str]) -> Vec<usize> {
    let id = &received.headers["webhook-id"];
    let timestamp = &received.headers["webhook-timestamp"];
    let signed = format!("{id}.{timestamp}.{}", received.body);
    received.headers["webhook-signature"]
        .split(' ')
        .map(|signature| {
            secrets
                .iter()
                .position(|secret| {
                    let key = BASE64
                        .decode(secret.strip_prefix("whsec_").unwrap())
                        .unwrap();
                    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
                    mac.update(signed.as_bytes());
                    let expected = BASE64.encode(mac.finalize().into_bytes());
                    signature == format!("v1,{expected}")
                })
                .unwrap_or_else(|| panic!("{signature} is none of the secrets'"))
        })
        .collect()
}

async fn rotate(app: &TestApp, what: &str, key: &str, body: Option<Value>) -> Reply {
    let path = format!("/api/v1/merchant/{what}/rotate");
    send(app, reqwest::Method::POST, &path, key, body).await
}

fn seconds_ahead(reply: &Reply) -> i64 {
    let at = reply.body["previous_expires_at"].as_str().unwrap();
    let at = chrono::DateTime::parse_from_rfc3339(at).unwrap();
    at.timestamp() - chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn a_rotated_webhook_secret_signs_beside_the_old_one_until_its_grace_ends() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = app_notifying(&endpoint, |c| c).await;
    let write = app.merchant.api_key.clone();
    let old = app.merchant.webhook_secret.clone();

    let read = app.merchant.read_api_key.clone();
    let r = rotate(&app, "webhook-secret", &read, None).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    for grace in [json!(-1), json!(604_801), json!("60"), json!(1.5)] {
        let r = rotate(
            &app,
            "webhook-secret",
            &write,
            Some(json!({"grace_seconds": grace})),
        )
        .await;
        assert_eq!(field_names(&r), ["grace_seconds"], "{grace}");
    }
    let r = rotate(&app, "webhook-secret", &write, Some(json!({"grace": 60}))).await;
    assert_eq!(field_names(&r), ["grace"]);

    // The default grace is a day; the new secret is shown once, and never
    // in the settings.
    let r = rotate(&app, "webhook-secret", &write, None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let new = r.body["webhook_secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    assert!(
        (86_398..=86_401).contains(&seconds_ahead(&r)),
        "{:?}",
        r.body
    );
    assert!(!settings(&app).await.to_string().contains("whsec_"));

    // Until then each notification is signed with both, the new one first.
    let id = settle_payment(&app, 1, "finished").await;
    wait_for_status(&app, id, "LOG_SUCCESS").await;
    let received = endpoint.received();
    assert_eq!(signers(&received[0], &[&new, &old]), [0, 1]);

    // A rotation without grace ends the old secrets at once: the next
    // notification (once the notifier's cached secrets expire) carries one
    // signature, the newest.
    let r = rotate(
        &app,
        "webhook-secret",
        &write,
        Some(json!({"grace_seconds": 0})),
    )
    .await;
    let newest = r.body["webhook_secret"].as_str().unwrap().to_owned();
    assert!(seconds_ahead(&r) <= 1, "{:?}", r.body);
    tokio::time::sleep(paygate::notifier::TARGET_CACHE_TTL + Duration::from_millis(200)).await;
    let id = settle_payment(&app, 2, "finished").await;
    wait_for_status(&app, id, "LOG_SUCCESS").await;
    let received = endpoint.received();
    assert_eq!(signers(&received[1], &[&newest, &new, &old]), [0]);
}

#[tokio::test]
async fn rotated_api_keys_work_beside_the_old_ones_only_for_the_grace_period() {
    let app = spawn_app().await;
    let (old_write, old_read) = (
        app.merchant.api_key.clone(),
        app.merchant.read_api_key.clone(),
    );
    let r = rotate(&app, "api-keys", &old_read, None).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));

    // With a grace period both pairs work until it ends.
    let r = rotate(
        &app,
        "api-keys",
        &old_write,
        Some(json!({"grace_seconds": 60})),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!((58..=61).contains(&seconds_ahead(&r)), "{:?}", r.body);
    let (write, read) = (
        r.body["api_key"].as_str().unwrap().to_owned(),
        r.body["read_api_key"].as_str().unwrap().to_owned(),
    );
    for key in [&old_read, &read, &old_write, &write] {
        assert_eq!(app.get("/api/v1/merchant", Some(key)).await.status, 200);
    }

    // Without one (the default) every older key stops at once, on this
    // replica, the ones still in their grace period too.
    let r = rotate(&app, "api-keys", &write, None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let newest = r.body["read_api_key"].as_str().unwrap().to_owned();
    for key in [&old_read, &read, &old_write, &write] {
        let r = app.get("/api/v1/merchant", Some(key)).await;
        assert_eq!((r.status, r.code()), (401, "invalid_api_key"));
    }
    let r = app.get("/api/v1/merchant", Some(&newest)).await;
    assert_eq!(r.body["merchant_id"], app.merchant.merchant_id.get());
}

/// A merchant that requires signed writes must sign its settings' changes
/// and rotations too: a stolen key alone changes nothing.
#[tokio::test]
async fn a_merchant_requiring_signed_writes_must_sign_its_settings() {
    let mut app = spawn_app().await;
    app.merchant = merchant_with(&app.merchants, 10, true, None).await;
    let write = app.merchant.api_key.clone();
    let r = patch(&app, &write, json!({"default_return_url": null})).await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    for what in ["webhook-secret", "api-keys"] {
        let r = rotate(&app, what, &write, None).await;
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{what}");
    }
    assert_eq!(settings(&app).await["signed_writes"], true);
}
