//! RabbitMQ restarted while payments finish: every notification reaches the
//! merchant exactly once, and delivery resumes soon after the broker is back.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::load;
use super::services::{PrivateRabbit, wait_until};
use crate::api::app::{LAX_RATE_LIMIT, TestApp, isolated, merchant_with, spawn_app_with};
use crate::api::notifications::{MerchantEndpoint, assert_each_delivered_once};

/// "Eventually", for delivery after the broker is back.
const EVENTUALLY: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_broker_restarted_under_load_loses_and_repeats_nothing() {
    let mut broker = PrivateRabbit::start().await;
    let endpoint = MerchantEndpoint::start(&[]).await;
    let (databases, namespace) = isolated("brokerfault").await;
    let amqp = broker.url();
    let mut app = spawn_app_with(LAX_RATE_LIMIT, Vec::new(), move |mut c| {
        c.databases = databases;
        c.outbox.namespace = namespace;
        c.rabbitmq_url = amqp;
        c
    })
    .await;
    app.merchant = merchant_with(&app.merchants, 10_000, false, Some(endpoint.url())).await;

    let stop = CancellationToken::new();
    let traffic = load::generate(&app, 2, Duration::from_millis(50), stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A clean stop and start, as an upgrade or a service restart does it.
    broker.stop().await;
    assert_eq!(health_of(&app, "rabbitmq").await, "failing");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    broker.resume().await;
    report("clean restart", started, resumed(&endpoint).await);

    // A crash: the VM killed, its queues recovered from disk.
    tokio::time::sleep(Duration::from_secs(1)).await;
    broker.kill().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    broker.resume().await;
    report("crash", started, resumed(&endpoint).await);

    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let outcomes = traffic.await.unwrap();
    assert!(
        outcomes.refused.is_empty(),
        "payments and webhooks need no broker: {:?}",
        outcomes.refused
    );
    let all = wait_until("every notification delivered", EVENTUALLY, || async {
        delivered(&app).await == outcomes.finished.len() as i64
    })
    .await;
    println!(
        "{} payments finished across two broker restarts; the last delivered {all:?} after the traffic stopped",
        outcomes.finished.len()
    );
    assert_eq!(health_of(&app, "rabbitmq").await, "ok");
    let mut ids = outcomes.finished;
    ids.sort();
    assert_each_delivered_once(&app, &endpoint, &ids).await;
}

/// Once the broker serves again: until the merchant receives a
/// notification it had not yet received.
async fn resumed(endpoint: &MerchantEndpoint) -> Duration {
    let before = endpoint.received().len();
    wait_until("delivery resuming", EVENTUALLY, || async {
        endpoint.received().len() > before
    })
    .await
}

fn report(what: &str, started: Instant, resumed_after: Duration) {
    println!(
        "broker {what}: serving again after {:?}; first notification delivered {resumed_after:?} later",
        started.elapsed() - resumed_after
    );
}

/// Notifications of the app's payments delivered so far.
async fn delivered(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE status = 'LOG_SUCCESS'")
        .fetch_one(&app.dbs.payments)
        .await
        .unwrap()
}

/// What `/health` says of one check.
pub async fn health_of(app: &TestApp, check: &str) -> String {
    let health = app.get("/health", None).await;
    let state = health.body["checks"][check].as_str().unwrap_or_default();
    let expected_status = if health.body["status"] == "ok" {
        200
    } else {
        503
    };
    assert_eq!(health.status, expected_status, "{:?}", health.body);
    state.to_owned()
}
