//! No key, secret or signature in any log line: a payment's whole life
//! (create, read, a bad key, provider webhooks good and bad, a signed
//! notification, an Adyen payment paid on the sandbox's page, the admin
//! API) runs with every log line captured, then the capture is searched for
//! each secret involved.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::adyen::adyen_plugins;
use super::app::{
    LAX_RATE_LIMIT, bind_verified, clicker, merchant_with, spawn_app_staging, spawn_app_with,
};
use crate::helpers::FakeServer;

#[tokio::test]
async fn no_key_secret_or_signature_reaches_a_log_line() {
    let merchant_endpoint = FakeServer::start(
        axum::Router::new().route("/hook", axum::routing::post(|| async { "ok" })),
    )
    .await;
    let mut app = spawn_app_staging(LAX_RATE_LIMIT, adyen_plugins, |c| c).await;
    bind_verified(&app.providers, "adyen", "adyen", "adyen-webhook").await;
    app.merchant = merchant_with(
        &app.merchants,
        100,
        false,
        Some(format!("{}/hook", merchant_endpoint.url())),
    )
    .await;
    let id = app.create(&app.body(1)).await.body["payment_id"]
        .as_i64()
        .unwrap();
    let read = app.merchant.read_api_key.clone();
    app.get(&format!("/api/v1/payments/{id}/show"), Some(&read))
        .await;
    app.get(
        "/api/v1/payments",
        Some("pk_not_a_real_key_but_still_secret"),
    )
    .await;

    let body = format!(r#"{{"payment_id": {id}, "status": "finished"}}"#);
    let mut mac = Hmac::<Sha256>::new_from_slice(b"test-internal-secret").unwrap();
    mac.update(body.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let forged = "ab".repeat(32);
    for sig in [&forged, &signature] {
        app.post_raw(
            "/api/v1/payments/webhook",
            None,
            &[
                ("content-type", "application/json"),
                ("x-internal-signature", sig),
            ],
            body.clone().into_bytes(),
        )
        .await;
    }
    let started = Instant::now();
    while merchant_endpoint.requests().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never notified"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let sent_signature = merchant_endpoint.requests()[0].headers["webhook-signature"].clone();

    // Through Adyen: the adapter sends the API key, the sandbox signs its
    // notification with the HMAC key, the verifier checks it.
    let mut body = app.body(2);
    body["alias"] = "adyen".into();
    let created = app.create(&body).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let url = created.body["payment_url"].as_str().unwrap().to_owned();
    clicker().post(format!("{url}/pay")).send().await.unwrap();
    let started = Instant::now();
    while merchant_endpoint.requests().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the Adyen payment was never notified"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = app
        .client
        .get(format!("{}/admin/v1/plugins", app.admin_url))
        .bearer_auth("test-admin-token")
        .send()
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let logs = crate::logs::captured();
    assert!(
        logs.contains("plugin loaded and serving"),
        "the capture works"
    );
    let whsec = app.merchant.webhook_secret.clone();
    let secrets = [
        ("write key", app.merchant.api_key.as_str()),
        ("read key", read.as_str()),
        ("an unknown key sent", "pk_not_a_real_key_but_still_secret"),
        ("webhook secret", whsec.as_str()),
        ("webhook secret's key", whsec.trim_start_matches("whsec_")),
        (
            "notification signature",
            sent_signature.trim_start_matches("v1,"),
        ),
        ("internal webhook secret", "test-internal-secret"),
        ("provider webhook signature", signature.as_str()),
        ("forged signature", forged.as_str()),
        ("Stripe secret key", "sk_test_123"),
        ("Adyen API key", paygate::config::TEST_ADYEN_API_KEY),
        ("Adyen HMAC key", paygate::config::TEST_ADYEN_HMAC_KEY),
        (
            "Adyen HMAC key, lower case",
            &paygate::config::TEST_ADYEN_HMAC_KEY.to_ascii_lowercase(),
        ),
        ("admin token", "test-admin-token"),
    ];
    for (what, secret) in secrets {
        if let Some(line) = logs.lines().find(|l| l.contains(secret)) {
            panic!("the {what} is in a log line: {line}");
        }
    }
}

/// The spans a log line was written in, by name, from a captured JSON line.
fn spans(line: &serde_json::Value) -> Vec<serde_json::Value> {
    line["spans"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_create_logs_inside_its_handler_saga_and_plugin_spans() {
    let app = spawn_app_with(LAX_RATE_LIMIT, Vec::new(), |c| c).await;
    let order_id = 7_000_000 + i64::from(std::process::id() % 1000);
    let created = app.create(&app.body(order_id)).await;
    let payment_id = created.body["payment_id"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The provider call's closing line carries the whole chain: the request,
    // the handler with its merchant, the saga with its order and payment,
    // and the plugin call with its plugin, version, world and fuel.
    let logs = crate::logs::captured();
    let line = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| {
            l["message"] == "plugin call finished"
                && spans(l)
                    .iter()
                    .any(|s| s["name"] == "saga.ask_provider" && s["payment_id"] == payment_id)
        })
        .unwrap_or_else(|| panic!("no plugin call line for payment {payment_id}"));
    let chain = spans(&line);
    let find = |name: &str| {
        chain
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no {name} span in {line}"))
    };
    assert_eq!(find("handler")["route"], "payments.create");
    assert_eq!(
        find("handler")["merchant_id"],
        app.merchant.merchant_id.get()
    );
    assert_eq!(find("saga.create")["order_id"], order_id);
    assert_eq!(
        find("saga.create")["merchant_id"],
        app.merchant.merchant_id.get()
    );
    let call = find("plugin_call");
    assert_eq!(call["plugin"], "sandbox");
    assert_eq!(call["world"], "provider-adapter");
    assert!(call["version"].is_string(), "{call}");
    assert!(find("request")["request_id"].is_string());
}

/// The access lines of the request with id `id`.
fn access_lines(id: &str) -> Vec<serde_json::Value> {
    crate::logs::captured()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["target"] == "paygate::access" && l["span"]["request_id"] == id)
        .collect()
}

/// Issue 14: one JSON line per request, written by tower-http's trace
/// layer, with the method, the matched route (not the path's ids), the
/// status, the latency, the request id and, once a key named one, the
/// merchant.
#[tokio::test]
async fn each_request_is_logged_once_with_its_route_status_latency_and_merchant() {
    let app = spawn_app_with(LAX_RATE_LIMIT, Vec::new(), |c| c).await;
    let tag = uuid::Uuid::new_v4();
    let id = |what: &str| format!("access-{what}-{tag}");
    let order = 7_100_000 + i64::from(std::process::id() % 1000);
    let created = app
        .post_raw(
            "/api/v1/payments",
            Some(&app.merchant.api_key.clone()),
            &[
                ("content-type", "application/json"),
                ("x-request-id", &id("create")),
            ],
            app.body(order).to_string().into_bytes(),
        )
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let payment = created.body["payment_id"].as_i64().unwrap();
    let send = |path: String, key: Option<String>, request_id: String| {
        let mut request = app
            .client
            .get(format!("{}{path}", app.url))
            .header("x-request-id", request_id);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        request.send()
    };
    let read = app.merchant.read_api_key.clone();
    let shown = send(
        format!("/api/v1/payments/{payment}/show"),
        Some(read),
        id("show"),
    );
    assert_eq!(shown.await.unwrap().status(), 200);
    let refused = send(
        "/api/v1/payments".into(),
        Some("pk_unknown".into()),
        id("refused"),
    );
    assert_eq!(refused.await.unwrap().status(), 401);
    let missing = send("/no/such/route".into(), None, id("missing"));
    assert_eq!(missing.await.unwrap().status(), 404);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let merchant = app.merchant.merchant_id.get();
    for (what, method, route, status, merchant) in [
        ("create", "POST", "/api/v1/payments", 200, Some(merchant)),
        (
            "show",
            "GET",
            "/api/v1/payments/{id}/show",
            200,
            Some(merchant),
        ),
        ("refused", "GET", "/api/v1/payments", 401, None),
        ("missing", "GET", "", 404, None),
    ] {
        let lines = access_lines(&id(what));
        assert_eq!(lines.len(), 1, "{what}: one access line: {lines:?}");
        let line = &lines[0];
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["span"]["method"], method, "{line}");
        assert_eq!(line["span"]["route"], route, "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert!(
            line["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
            "{line}"
        );
        assert_eq!(
            line["span"]["merchant_id"].as_i64(),
            merchant,
            "{what}: {line}"
        );
    }
    // The saga's lines of the create are in the same request span.
    let logs = crate::logs::captured();
    assert!(
        logs.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|l| l["target"] != "paygate::access"
                && spans(&l)
                    .iter()
                    .any(|s| s["name"] == "request" && s["request_id"] == id("create").as_str())),
        "the handler's lines carry the request span"
    );
}
