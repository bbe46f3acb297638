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

/// `/livez` asks no backend: it answers while the broker is down, where
/// `/readyz` (the deep check) names it.
#[tokio::test]
async fn liveness_touches_no_backend_and_readiness_is_the_deep_check() {
    let app = spawn_app_with(LAX_RATE_LIMIT, Vec::new(), |mut c| {
        c.rabbitmq_url = "amqp://guest:guest@127.0.0.1:1/%2f".into();
        c
    })
    .await;
    let live = app.get("/livez", None).await;
    assert_eq!(
        (live.status, &live.body),
        (200, &serde_json::json!({"status": "ok"}))
    );
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.body["checks"]["rabbitmq"], "failing");
}

/// Security review, finding 14: `/health` is unauthenticated and asked
/// every backend on every request, so a flood of it was a flood on
/// PostgreSQL, Redis and RabbitMQ. Now concurrent and back-to-back
/// requests share one round of checks a second.
#[tokio::test]
async fn a_flood_of_health_requests_asks_the_backends_a_few_times() {
    let app = spawn_app().await;
    let flood = std::time::Instant::now();
    let requests: Vec<_> = (0..200)
        .map(|_| {
            let (client, url) = (app.client.clone(), format!("{}/health", app.url));
            tokio::spawn(async move { client.get(url).send().await.unwrap().status() })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), 200);
    }
    let lasted = flood.elapsed().as_secs();
    let rounds = app
        .metric("paygate_health_checks_total")
        .await
        .expect("the health checks are counted");
    // At most one round per second the flood lasted, however slow the
    // machine (and one more for the second it began in).
    assert!(
        (1..=lasted + 1).contains(&rounds),
        "{rounds} rounds of checks for 200 requests in {lasted} s"
    );
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
        .env("PAYGATE_PAYMENTS_DATABASE_URL", db("payments"))
        .env("PAYGATE_MERCHANTS_DATABASE_URL", db("merchants"))
        .env("PAYGATE_PROVIDERS_DATABASE_URL", db("providers"))
        .env("PAYGATE_LOGS_DATABASE_URL", db("logs"))
        .env("PAYGATE_SECRETS_KEY", paygate::config::TEST_SECRETS_KEY)
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

/// Secrets written before sealing are read as they are, and
/// `paygate merchants reseal` seals them under the current key.
#[tokio::test]
async fn merchants_reseal_seals_secrets_written_before_sealing() {
    let app = spawn_app().await;
    let merchant = super::app::new_merchant(&app.merchants, 1, false).await;
    let id = merchant.merchant_id.get();
    sqlx::query("UPDATE merchants SET webhook_secret = 'whsec_from_before' WHERE id = $1")
        .bind(id)
        .execute(&app.dbs.merchants)
        .await
        .unwrap();
    let legacy = app
        .merchants
        .webhook_secret(merchant.merchant_id)
        .await
        .unwrap();
    assert_eq!(legacy.unwrap().expose(), "whsec_from_before");

    let (ok, resealed) = paygate(&["merchants", "reseal"]).await;
    assert!(ok && resealed["resealed"].as_u64() >= Some(1), "{resealed}");
    let stored: String = sqlx::query_scalar("SELECT webhook_secret FROM merchants WHERE id = $1")
        .bind(id)
        .fetch_one(&app.dbs.merchants)
        .await
        .unwrap();
    assert!(stored.starts_with("sealed:v1:"), "{stored}");
    let opened = app
        .merchants
        .webhook_secret(merchant.merchant_id)
        .await
        .unwrap();
    assert_eq!(opened.unwrap().expose(), "whsec_from_before");
}

/// Issue 14: a stop waits for requests in flight at most
/// `PAYGATE_SHUTDOWN_TIMEOUT`, then cuts them, rather than waiting for the
/// longest request deadline.
#[tokio::test]
async fn a_stop_cuts_what_is_still_in_flight_at_the_drain_deadline() {
    let mut app = spawn_app_with(LAX_RATE_LIMIT, Vec::new(), |mut c| {
        c.http.body = Duration::from_secs(300);
        c.http.request = Duration::from_secs(300);
        c.http.drain = Duration::from_secs(1);
        c
    })
    .await;
    // A request whose body never comes: it would hold the stop for 300 s.
    let addr = app.url.trim_start_matches("http://").to_owned();
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut stalled,
        b"POST /api/v1/payments HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    app.shutdown.cancel();
    let server = app.server.take().unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(60), server).await;
    assert!(stopped.is_ok(), "the stop waited past the drain deadline");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut stalled, &mut rest),
    )
    .await;
    assert!(read.is_ok(), "the stalled connection was cut");
}
