//! The admin API's notifications across merchants (API.md, "Admin API"):
//! the failed ones listed with their last attempt, and replayed in bulk,
//! by merchant, by time, or one by one, each replay audited. On databases
//! of their own: a replay of "every failed notification" would otherwise
//! reach other tests' rows.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::admin::{TOKEN, admin, audited, field_names, get, post};
use super::app::{TestApp, merchant_with};
use super::notifications::{Answer, MerchantEndpoint, app_notifying_alone, settle_payment};

/// Every notification listed with `query`, all pages, newest first.
async fn listed(app: &TestApp, query: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after: Option<i64> = None;
    loop {
        let path = match after {
            Some(id) => format!("/admin/v1/notifications?limit=2&{query}&starting_after={id}"),
            None => format!("/admin/v1/notifications?limit=2&{query}"),
        };
        let page = get(app, &path).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let items = page.body["notifications"].as_array().unwrap().clone();
        assert!(items.len() <= 2);
        after = items.last().and_then(|n| n["notification_id"].as_i64());
        all.extend(items);
        if page.body["has_more"] != true {
            return all;
        }
    }
}

/// Waits until `query` lists exactly `count` notifications.
async fn wait_listed(app: &TestApp, query: &str, count: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let all = listed(app, query).await;
        if all.len() == count {
            return all;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{query} listed {} notifications, not {count}: {all:?}",
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ids(listed: &[Value]) -> Vec<i64> {
    listed
        .iter()
        .map(|n| n["payment_id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn an_operator_lists_failed_notifications_across_merchants_and_replays_them() {
    // The merchants' endpoint is down for the first five attempts; one
    // attempt each (no retries), so each notification fails at once.
    let endpoint = MerchantEndpoint::start(&[Answer::Status(500); 5]).await;
    let mut app = app_notifying_alone(&endpoint, "replay", |mut c| {
        c.notifier.retry_schedule = Vec::new();
        c
    })
    .await;
    let first = app.merchant.clone();
    let second = merchant_with(&app.merchants, 1000, false, Some(endpoint.url())).await;
    let mut of_first = Vec::new();
    for order in 1..=3 {
        of_first.push(settle_payment(&app, order, "finished").await);
    }
    app.merchant = second.clone();
    let mut of_second = Vec::new();
    for order in 1..=2 {
        of_second.push(settle_payment(&app, order, "failed").await);
    }
    app.merchant = first.clone();

    // All five failed, newest first, across both merchants, each with
    // its merchant and its last attempt; paged by `starting_after`.
    let failed = wait_listed(&app, "status=LOG_FAILED", 5).await;
    let mut expected: Vec<i64> = of_first.iter().chain(&of_second).copied().collect();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids(&failed), expected);
    let notification = failed
        .iter()
        .find(|n| n["payment_id"] == of_second[0])
        .unwrap();
    assert_eq!(notification["merchant_id"], second.merchant_id.get());
    assert_eq!(notification["event_type"], "payment.failed");
    assert_eq!(notification["status"], "LOG_FAILED");
    assert_eq!(notification["attempts"], 1);
    assert_eq!(notification["last_attempt"]["status_code"], 500);
    assert!(notification["event_id"].as_str().unwrap().len() == 36);
    // The default status is LOG_FAILED; one merchant's own.
    let mine = listed(&app, &format!("merchant_id={}", second.merchant_id)).await;
    let mut expected_second = of_second.clone();
    expected_second.reverse();
    assert_eq!(ids(&mine), expected_second);

    // Nothing is queued by a replay scoped to the future.
    let r = post(
        &app,
        "/admin/v1/notifications/retry",
        json!({"since": "2999-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!((r.status, r.body.clone()), (202, json!({"queued": 0})));

    // One merchant's: only its two are delivered, the others stay failed.
    let r = post(
        &app,
        "/admin/v1/notifications/retry",
        json!({"merchant_id": second.merchant_id.get()}),
    )
    .await;
    assert_eq!((r.status, r.body.clone()), (202, json!({"queued": 2})));
    let delivered = wait_listed(
        &app,
        &format!("status=LOG_SUCCESS&merchant_id={}", second.merchant_id),
        2,
    )
    .await;
    assert!(
        delivered
            .iter()
            .all(|n| n["attempts"] == 2 && n["last_attempt"]["status_code"] == 200)
    );
    assert_eq!(ids(&listed(&app, "status=LOG_FAILED").await), {
        let mut e = of_first.clone();
        e.reverse();
        e
    });

    // One row by its id, then it is no longer failed.
    let row = failed
        .iter()
        .find(|n| n["payment_id"] == of_first[0])
        .unwrap();
    let path = format!("/admin/v1/notifications/{}/retry", row["notification_id"]);
    let r = post(&app, &path, json!({})).await;
    assert_eq!((r.status, r.body.clone()), (202, json!({"queued": 1})));
    wait_listed(&app, "status=LOG_FAILED", 2).await;
    let r = post(&app, &path, json!({})).await;
    assert_eq!((r.status, r.code()), (409, "nothing_to_retry"));
    let r = post(
        &app,
        "/admin/v1/notifications/999999999999/retry",
        json!({}),
    )
    .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));

    // The rest, with an empty body; every notification was delivered once
    // more with its own event id, and nothing else arrived.
    let r = admin(
        &app,
        reqwest::Method::POST,
        "/admin/v1/notifications/retry",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!((r.status, r.body.clone()), (202, json!({"queued": 2})));
    wait_listed(&app, "status=LOG_SUCCESS", 5).await;
    assert!(listed(&app, "status=LOG_FAILED").await.is_empty());
    let received = endpoint.received();
    assert_eq!(received.len(), 10, "five failures, then five deliveries");
    for n in &failed {
        let event = n["event_id"].as_str().unwrap();
        let count = received
            .iter()
            .filter(|r| r.headers["webhook-id"] == event)
            .count();
        assert_eq!(count, 2, "{event}");
    }

    // Each replay is in the audit log, by the token's fingerprint.
    let replays = audited(
        &app,
        &format!("notifications:merchant:{}", second.merchant_id),
    )
    .await;
    assert_eq!(replays.len(), 1, "{replays:?}");
    assert_eq!(replays[0]["action"], "notifications.replay");
    assert_eq!(replays[0]["after"], json!({"queued": 2}));
    assert!(replays[0]["actor"].as_str().unwrap().starts_with("token:"));
    let one = audited(&app, &format!("notification:{}", row["notification_id"])).await;
    assert_eq!(one.len(), 1, "{one:?}");
}

#[tokio::test]
async fn the_notification_routes_need_the_token_and_name_what_is_wrong() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = app_notifying_alone(&endpoint, "replaybad", |c| c).await;
    for (method, path) in [
        (reqwest::Method::GET, "/admin/v1/notifications"),
        (reqwest::Method::POST, "/admin/v1/notifications/retry"),
        (reqwest::Method::POST, "/admin/v1/notifications/1/retry"),
    ] {
        for token in [None, Some("wrong-token")] {
            let r = admin(&app, method.clone(), path, token, None).await;
            assert_eq!((r.status, r.code()), (401, "unauthorized"), "{path}");
        }
    }
    let r = get(
        &app,
        "/admin/v1/notifications?status=FAILED&merchant_id=x&limit=101&starting_after=-1",
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
    assert_eq!(
        field_names(&r),
        ["status", "merchant_id", "limit", "starting_after"]
    );
    for (body, field) in [
        (json!({"merchant_id": "7"}), "merchant_id"),
        (json!({"merchant_id": 0}), "merchant_id"),
        (json!({"since": "yesterday"}), "since"),
        (json!({"since": 1700000000}), "since"),
        (json!({"status": "LOG_FAILED"}), "status"),
    ] {
        let r = post(&app, "/admin/v1/notifications/retry", body.clone()).await;
        assert_eq!((r.status, r.code()), (400, "invalid_request"), "{body}");
        assert_eq!(field_names(&r), [field], "{body}");
    }
    let r = post(&app, "/admin/v1/notifications/retry", json!([1])).await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
    let r = post(&app, "/admin/v1/notifications/abc/retry", json!({})).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
}
