//! PostgreSQL stopped for a few seconds under load: the API answers 503
//! `service_unavailable` (never a 500), nothing is left half written, and
//! the API, the outbox producer and the notifier carry on once it is back.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::broker::health_of;
use super::load;
use super::services::{PrivatePostgres, wait_until};
use crate::api::app::{LAX_RATE_LIMIT, Reply, TestApp, merchant_with, spawn_app_with};
use crate::api::notifications::{MerchantEndpoint, assert_each_delivered_once, provider_webhook};

const EVENTUALLY: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_database_outage_answers_503_leaves_nothing_half_written_and_recovers() {
    let cluster = PrivatePostgres::start().await;
    let endpoint = MerchantEndpoint::start(&[]).await;
    let databases = cluster.urls();
    let namespace = format!("paygate_test_{}_pgfault.", std::process::id());
    let mut app = spawn_app_with(LAX_RATE_LIMIT, Vec::new(), move |mut c| {
        c.databases = databases;
        c.outbox.namespace = namespace;
        c
    })
    .await;
    app.merchant = merchant_with(&app.merchants, 10_000, false, Some(endpoint.url())).await;

    let stop = CancellationToken::new();
    let traffic = load::generate(&app, 6, Duration::from_millis(20), stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;

    cluster.stop().await;
    let (body, read_key) = (app.body(100_000_000), app.merchant.read_api_key.clone());
    let (health, create, show) = tokio::join!(
        health_of(&app, "postgres"),
        app.create(&body),
        app.get("/api/v1/payments/1/show", Some(&read_key)),
    );
    assert_eq!(health, "failing");
    for refused in [&create, &show] {
        assert_unavailable(refused);
    }
    // Longer than a request waits for a connection, so the traffic meets
    // refusals, not only delays.
    tokio::time::sleep(Duration::from_secs(2)).await;

    cluster.resume().await;
    let back = Instant::now();
    let mut order = 100_000_000;
    wait_until("payments created again", EVENTUALLY, || {
        order += 1;
        let body = app.body(order);
        let app = &app;
        async move { app.create(&body).await.status == 200 }
    })
    .await;
    println!(
        "PostgreSQL back: payments created again {:?} after it accepted connections",
        back.elapsed()
    );
    assert_eq!(health_of(&app, "postgres").await, "ok");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let outcomes = traffic.await.unwrap();
    println!(
        "traffic: {} payments created, {} refusals",
        outcomes.created.len(),
        outcomes.refused.len()
    );
    assert!(!outcomes.refused.is_empty(), "the outage met no request");
    for (what, status, code) in &outcomes.refused {
        assert_eq!(*status, 503, "{what}: {code}");
        if *what == "create" {
            assert_eq!(code, "service_unavailable", "{what}");
        }
    }

    // The provider sends the webhooks the outage refused again.
    for id in &outcomes.unfinished {
        assert_eq!(
            provider_webhook(&app.url, &app.client, *id, "finished").await,
            200
        );
    }
    let mut finished = [outcomes.finished, outcomes.unfinished].concat();
    finished.sort();
    let all = wait_until("every notification delivered", EVENTUALLY, || async {
        scalar(
            &app,
            "SELECT count(*) FROM outbox WHERE status = 'LOG_SUCCESS'",
        )
        .await
            == finished.len() as i64
    })
    .await;
    println!("the last notification delivered {all:?} after the traffic stopped");
    assert_each_delivered_once(&app, &endpoint, &finished).await;
    assert_nothing_half_written(&app).await;
}

fn assert_unavailable(reply: &Reply) {
    assert_eq!(
        (reply.status, reply.code()),
        (503, "service_unavailable"),
        "{:?}",
        reply.body
    );
    assert!(reply.headers.contains_key("retry-after"));
}

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&app.dbs.payments)
        .await
        .unwrap()
}

/// Every payment has its timeline and, once finished, its outbox row; the
/// quota charged is the payments that were not refused by their provider.
async fn assert_nothing_half_written(app: &TestApp) {
    let without_timeline = scalar(
        app,
        "SELECT count(*) FROM payments p WHERE NOT EXISTS
           (SELECT 1 FROM payment_logs l WHERE l.payment_id = p.id AND l.event_type = 'EVENT_PAYMENT_CREATED')",
    )
    .await;
    assert_eq!(
        without_timeline, 0,
        "payments without their first timeline row"
    );
    let finished_without_outbox = scalar(
        app,
        "SELECT count(*) FROM payments p WHERE status = 'PAYMENT_FINISHED' AND NOT EXISTS
           (SELECT 1 FROM outbox o WHERE o.payment_id = p.id)",
    )
    .await;
    assert_eq!(
        finished_without_outbox, 0,
        "finished payments without a notification"
    );
    let charged = scalar(
        app,
        "SELECT count(*) FROM payments WHERE status <> 'PAYMENT_FAILED'",
    )
    .await;
    assert_eq!(
        app.tokens_used().await,
        charged,
        "quota tokens against payments"
    );
}
