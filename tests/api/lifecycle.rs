//! Health when a backing service is down, graceful shutdown, and the
//! `paygate` command's merchant management.

use std::time::Duration;

use serde_json::{Value, json};

use super::app::{LAX_RATE_LIMIT, bind, spawn_app, spawn_app_with};
use super::reliability::slow_provider;

#[tokio::test]
async fn health_names_the_failing_service() {
    let app = spawn_app_with(LAX_RATE_LIMIT, Vec::new(), |mut c| {
        c.rabbitmq_url = "amqp://guest:guest@127.0.0.1:1/%2f".into();
        c
    })
    .await;
    let r = app.get("/health", None).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["checks"]["rabbitmq"], "failing");
    assert_eq!(r.body["checks"]["postgres"], "ok");
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_then_stops() {
    let slow = slow_provider(Duration::from_millis(800)).await;
    let spec = format!(
        "allowed_hosts = [\"{}\"]\n[config]\nbase-url = \"{}\"\n",
        slow.addr,
        slow.url()
    );
    let mut app = spawn_app_with(
        LAX_RATE_LIMIT,
        vec![("slowpay", "sandbox_adapter", spec)],
        |c| c,
    )
    .await;
    bind(&app.providers, "slowpay", "slowpay").await;
    let mut body = app.body(1);
    body["alias"] = json!("slowpay");
    let in_flight = app.spawn_create(&body);
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.shutdown.cancel();
    let answered = in_flight
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(answered.status(), 200);
    let server = app.server.take().unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
    assert!(
        reqwest::get(format!("{}/health", app.url)).await.is_err(),
        "no new connections after shutdown"
    );
}

/// Runs the built `paygate` binary against this process's test databases.
async fn paygate(args: &[&str]) -> (bool, Value) {
    let app = spawn_app().await; // makes sure the databases exist and are migrated
    drop(app);
    let db = |name: &str| {
        format!(
            "postgres://postgres@127.0.0.1:5432/paygate_test_{}_{name}",
            std::process::id()
        )
    };
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_paygate"))
        .args(args)
        .env("PAYMENTS_DATABASE_URL", db("payments"))
        .env("MERCHANTS_DATABASE_URL", db("merchants"))
        .env("PROVIDERS_DATABASE_URL", db("providers"))
        .env("LOGS_DATABASE_URL", db("logs"))
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    (
        out.status.success(),
        serde_json::from_str(&stdout).unwrap_or(Value::String(stdout.into_owned())),
    )
}

#[tokio::test]
async fn merchants_command_creates_revokes_and_rotates_keys() {
    let (ok, created) = paygate(&[
        "merchants",
        "create",
        "--name",
        "CLI shop",
        "--tokens",
        "5",
        "--require-signed-writes",
    ])
    .await;
    assert!(ok, "{created}");
    for field in ["merchant_id", "subscription_id"] {
        assert!(
            created[field].as_i64().is_some_and(|v| v > 0),
            "{field}: {created}"
        );
    }
    let key = created["api_key"].as_str().unwrap();
    assert!(key.starts_with("pk_") && created["read_api_key"].as_str().unwrap().starts_with("rk_"));
    assert!(
        created["webhook_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    assert!(created["request_signing_secret"].is_string());

    let (ok, _) = paygate(&["merchants", "revoke-key", key]).await;
    assert!(ok);
    let (ok, _) = paygate(&["merchants", "revoke-key", key]).await;
    assert!(!ok, "revoking twice is refused");
    let id = created["merchant_id"].as_i64().unwrap().to_string();
    let (ok, rotated) = paygate(&["merchants", "rotate-key", &id]).await;
    assert!(
        ok && rotated["api_key"].as_str().unwrap().starts_with("pk_"),
        "{rotated}"
    );
    let (ok, _) = paygate(&["merchants", "rotate-key", "999999999"]).await;
    assert!(!ok);
}
