//! What an unauthenticated sender can make the webhook routes cost:
//! per-IP and per-alias limits counted in Redis before the verifier runs
//! or anything is stored, and a retention after which the logs database
//! forgets what it received.

use std::time::{Duration, Instant};

use paygate::config::{Retention, WebhookSettings};
use serde_json::json;

use super::app::{LAX_RATE_LIMIT, Reply, TestApp, spawn_app_with};

/// A window no test outlives: a fixed window that ends mid-test would
/// start the count again.
const DAY: Duration = Duration::from_secs(86_400);

/// A host whose webhook limits are `per_ip` and `per_alias` a day, that
/// believes `X-Forwarded-For` from loopback.
async fn limited_app(per_ip: u32, per_alias: u32) -> TestApp {
    spawn_app_with(LAX_RATE_LIMIT, Vec::new(), move |mut c| {
        c.webhooks.per_ip = per_ip;
        c.webhooks.per_alias = per_alias;
        c.webhooks.window = DAY;
        c.rate_limit.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c
    })
    .await
}

/// An unsigned webhook on `path` from `client_ip` (as the trusted proxy
/// forwards it), with request id `request_id`.
async fn webhook_from(app: &TestApp, path: &str, client_ip: &str, request_id: &str) -> Reply {
    let headers = [
        ("content-type", "application/json"),
        ("x-forwarded-for", client_ip),
        ("x-request-id", request_id),
    ];
    let body = json!({"payment_id": 987654321, "status": "finished"});
    app.post_raw(path, None, &headers, body.to_string().into_bytes())
        .await
}

/// The refusal of a limit: 429 `rate_limited` with a `Retry-After`, and
/// nothing recorded (the verifier never ran).
async fn assert_limited(app: &TestApp, reply: &Reply, request_id: &str) {
    assert_eq!(
        (reply.status, reply.code()),
        (429, "rate_limited"),
        "{request_id}: {:?}",
        reply.body
    );
    let wait: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=DAY.as_secs()).contains(&wait), "Retry-After {wait}");
    let logged = app.webhooks.log.verdicts(request_id).await.unwrap();
    assert!(logged.is_empty(), "{request_id} was stored: {logged:?}");
}

const INTERNAL: &str = "/api/v1/payments/webhook";
const STRIPE: &str = "/api/v1/payments/webhook/stripe";

/// Security review, finding 8: the webhook routes had no limit, and each
/// request ran a verifier and stored up to 1 MiB. One client gets
/// `per_ip` webhooks a window over every route; the next is refused before
/// the verifier runs, while other clients go on.
#[tokio::test]
async fn one_client_past_its_webhook_limit_is_refused_before_the_verifier() {
    let app = limited_app(3, 0).await;
    for (i, path) in [INTERNAL, STRIPE, INTERNAL].into_iter().enumerate() {
        let rid = format!("ip-ok-{i}");
        let r = webhook_from(&app, path, "203.0.113.7", &rid).await;
        assert_eq!((r.status, r.code()), (403, "invalid_signature"), "{rid}");
        assert_eq!(app.webhooks.log.verdicts(&rid).await.unwrap().len(), 1);
    }
    for (i, path) in [INTERNAL, STRIPE].into_iter().enumerate() {
        let rid = format!("ip-over-{i}");
        let r = webhook_from(&app, path, "203.0.113.7", &rid).await;
        assert_limited(&app, &r, &rid).await;
    }
    // Another client behind the same proxy has its own count.
    let r = webhook_from(&app, STRIPE, "203.0.113.8", "ip-other").await;
    assert_eq!((r.status, r.code()), (403, "invalid_signature"));
}

/// An alias gets `per_alias` webhooks a window whoever sends them; the
/// next is refused, and other routes are not.
#[tokio::test]
async fn an_alias_past_its_webhook_limit_is_refused_whoever_sends() {
    let app = limited_app(0, 2).await;
    for (i, ip) in ["198.51.100.1", "198.51.100.2"].into_iter().enumerate() {
        let rid = format!("alias-ok-{i}");
        let r = webhook_from(&app, STRIPE, ip, &rid).await;
        assert_eq!((r.status, r.code()), (403, "invalid_signature"), "{rid}");
    }
    let r = webhook_from(&app, STRIPE, "198.51.100.3", "alias-over").await;
    assert_limited(&app, &r, "alias-over").await;
    let r = webhook_from(&app, INTERNAL, "198.51.100.3", "alias-internal").await;
    assert_eq!((r.status, r.code()), (403, "invalid_signature"));
    // An alias nothing is bound to is still simply not found.
    let r = webhook_from(&app, "/api/v1/payments/webhook/nosuch", "198.51.100.3", "x").await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
}

/// Received webhooks older than `PAYGATE_WEBHOOK_LOG_RETENTION` are purged
/// in the background; younger ones stay.
#[tokio::test]
async fn webhooks_older_than_the_retention_are_purged() {
    let app = spawn_app_with(LAX_RATE_LIMIT, Vec::new(), |mut c| {
        c.webhooks = WebhookSettings {
            log_retention: Retention::For(Duration::from_secs(3600)),
            log_purge_every: Duration::from_millis(100),
            ..c.webhooks
        };
        c
    })
    .await;
    let old = format!("purge-old-{}", uuid::Uuid::new_v4());
    let young = format!("purge-young-{}", uuid::Uuid::new_v4());
    for (request_id, age) in [(&old, "2 hours"), (&young, "30 minutes")] {
        sqlx::query(
            "INSERT INTO inbound_webhooks (request_id, path, headers, body, verdict, received_at)
             VALUES ($1, '/api/v1/payments/webhook', '{}', '\\x00', 'valid', now() - $2::interval)",
        )
        .bind(request_id)
        .bind(age)
        .execute(&app.dbs.logs)
        .await
        .unwrap();
    }
    let started = Instant::now();
    while !app.webhooks.log.verdicts(&old).await.unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the old webhook was never purged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.webhooks.log.verdicts(&young).await.unwrap().len(), 1);
}
