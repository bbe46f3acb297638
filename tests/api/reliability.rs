//! Provider failures: stored as failed and free of charge, the circuit
//! breaker, and an idempotency key while its first request still runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

use super::app::{LAX_RATE_LIMIT, TestApp, bind, spawn_app_with};
use crate::helpers::FakeServer;

/// An app with alias `flaky` served by the sandbox adapter against `fake`.
async fn app_with_provider(fake: &FakeServer) -> TestApp {
    let spec = format!(
        "allowed_hosts = [\"{}\"]\n[config]\nbase-url = \"{}\"\n",
        fake.addr,
        fake.url()
    );
    let app = spawn_app_with(
        LAX_RATE_LIMIT,
        vec![("flaky", "sandbox_adapter", spec)],
        |c| c,
    )
    .await;
    bind(&app.providers, "flaky", "flaky").await;
    app
}

/// A provider that answers every payment link after `delay`.
pub(super) async fn slow_provider(delay: Duration) -> FakeServer {
    FakeServer::start(Router::new().route(
        "/payment-links",
        post(move || async move {
            tokio::time::sleep(delay).await;
            (
                StatusCode::CREATED,
                r#"{"id":"pl_slow","payment_url":"http://pay.invalid/pl_slow"}"#,
            )
        }),
    ))
    .await
}

/// A provider that fails with 503 while `failing` is set.
async fn switchable_provider(failing: Arc<AtomicBool>) -> FakeServer {
    FakeServer::start(Router::new().route(
        "/payment-links",
        post(move || {
            let failing = failing.clone();
            async move {
                if failing.load(Ordering::SeqCst) {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        r#"{"error":{"message":"down"}}"#,
                    )
                } else {
                    (
                        StatusCode::CREATED,
                        r#"{"id":"pl_ok","payment_url":"http://pay.invalid/pl_ok"}"#,
                    )
                }
            }
        }),
    ))
    .await
}

fn flaky(app: &TestApp, order: i64) -> serde_json::Value {
    let mut body = app.body(order);
    body["alias"] = json!("flaky");
    body
}

#[tokio::test]
async fn provider_failure_stores_a_failed_payment_and_charges_nothing() {
    let fake = switchable_provider(Arc::new(AtomicBool::new(true))).await;
    let app = app_with_provider(&fake).await;
    let r = app.create(&flaky(&app, 1)).await;
    assert_eq!(
        (r.status, r.code()),
        (502, "provider_error"),
        "{:?}",
        r.body
    );
    let id = r.body["payment_id"].as_i64().unwrap();
    let shown = app
        .get(
            &format!("/api/v1/payments/{id}/show"),
            Some(&app.merchant.read_api_key.clone()),
        )
        .await;
    assert_eq!(shown.body["status"], "PAYMENT_FAILED");
    assert_eq!(app.tokens_used().await, 0);
}

#[tokio::test]
async fn circuit_opens_after_consecutive_failures_and_a_probe_closes_it() {
    let failing = Arc::new(AtomicBool::new(true));
    let fake = switchable_provider(failing.clone()).await;
    let app = app_with_provider(&fake).await;
    // Threshold 3 in test settings.
    for order in 1..=3 {
        assert_eq!(app.create(&flaky(&app, order)).await.status, 502);
    }
    let calls_before = fake.requests().len();
    let open = app.create(&flaky(&app, 4)).await;
    assert_eq!((open.status, open.code()), (503, "provider_unavailable"));
    assert!(open.headers.contains_key("retry-after"));
    assert_eq!(
        fake.requests().len(),
        calls_before,
        "an open circuit must not call the provider"
    );
    assert_eq!(app.tokens_used().await, 0);
    // Operators see it open (or, on a slow machine, past its 500 ms
    // cooldown already), with its failures, in the admin API.
    let circuit = circuit_of(&app, "flaky").await;
    assert!(circuit["failures"].as_u64().unwrap() >= 3, "{circuit}");
    match circuit["state"].as_str() {
        Some("open") => assert!(circuit["retry_in_ms"].as_u64().is_some(), "{circuit}"),
        state => assert_eq!(state, Some("half-open"), "{circuit}"),
    }

    // After the cooldown one probe goes through; its success closes the circuit.
    failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(circuit_of(&app, "flaky").await["state"], "half-open");
    assert_eq!(app.create(&flaky(&app, 5)).await.status, 200);
    assert_eq!(app.create(&flaky(&app, 6)).await.status, 200);
    let circuit = circuit_of(&app, "flaky").await;
    assert_eq!(
        (&circuit["state"], &circuit["failures"]),
        (&json!("closed"), &json!(0))
    );
}

#[tokio::test]
async fn a_success_resets_the_failures_counted_before_it() {
    // A success on a breaker with no failure counted skips its reset (no
    // round trip); one after failures must still reset them, or failures
    // apart would add up to an open circuit.
    let failing = Arc::new(AtomicBool::new(false));
    let fake = switchable_provider(failing.clone()).await;
    let app = app_with_provider(&fake).await;
    assert_eq!(app.create(&flaky(&app, 1)).await.status, 200);
    let mut order = 2;
    for _ in 0..2 {
        failing.store(true, Ordering::SeqCst);
        for _ in 0..2 {
            assert_eq!(app.create(&flaky(&app, order)).await.status, 502);
            order += 1;
        }
        assert_eq!(circuit_of(&app, "flaky").await["failures"], 2);
        failing.store(false, Ordering::SeqCst);
        assert_eq!(app.create(&flaky(&app, order)).await.status, 200);
        order += 1;
        let circuit = circuit_of(&app, "flaky").await;
        assert_eq!(
            (&circuit["state"], &circuit["failures"]),
            (&json!("closed"), &json!(0))
        );
    }
}

/// The circuit of `alias` as `GET /admin/v1/providers` shows it.
async fn circuit_of(app: &TestApp, alias: &str) -> Value {
    let listed = super::admin::get(app, "/admin/v1/providers").await;
    let providers = listed.body["providers"].as_array().unwrap();
    (providers.iter())
        .find(|p| p["alias"] == alias)
        .unwrap_or_else(|| panic!("{alias} not listed: {:?}", listed.body))["circuit"]
        .clone()
}

#[tokio::test]
async fn a_key_whose_first_request_still_runs_is_refused() {
    let slow = slow_provider(Duration::from_millis(1500)).await;
    let app = app_with_provider(&slow).await;
    let mut body = flaky(&app, 1);
    body["event_id"] = json!("evt_slow");
    let first = app.spawn_create(&body);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = app.create(&body).await;
    assert_eq!((second.status, second.code()), (409, "request_in_progress"));
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
    let replay = app.create(&body).await;
    assert_eq!(replay.status, 200);
    assert_eq!(app.tokens_used().await, 1);
    assert_eq!(
        slow.requests().len(),
        1,
        "the provider is called once per key"
    );
}

#[tokio::test]
async fn concurrent_acquires_share_a_script_call_and_a_half_open_circuit_lets_one_probe_through() {
    use paygate::BatchStats;
    use paygate::config::{CircuitSettings, RedisDownPolicy};
    use paygate::providers::{CircuitBreaker, CircuitState};

    let prefix = format!(
        "paygate-test-cb-{}-{}:",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // `closed` has counted two failures; `half-open` opened and its cooldown
    // is over; `open` refuses for another minute.
    let set = |alias: &str, fields: &[(&str, u64)]| {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(format!("{prefix}cb:{alias}"));
        for (field, value) in fields {
            cmd.arg(field).arg(value);
        }
        cmd
    };
    for cmd in [
        set("closed", &[("failures", 2)]),
        set("half-open", &[("failures", 3), ("open_until", now_ms - 1)]),
        set("open", &[("failures", 3), ("open_until", now_ms + 60_000)]),
    ] {
        let () = cmd.query_async(&mut conn).await.unwrap();
    }
    let stats = BatchStats::default();
    let settings = CircuitSettings {
        failure_threshold: 3,
        cooldown: Duration::from_secs(30),
        on_redis_down: RedisDownPolicy::Closed,
    };
    let breaker = CircuitBreaker::new(conn.clone(), &prefix, settings, stats.clone());

    // 48 calls at once, the three aliases in turn: the test's one thread
    // queues every acquire before the sending task runs.
    let aliases = ["closed", "half-open", "open"];
    let states = futures_util::future::join_all(
        (0..48).map(|i| breaker.acquire(aliases[i % aliases.len()])),
    )
    .await;
    let calls = stats.calls.get();
    assert!(
        calls <= 2 && stats.asks.get() == 48,
        "48 acquires in {calls} script calls: the concurrent ones were not batched"
    );
    for (i, state) in states.iter().enumerate() {
        let expected = match (aliases[i % aliases.len()], i) {
            ("closed", _) => matches!(state, CircuitState::Closed),
            // The first ask that found it half-open is the probe, and the
            // only one: the others wait out the probe's time.
            ("half-open", 1) => matches!(state, CircuitState::Probe),
            ("half-open", _) => matches!(
                state,
                CircuitState::Open { retry_after } if *retry_after > Duration::from_secs(29)
            ),
            _ => matches!(
                state,
                CircuitState::Open { retry_after }
                    if *retry_after > Duration::from_secs(50)
                        && *retry_after <= Duration::from_secs(60)
            ),
        };
        assert!(expected, "ask {i} got {state:?}");
    }
    // A later call finds the probe still out.
    assert!(matches!(
        breaker.acquire("half-open").await,
        CircuitState::Open { .. }
    ));
    let keys: Vec<String> = aliases.iter().map(|a| format!("{prefix}cb:{a}")).collect();
    let _: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}
