//! Listing payments (API.md, "Listing and filtering payments"): filters on
//! both forms, cursor paging both ways, the 400s, and the indexes behind
//! them for a merchant with 100,000 payments.

use serde_json::Value;

use paygate::payments::{Cursor, ListFilter};
use paygate::{MerchantId, PaymentId};

use super::app::{TestApp, new_merchant, spawn_app};

/// The payment ids of a list answer, in its order.
fn ids(body: &Value) -> Vec<i64> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {body}"))
        .iter()
        .map(|p| p["payment_id"].as_i64().unwrap())
        .collect()
}

async fn list(app: &TestApp, query: &str) -> Value {
    let read = app.merchant.read_api_key.clone();
    let r = app
        .get(&format!("/api/v1/payments?{query}"), Some(&read))
        .await;
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    r.body
}

/// The fields a 400 names.
async fn refused(app: &TestApp, query: &str) -> Vec<String> {
    let read = app.merchant.read_api_key.clone();
    let r = app
        .get(&format!("/api/v1/payments?{query}"), Some(&read))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_request"),
        "{query}: {}",
        r.body
    );
    r.body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn filters_narrow_both_forms_and_cursors_walk_both_ways() {
    let app = spawn_app().await;
    // Orders 1–6: odd ones through `stripe`; 2 and 4 finished, 6 failed.
    let mut created = Vec::new();
    for order in 1..=6 {
        let mut body = app.body(order);
        if order % 2 == 1 {
            body["alias"] = "stripe".into();
        }
        let r = app.create(&body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        created.push(r.body["payment_id"].as_i64().unwrap());
    }
    for (index, status) in [
        (1, "PAYMENT_FINISHED"),
        (3, "PAYMENT_FINISHED"),
        (5, "PAYMENT_FAILED"),
    ] {
        sqlx::query("UPDATE payments SET status = $2 WHERE id = $1")
            .bind(created[index])
            .bind(status)
            .execute(&app.dbs.payments)
            .await
            .unwrap();
    }
    let newest_first: Vec<i64> = created.iter().rev().copied().collect();

    // Filters apply to the items and to the total.
    let finished = list(&app, "status=PAYMENT_FINISHED").await;
    assert_eq!(ids(&finished), [created[3], created[1]]);
    assert_eq!(finished["total"], 2);
    let stripe = list(&app, "provider=stripe&limit=2").await;
    assert_eq!(ids(&stripe), [created[4], created[2]]);
    assert_eq!(
        (stripe["total"].as_i64(), stripe["has_next"].as_bool()),
        (Some(3), Some(true))
    );
    let one = list(&app, "order_id=3").await;
    assert_eq!(ids(&one), [created[2]]);
    let both = list(&app, "provider=sandbox&status=PAYMENT_PENDING").await;
    assert!(ids(&both).is_empty(), "{both}");
    assert_eq!(both["total"], 0);
    let expired = list(&app, "status=PAYMENT_EXPIRED").await;
    assert_eq!(expired["total"], 0);
    let future = list(&app, "created_gte=2999-01-01T00:00:00Z").await;
    assert_eq!(future["total"], 0);
    let past = list(
        &app,
        "created_lt=2999-01-01T00:00:00Z&created_gte=2000-01-01T00:00:00%2B02:00",
    )
    .await;
    assert_eq!(ids(&past), newest_first);

    // Forward with `starting_after`, two at a time, visits each once.
    let mut walked: Vec<i64> = Vec::new();
    let mut page = list(&app, "limit=2").await;
    loop {
        let got = ids(&page);
        walked.extend(&got);
        let more = page["has_more"]
            .as_bool()
            .or(page["has_next"].as_bool())
            .unwrap();
        if !more {
            break;
        }
        page = list(
            &app,
            &format!("limit=2&starting_after={}", got.last().unwrap()),
        )
        .await;
        assert!(
            page.get("total").is_none() && page.get("page").is_none(),
            "{page}"
        );
    }
    assert_eq!(walked, newest_first);

    // Backward with `ending_before`, still newest first within a page.
    let back = list(&app, &format!("limit=2&ending_before={}", created[0])).await;
    assert_eq!(ids(&back), [created[2], created[1]]);
    assert_eq!(back["has_more"], true);
    let top = list(&app, &format!("limit=2&ending_before={}", created[3])).await;
    assert_eq!(ids(&top), [created[5], created[4]]);
    assert_eq!(top["has_more"], false);

    // A cursor combines with filters.
    let after = list(
        &app,
        &format!("provider=stripe&starting_after={}", created[4]),
    )
    .await;
    assert_eq!(ids(&after), [created[2], created[0]]);
    assert_eq!(after["has_more"], false);

    // Another merchant's payment is no cursor of yours.
    let other = new_merchant(&app.merchants, 10, false).await;
    let read = other.read_api_key.clone();
    let theirs = app
        .get(
            &format!("/api/v1/payments?starting_after={}", created[0]),
            Some(&read),
        )
        .await;
    assert_eq!((theirs.status, theirs.code()), (400, "invalid_request"));
    assert_eq!(theirs.body["fields"][0]["field"], "starting_after");
}

#[tokio::test]
async fn bad_filters_and_cursors_are_400_naming_each() {
    let app = spawn_app().await;
    assert_eq!(refused(&app, "status=PAID").await, ["status"]);
    assert_eq!(
        refused(&app, "order_id=abc&provider=%00").await,
        ["order_id", "provider"]
    );
    assert_eq!(
        refused(&app, "created_gte=2026-13-01T00:00:00Z").await,
        ["created_gte"]
    );
    assert_eq!(refused(&app, "created_lt=1733000000").await, ["created_lt"]);
    assert_eq!(refused(&app, "starting_after=1&page=1").await, ["page"]);
    assert_eq!(
        refused(&app, "starting_after=1&ending_before=2").await,
        ["ending_before"]
    );
    assert_eq!(
        refused(&app, "ending_before=99999999").await,
        ["ending_before"]
    );
    assert_eq!(refused(&app, "starting_after=0").await, ["starting_after"]);
}

/// The plan of every filtered list for a merchant with 100,000 payments
/// (and another merchant's rows around them) reads an index, never the
/// whole table.
#[tokio::test]
async fn every_filter_reads_an_index_for_a_merchant_with_100000_payments() {
    let app = spawn_app().await;
    let merchant = 900_001i64;
    sqlx::query(
        "INSERT INTO payments (merchant_id, order_id, subscription_id, alias, amount, price,
                               currency, status, created_at)
         SELECT CASE WHEN i % 10 = 0 THEN 900002 ELSE $1 END, i, 1,
                CASE WHEN i % 2 = 0 THEN 'sandbox' ELSE 'stripe' END, 1, 10, 'EUR',
                (ARRAY['PAYMENT_PENDING', 'PAYMENT_FINISHED', 'PAYMENT_FAILED'])[i % 3 + 1],
                now() - make_interval(secs => 110000 - i)
         FROM generate_series(1, 110000) AS i",
    )
    .bind(merchant)
    .execute(&app.dbs.payments)
    .await
    .unwrap();
    sqlx::query("ANALYZE payments")
        .execute(&app.dbs.payments)
        .await
        .unwrap();
    let middle: i64 = sqlx::query_scalar(
        "SELECT id FROM payments WHERE merchant_id = $1 ORDER BY id OFFSET 50000 LIMIT 1",
    )
    .bind(merchant)
    .fetch_one(&app.dbs.payments)
    .await
    .unwrap();
    let day_ago = chrono::Utc::now() - chrono::Duration::hours(24);
    let cases: Vec<(&str, ListFilter, Option<Cursor>)> = vec![
        ("no filter", ListFilter::default(), None),
        (
            "status",
            ListFilter {
                status: Some("PAYMENT_FAILED"),
                ..ListFilter::default()
            },
            None,
        ),
        (
            "provider",
            ListFilter {
                provider: Some("stripe".into()),
                ..ListFilter::default()
            },
            None,
        ),
        (
            "order",
            ListFilter {
                order_id: Some(77_777),
                ..ListFilter::default()
            },
            None,
        ),
        (
            "created range",
            ListFilter {
                created_gte: Some(day_ago - chrono::Duration::hours(1)),
                created_lt: Some(day_ago),
                ..ListFilter::default()
            },
            None,
        ),
        (
            "starting_after",
            ListFilter::default(),
            Some(Cursor::StartingAfter(PaymentId::new(middle))),
        ),
        (
            "ending_before",
            ListFilter::default(),
            Some(Cursor::EndingBefore(PaymentId::new(middle))),
        ),
        (
            "status after a cursor",
            ListFilter {
                status: Some("PAYMENT_PENDING"),
                ..ListFilter::default()
            },
            Some(Cursor::StartingAfter(PaymentId::new(middle))),
        ),
    ];
    for (name, filter, cursor) in cases {
        let plan = app
            .payment_store
            .explain_list(MerchantId::new(merchant), &filter, cursor, 20)
            .await
            .unwrap();
        println!("{name}:\n{plan}\n");
        assert!(plan.contains("Index"), "{name} reads no index:\n{plan}");
        assert!(
            !plan.contains("Seq Scan"),
            "{name} scans the table:\n{plan}"
        );
    }
}
