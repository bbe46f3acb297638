//! Creating, listing, showing and tracking payments; idempotency and quota.

use serde_json::json;

use paygate::OrderId;
use paygate::merchants::Take;
use paygate::payments::store::Inserted;

use super::app::{new_merchant, new_payment, reply, spawn_app};

#[tokio::test]
async fn create_show_list_and_track_a_payment() {
    let app = spawn_app().await;
    let created = app.create(&app.body(123)).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    assert_eq!(created.body["status"], "PAYMENT_PENDING");
    let id = created.body["payment_id"].as_i64().unwrap();
    let url = created.body["payment_url"].as_str().unwrap();
    assert!(url.starts_with(&app.sandbox_url), "{url}");

    // The payment page is the sandbox's, with its Pay button.
    let page = reqwest::get(url).await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"pay\""), "{page}");

    let read = app.merchant.read_api_key.clone();
    let shown = app
        .get(&format!("/api/v1/payments/{id}/show"), Some(&read))
        .await;
    assert_eq!(shown.status, 200);
    let p = &shown.body;
    assert_eq!(
        (p["payment_id"].as_i64(), p["order_id"].as_i64()),
        (Some(id), Some(123))
    );
    assert_eq!(
        (
            p["provider"].as_str(),
            p["amount"].as_str(),
            p["price"].as_str()
        ),
        (Some("sandbox"), Some("1"), Some("10.00"))
    );
    assert_eq!(
        (p["currency"].as_str(), p["status"].as_str()),
        (Some("EUR"), Some("PAYMENT_PENDING"))
    );
    assert!(p["created_at"].as_str().unwrap().ends_with('Z'));

    let listed = app
        .get("/api/v1/payments?page=1&limit=20", Some(&read))
        .await;
    assert_eq!(listed.body["total"], 1);
    assert_eq!(listed.body["has_next"], false);
    assert_eq!(listed.body["items"][0]["payment_id"].as_i64(), Some(id));

    let tracked = app
        .get(&format!("/api/v1/payments/{id}/tracking"), Some(&read))
        .await;
    assert_eq!(tracked.body["payment_status"], "PAYMENT_PENDING");
    assert_eq!(
        app.timeline_types(id).await,
        ["EVENT_PAYMENT_CREATED", "EVENT_PROVIDER_REQUEST_SENT"]
    );
    assert_eq!(app.tokens_used().await, 1);
}

#[tokio::test]
async fn stripe_alias_works_against_the_sandbox() {
    let app = spawn_app().await;
    let mut body = app.body(5);
    body["alias"] = json!("stripe");
    let created = app.create(&body).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    assert!(
        created.body["payment_url"]
            .as_str()
            .unwrap()
            .contains("/pay/cs_test_")
    );
}

#[tokio::test]
async fn list_pages_newest_first_and_only_own_payments() {
    let app = spawn_app().await;
    for order in 1..=5 {
        assert_eq!(app.create(&app.body(order)).await.status, 200);
    }
    let read = app.merchant.read_api_key.clone();
    let page = app
        .get("/api/v1/payments?page=2&limit=2", Some(&read))
        .await;
    assert_eq!(
        (
            page.body["page"].as_i64(),
            page.body["limit"].as_i64(),
            page.body["total"].as_i64()
        ),
        (Some(2), Some(2), Some(5))
    );
    assert_eq!(page.body["has_next"], true);
    let orders: Vec<i64> = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["order_id"].as_i64().unwrap())
        .collect();
    assert_eq!(orders, [3, 2]);

    let other = new_merchant(&app.merchants, 10, false).await;
    let theirs = app.get("/api/v1/payments", Some(&other.read_api_key)).await;
    assert_eq!(theirs.body["total"], 0);
}

#[tokio::test]
async fn same_key_same_body_replays_without_a_second_charge() {
    let app = spawn_app().await;
    let mut body = app.body(10);
    body["event_id"] = json!("evt_123");
    let first = app.create(&body).await;
    assert_eq!(first.status, 200);
    let again = app.create(&body).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(app.tokens_used().await, 1);
    assert_eq!(app.payment_count().await, 1);

    // Same key, other body.
    body["price"] = json!("11.00");
    let conflict = app.create(&body).await;
    assert_eq!(
        (conflict.status, conflict.code()),
        (409, "idempotency_conflict")
    );

    // The Idempotency-Key header wins over event_id.
    let key = app.merchant.api_key.clone();
    let h = [
        ("content-type", "application/json"),
        ("idempotency-key", "hdr-1"),
    ];
    let body = app.body(11).to_string().into_bytes();
    let a = app
        .post_raw("/api/v1/payments", Some(&key), &h, body.clone())
        .await;
    let b = app.post_raw("/api/v1/payments", Some(&key), &h, body).await;
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!(a.body["payment_id"], b.body["payment_id"]);
    assert_eq!(app.tokens_used().await, 2);
}

/// The same body written differently (member order, whitespace) is the
/// same request to idempotency: replayed, not a conflict.
#[tokio::test]
async fn a_retried_body_in_another_member_order_is_a_replay() {
    let app = spawn_app().await;
    let key = app.merchant.api_key.clone();
    let h = [
        ("content-type", "application/json"),
        ("idempotency-key", "reordered-1"),
    ];
    let sub = app.merchant.subscription_id;
    let compact = format!(
        r#"{{"order_id":21,"amount":1,"price":"10.00","alias":"sandbox","subscription_id":{sub}}}"#
    );
    let reordered = format!(
        "{{\n  \"subscription_id\": {sub},\n  \"alias\": \"sandbox\",\n  \"price\": \"10.00\",\n  \"amount\": 1,\n  \"order_id\": 21\n}}"
    );
    let first = app
        .post_raw("/api/v1/payments", Some(&key), &h, compact.into_bytes())
        .await;
    let again = app
        .post_raw("/api/v1/payments", Some(&key), &h, reordered.into_bytes())
        .await;
    assert_eq!((first.status, again.status), (200, 200), "{:?}", again.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, first.body);
    assert_eq!(app.tokens_used().await, 1);
}

#[tokio::test]
async fn order_ids_are_unique_per_merchant_not_globally() {
    let app = spawn_app().await;
    let first = app.create(&app.body(77)).await;
    let again = app.create(&app.body(77)).await;
    assert_eq!((again.status, again.code()), (409, "order_exists"));
    assert_eq!(again.body["payment_id"], first.body["payment_id"]);
    assert_eq!(app.tokens_used().await, 1);

    // Another merchant may use the same order number.
    let other = new_merchant(&app.merchants, 10, false).await;
    let body = json!({"order_id": 77, "amount": 1, "price": "1", "alias": "sandbox", "subscription_id": other.subscription_id});
    let theirs = app
        .post_raw(
            "/api/v1/payments",
            Some(&other.api_key),
            &[("content-type", "application/json")],
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(theirs.status, 200, "{:?}", theirs.body);
}

#[tokio::test]
async fn quota_is_exact_under_concurrency() {
    let app = spawn_app().await;
    let small = new_merchant(&app.merchants, 3, false).await;
    let calls = (1..=12).map(|order| {
        let (client, url, key) = (app.client.clone(), app.url.clone(), small.api_key.clone());
        let body = json!({"order_id": order, "amount": 1, "price": "1", "alias": "sandbox", "subscription_id": small.subscription_id});
        tokio::spawn(async move {
            let r = client.post(format!("{url}/api/v1/payments")).header("x-api-key", key).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap();
            (status, body["error"].as_str().unwrap_or_default().to_owned())
        })
    });
    let mut ok = 0;
    for call in calls {
        match call.await.unwrap() {
            (200, _) => ok += 1,
            (429, code) => assert_eq!(code, "quota_exceeded"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 3);
    assert_eq!(
        app.merchants
            .tokens_used(small.subscription_id)
            .await
            .unwrap(),
        3
    );
}

#[tokio::test]
async fn another_merchants_subscription_is_refused() {
    let app = spawn_app().await;
    let other = new_merchant(&app.merchants, 10, false).await;
    let mut body = app.body(1);
    body["subscription_id"] = json!(other.subscription_id);
    let r = app.create(&body).await;
    assert_eq!((r.status, r.code()), (400, "invalid_subscription"));
    assert_eq!(
        app.merchants
            .tokens_used(other.subscription_id)
            .await
            .unwrap(),
        0
    );
    assert_eq!(app.payment_count().await, 0);
}

#[tokio::test]
async fn one_order_charged_once_under_concurrent_requests() {
    let app = spawn_app().await;
    let calls: Vec<_> = (0..6).map(|_| app.spawn_create(&app.body(77))).collect();
    let mut ok = 0;
    for call in calls {
        let r = reply(call.await.unwrap().unwrap()).await;
        match (r.status, r.code()) {
            (200, _) => ok += 1,
            (409, "order_exists" | "request_in_progress") => {}
            other => panic!("unexpected {other:?} {:?}", r.body),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(app.tokens_used().await, 1);
    assert_eq!(app.payment_count().await, 1);
}

/// Moves this merchant's quota charges ten minutes into the past, as if the
/// requests that took them had died that long ago.
async fn age_charges(app: &super::app::TestApp) {
    sqlx::query("UPDATE quota_charges SET charged_at = now() - interval '10 minutes' WHERE merchant_id = $1")
        .bind(app.merchant.merchant_id)
        .execute(&app.dbs.merchants)
        .await
        .unwrap();
}

/// The reconciler looks at a stale charge, then a request for its order
/// takes the charge over before the reconciler gives it back: the request's
/// payment is on its way, so the token must stay. (Seen as one payment more
/// than tokens used in `cluster::crash` under load.)
#[tokio::test]
async fn a_charge_taken_over_while_the_reconciler_looks_is_not_given_back() {
    let app = spawn_app().await;
    let (m, sub) = (app.merchant.merchant_id, app.merchant.subscription_id);
    let order = OrderId::new(1);
    assert_eq!(
        app.merchants.take_token(m, sub, order).await.unwrap(),
        Take::Taken
    );
    // What the reconciler saw: this merchant's charge only (the database
    // is shared with other tests, whose charges are theirs to reconcile).
    let stale = async || {
        age_charges(&app).await;
        let charged_at = sqlx::query_scalar(
            "SELECT charged_at FROM quota_charges WHERE merchant_id = $1 AND order_id = 1",
        )
        .bind(m)
        .fetch_one(&app.dbs.merchants)
        .await
        .unwrap();
        [paygate::merchants::Charge {
            merchant_id: m,
            order_id: order,
            charged_at,
        }]
    };
    let seen = stale().await;
    let lease = std::time::Duration::from_secs(300);
    assert!(
        app.merchants
            .take_over_charge(m, order, lease)
            .await
            .unwrap()
    );
    let reconcile = async |charges: &[paygate::merchants::Charge]| {
        paygate::quota::reconcile_charges(&app.merchants, &app.payment_store, charges)
            .await
            .unwrap()
    };
    assert_eq!(
        reconcile(&seen).await,
        paygate::quota::Reconciled::default()
    );
    assert_eq!(app.tokens_used().await, 1);

    // Once the taken-over charge is stale in its turn, and still without a
    // payment, it goes back.
    let seen = stale().await;
    assert_eq!(reconcile(&seen).await.returned, 1);
    assert_eq!(app.tokens_used().await, 0);
}

/// A taken token commits without waiting for its WAL flush: the payment it
/// pays for commits after it and flushes it (migrations/merchants,
/// "quota_token_commits_without_flush"). A take that charges nothing leaves
/// its transaction's commit as it was, and the setting ends with the
/// transaction, so a pooled connection's next statement commits as usual.
#[tokio::test]
async fn only_a_taken_token_commits_without_waiting_for_its_flush() {
    let app = spawn_app().await;
    let (m, sub) = (app.merchant.merchant_id, app.merchant.subscription_id);
    let mut conn = app.dbs.merchants.acquire().await.unwrap();
    // The outcome of one take in a transaction of its own, and the commit
    // mode that transaction had when the take was done.
    let mut take = async |subscription, order: i64| -> (String, String) {
        let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
        let outcome: String =
            sqlx::query_scalar("SELECT outcome FROM take_quota_token($1, $2, $3)")
                .bind(subscription)
                .bind(m)
                .bind(order)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        let mode: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        (outcome, mode)
    };
    assert_eq!(take(sub, 1).await, ("taken".into(), "off".into()));
    assert_eq!(take(sub, 1).await, ("held".into(), "on".into()));
    let unknown = paygate::SubscriptionId::new(-1);
    assert_eq!(take(unknown, 2).await, ("invalid".into(), "on".into()));
    let after: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(after, "on", "the setting outlived its transaction");
    assert_eq!(app.tokens_used().await, 1);
}

#[tokio::test]
async fn tokens_of_payments_never_created_are_given_back() {
    let app = spawn_app().await;
    let (m, sub) = (app.merchant.merchant_id, app.merchant.subscription_id);
    // Order 1 is paid for; order 2's request died after its charge; order 3's
    // after its payment failed at the provider, before the token went back.
    assert_eq!(app.create(&app.body(1)).await.status, 200);
    assert_eq!(
        app.merchants
            .take_token(m, sub, OrderId::new(2))
            .await
            .unwrap(),
        Take::Taken
    );
    assert_eq!(
        app.merchants
            .take_token(m, sub, OrderId::new(3))
            .await
            .unwrap(),
        Take::Taken
    );
    let Inserted::Created(failed) = app
        .payment_store
        .insert(&new_payment(m, OrderId::new(3), sub))
        .await
        .unwrap()
    else {
        panic!("order 3 exists")
    };
    app.payment_store
        .record_provider_outcome(failed, Err("declined"), json!({}), None)
        .await
        .unwrap();
    assert_eq!(app.tokens_used().await, 3);

    // While the charge is young, another request for order 2 waits its turn.
    let r = app.create(&app.body(2)).await;
    assert_eq!((r.status, r.code()), (409, "request_in_progress"));

    age_charges(&app).await;
    let grace = std::time::Duration::from_secs(300);
    let done = paygate::quota::reconcile(&app.merchants, &app.payment_store, grace)
        .await
        .unwrap();
    assert!(done.returned >= 2 && done.confirmed >= 1, "{done:?}");
    assert_eq!(app.tokens_used().await, 1);
    let again = paygate::quota::reconcile(&app.merchants, &app.payment_store, grace)
        .await
        .unwrap();
    assert_eq!(again, paygate::quota::Reconciled::default());

    // A charge left behind long enough is taken over by the next request
    // for its order, which pays with it rather than a second token.
    assert_eq!(
        app.merchants
            .take_token(m, sub, OrderId::new(4))
            .await
            .unwrap(),
        Take::Taken
    );
    age_charges(&app).await;
    let r = app.create(&app.body(4)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(app.tokens_used().await, 2);
    assert_eq!(app.payment_count().await, 3);
}

/// Puts the merchant's idempotency key `key` back as a request that died
/// mid-way leaves it: unfinished, its lease long gone.
async fn as_if_its_request_died(app: &super::app::TestApp, key: &str) {
    sqlx::query(
        "UPDATE idempotency_keys SET state = 'in_progress', response_status = NULL,
                response_body = NULL, created_at = now() - interval '10 minutes'
         WHERE merchant_id = $1 AND key = $2",
    )
    .bind(app.merchant.merchant_id)
    .bind(key)
    .execute(&app.dbs.payments)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_retry_finishes_the_payment_of_a_request_that_died() {
    let app = spawn_app().await;
    let payments = &app.dbs.payments;
    let create = |order: i64, key: &'static str| {
        let mut body = app.body(order);
        body["event_id"] = json!(key);
        let app = &app;
        async move { app.create(&body).await }
    };

    // Died after the provider answered, before the answer was kept: the
    // retry answers that payment, as it is.
    let first = create(1, "died-late").await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    as_if_its_request_died(&app, "died-late").await;
    let retried = create(1, "died-late").await;
    assert_eq!(retried.status, 200, "{:?}", retried.body);
    assert_eq!(retried.body["payment_id"], first.body["payment_id"]);
    assert_eq!(retried.body["payment_url"], first.body["payment_url"]);
    assert!(!retried.headers.contains_key("idempotent-replayed"));
    // From then on the answer is kept and replayed.
    let replayed = create(1, "died-late").await;
    assert_eq!(replayed.headers["idempotent-replayed"], "true");

    // Died after storing the payment, before the provider was asked: the
    // retry asks it now, for the same payment.
    let second = create(2, "died-early").await;
    let id = second.body["payment_id"].as_i64().unwrap();
    sqlx::query("UPDATE payments SET payment_url = NULL, provider_reference = NULL WHERE id = $1")
        .bind(id)
        .execute(payments)
        .await
        .unwrap();
    sqlx::query("DELETE FROM payment_logs WHERE payment_id = $1 AND event_type = 'EVENT_PROVIDER_REQUEST_SENT'")
        .bind(id)
        .execute(payments)
        .await
        .unwrap();
    as_if_its_request_died(&app, "died-early").await;
    let retried = create(2, "died-early").await;
    assert_eq!(retried.status, 200, "{:?}", retried.body);
    assert_eq!(retried.body["payment_id"], id);
    let page = retried.body["payment_url"].as_str().unwrap();
    assert!(page.starts_with(&app.sandbox_url), "{page}");
    let shown = app
        .get(
            &format!("/api/v1/payments/{id}/show"),
            Some(&app.merchant.read_api_key.clone()),
        )
        .await;
    assert_eq!(shown.body["payment_url"], page);

    // Another key for an order already paid for is still order_exists.
    let other = create(2, "another-key").await;
    assert_eq!((other.status, other.code()), (409, "order_exists"));
    assert_eq!(other.body["payment_id"], id);

    assert_eq!(app.payment_count().await, 2);
    assert_eq!(app.tokens_used().await, 2, "one token per payment");
}

/// API.md, "Conventions": amounts are read exactly as written, so JSON
/// numbers never pass through binary floating point (where
/// 999999999999.99999999 became 1000000000000, refused as too large, and
/// 0.00000001 printed as 1e-8, refused for its exponent); a currency is an
/// active ISO 4217 code, and a price finer than its minor unit is refused.
#[tokio::test]
async fn json_numbers_are_exact_and_currencies_are_iso_4217() {
    let app = spawn_app().await;
    let key = app.merchant.api_key.clone();
    let read = app.merchant.read_api_key.clone();
    let raw = |order: i64, amount: &str, price: &str, currency: &str| {
        format!(
            r#"{{"order_id": {order}, "amount": {amount}, "price": {price}, "alias": "sandbox",
                "subscription_id": {}, "currency": "{currency}"}}"#,
            app.merchant.subscription_id
        )
        .into_bytes()
    };
    let json = [("content-type", "application/json")];
    for (order, amount, price, currency) in [
        (1, "999999999999.99999999", "10.50", "EUR"),
        (2, "0.00000001", "1500", "JPY"),
        (3, "2.5", "999999999.999", "KWD"),
    ] {
        let r = app
            .post_raw(
                "/api/v1/payments",
                Some(&key),
                &json,
                raw(order, amount, price, currency),
            )
            .await;
        assert_eq!(r.status, 200, "{amount} {price} {currency}: {}", r.body);
        let id = r.body["payment_id"].as_i64().unwrap();
        let shown = app
            .get(&format!("/api/v1/payments/{id}/show"), Some(&read))
            .await;
        assert_eq!(
            (
                &shown.body["amount"],
                &shown.body["price"],
                &shown.body["currency"]
            ),
            (&json!(amount), &json!(price), &json!(currency)),
        );
    }

    for (order, price, currency, field) in [
        (10, "10.00", "XYZ", "currency"),
        (11, "10.00", "XTS", "currency"),
        (12, "10.00", "HRK", "currency"),
        (13, "10.5", "JPY", "price"),
        (14, "10.001", "EUR", "price"),
        (15, "1e3", "EUR", "price"),
    ] {
        let r = app
            .post_raw(
                "/api/v1/payments",
                Some(&key),
                &json,
                raw(order, "1", price, currency),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_request"),
            "{price} {currency}"
        );
        assert_eq!(r.body["fields"][0]["field"], field, "{}", r.body);
    }
    assert_eq!(app.payment_count().await, 3);
}
