//! Redis stopped and started again: `/health` says so, rate limiting and the
//! circuit breaker follow their `*_ON_REDIS_DOWN` settings, and the host
//! uses Redis again once it is back, without a restart.

use std::time::{Duration, Instant};

use paygate::OrderId;
use paygate::config::RedisDownPolicy;

use super::broker::health_of;
use super::services::{PrivateRedis, wait_until};
use crate::api::app::{LAX_RATE_LIMIT, Reply, TestApp, spawn_app_with};
use crate::api::notifications::provider_webhook;

const EVENTUALLY: Duration = Duration::from_secs(60);

/// A host whose Redis is `redis`, with the given policies.
async fn app_on(
    redis: &PrivateRedis,
    rate_limit: RedisDownPolicy,
    circuit: RedisDownPolicy,
) -> TestApp {
    let url = redis.url();
    spawn_app_with(LAX_RATE_LIMIT, Vec::new(), move |mut c| {
        c.redis_url = url;
        c.rate_limit.on_redis_down = rate_limit;
        c.circuit.on_redis_down = circuit;
        c
    })
    .await
}

fn limited(reply: &Reply) -> bool {
    reply.headers.contains_key("ratelimit-limit")
}

async fn list(app: &TestApp) -> Reply {
    app.get("/api/v1/payments", Some(&app.merchant.read_api_key.clone()))
        .await
}

/// Polls until the rate limiter counts again (its headers are back).
async fn counting_again(app: &TestApp) -> Duration {
    wait_until("rate limiting counting again", EVENTUALLY, || async {
        limited(&list(app).await)
    })
    .await
}

#[tokio::test]
async fn with_redis_down_payments_go_on_when_fail_open_and_recover() {
    use RedisDownPolicy::Open;
    let mut redis = PrivateRedis::start().await;
    let app = app_on(&redis, Open, Open).await;
    let up = app.create(&app.body(1)).await;
    assert_eq!(up.status, 200, "{:?}", up.body);
    assert!(limited(&up), "the policy counts while Redis is up");

    redis.stop().await;
    assert_eq!(health_of(&app, "redis").await, "failing");
    assert_eq!(health_of(&app, "postgres").await, "ok");
    // Neither the rate limiter nor the circuit breaker stands in the way;
    // with nothing counted, no RateLimit headers are promised.
    let down = app.create(&app.body(2)).await;
    assert_eq!(down.status, 200, "{:?}", down.body);
    assert!(!limited(&down), "{:?}", down.headers);
    let id = down.body["payment_id"].as_i64().unwrap();
    assert_eq!(
        provider_webhook(&app.url, &app.client, id, "finished").await,
        200
    );
    assert_eq!(list(&app).await.status, 200);
    assert_eq!(app.tokens_used().await, 2);

    redis.resume().await;
    let back = Instant::now();
    // /health's PING goes through the circuit breaker's connection.
    wait_until("health reporting Redis again", EVENTUALLY, || async {
        health_of(&app, "redis").await == "ok"
    })
    .await;
    let counting = counting_again(&app).await;
    println!(
        "Redis back: health ok and rate limiting counting again {:?} after it served",
        back.elapsed().max(counting)
    );
    let after = app.create(&app.body(3)).await;
    assert_eq!(after.status, 200, "{:?}", after.body);
    assert!(limited(&after));
}

#[tokio::test]
async fn with_redis_down_fail_closed_refuses_cleanly_and_recovers() {
    use RedisDownPolicy::{Closed, Open};
    let mut redis = PrivateRedis::start().await;
    // One host refuses on the rate limiter, the other on the circuit breaker.
    let rate_closed = app_on(&redis, Closed, Open).await;
    let circuit_closed = app_on(&redis, Open, Closed).await;
    for app in [&rate_closed, &circuit_closed] {
        assert_eq!(app.create(&app.body(1)).await.status, 200);
    }

    redis.stop().await;
    for app in [&rate_closed, &circuit_closed] {
        assert_eq!(health_of(app, "redis").await, "failing");
        let refused = app.create(&app.body(2)).await;
        assert_eq!(
            (refused.status, refused.code()),
            (503, "service_unavailable"),
            "{:?}",
            refused.body
        );
        assert_eq!(refused.headers["retry-after"], "1");
        // Refused before anything was written or charged.
        let stored = app
            .payment_store
            .payment_for_order(app.merchant.merchant_id, OrderId::new(2))
            .await
            .unwrap();
        assert_eq!(stored, None);
        assert_eq!(app.tokens_used().await, 1);
    }
    // Closed rate limiting refuses every merchant route; a closed circuit
    // only what would call a provider.
    let read = list(&rate_closed).await;
    assert_eq!((read.status, read.code()), (503, "service_unavailable"));
    assert_eq!(list(&circuit_closed).await.status, 200);
    // The webhook limits follow the rate limiter's setting: counted in
    // Redis or not at all, a webhook is refused before its verifier runs
    // when closed, and goes on unlimited when open.
    let (rate, circuit) = (&rate_closed, &circuit_closed);
    let hook = provider_webhook(&rate.url, &rate.client, 987654321, "finished").await;
    assert_eq!(hook, 503);
    let hook = provider_webhook(&circuit.url, &circuit.client, 987654321, "finished").await;
    assert_eq!(hook, 200);

    redis.resume().await;
    let back = Instant::now();
    for app in [&rate_closed, &circuit_closed] {
        let mut order = 2;
        wait_until("payments created again", EVENTUALLY, || {
            order += 1;
            let body = app.body(order);
            async move { app.create(&body).await.status == 200 }
        })
        .await;
    }
    println!(
        "Redis back: both hosts creating payments again {:?} after it served",
        back.elapsed()
    );
    assert!(limited(&list(&rate_closed).await));
}
