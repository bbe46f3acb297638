//! Refunds (API.md, "Refunds") through the `sandbox` alias: full and
//! partial, never past the price however many run at once, idempotent,
//! refused where a payment or its adapter cannot give money back, and
//! notified to the merchant.

use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::app::{
    LAX_RATE_LIMIT, Reply, TestApp, bind_verified, clicker, spawn_app, spawn_app_with,
};
use super::notifications::{
    MerchantEndpoint, app_notifying, app_notifying_alone, provider_webhook,
};
use super::webhooks::{internal_webhook, stripe_webhook};

/// Creates a payment of 10.00 EUR and pays it on the sandbox's page, as a
/// buyer would, so the provider holds the money to give back.
pub(crate) async fn paid_payment(app: &TestApp, order: i64) -> i64 {
    paid_through(app, order, "sandbox").await
}

pub(crate) async fn paid_through(app: &TestApp, order: i64, alias: &str) -> i64 {
    let mut body = app.body(order);
    body["alias"] = json!(alias);
    body["metadata"] = json!({"cart": format!("c-{order}")});
    let created = app.create(&body).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let id = created.body["payment_id"].as_i64().unwrap();
    let url = created.body["payment_url"].as_str().unwrap();
    let clicked = clicker().post(format!("{url}/pay")).send().await.unwrap();
    assert!(clicked.status().is_redirection() || clicked.status().is_success());
    let started = Instant::now();
    while payment(app, id).await["status"] != "PAYMENT_FINISHED" {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never finished"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    id
}

pub(crate) async fn payment(app: &TestApp, id: i64) -> Value {
    let key = app.merchant.read_api_key.clone();
    app.get(&format!("/api/v1/payments/{id}/show"), Some(&key))
        .await
        .body
}

/// `POST /api/v1/payments/{id}/refunds` with the write key and `headers`.
async fn refund_with(app: &TestApp, id: i64, body: &Value, headers: &[(&str, &str)]) -> Reply {
    let key = app.merchant.api_key.clone();
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    app.post_raw(
        &format!("/api/v1/payments/{id}/refunds"),
        Some(&key),
        &all,
        body.to_string().into_bytes(),
    )
    .await
}

pub(crate) async fn refund(app: &TestApp, id: i64, body: Value) -> Reply {
    refund_with(app, id, &body, &[]).await
}

/// Waits until refund `refund_id` is `status`, and answers it.
pub(crate) async fn refund_becomes(app: &TestApp, refund_id: i64, status: &str) -> Value {
    let read = app.merchant.read_api_key.clone();
    let started = Instant::now();
    loop {
        let shown = app
            .get(&format!("/api/v1/refunds/{refund_id}"), Some(&read))
            .await;
        if shown.body["status"] == status {
            return shown.body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "refund {refund_id} is not {status}: {:?}",
            shown.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The provider's id of refund `refund_id`, as stored from its answer.
pub(crate) async fn refund_reference(app: &TestApp, refund_id: i64) -> String {
    sqlx::query_scalar("SELECT provider_reference FROM refunds WHERE id = $1")
        .bind(refund_id)
        .fetch_one(&app.dbs.payments)
        .await
        .unwrap()
}

fn field_names(reply: &Reply) -> Vec<&str> {
    reply.body["fields"]
        .as_array()
        .map(|f| f.iter().map(|e| e["field"].as_str().unwrap()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_payment_is_refunded_in_parts_down_to_nothing_and_each_part_is_notified() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = app_notifying(&endpoint, |c| c).await;
    let id = paid_payment(&app, 1).await;

    let first = refund(
        &app,
        id,
        json!({"price": "2.50", "reason": "requested_by_customer"}),
    )
    .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body["status"], "REFUND_SUCCEEDED");
    assert_eq!(
        (
            &first.body["price"],
            &first.body["currency"],
            &first.body["reason"]
        ),
        (
            &json!("2.50"),
            &json!("EUR"),
            &json!("requested_by_customer")
        )
    );
    assert_eq!(first.body["payment_id"], id);
    assert_eq!(payment(&app, id).await["refunded"], "2.50");

    // More than is left names the price and stores nothing.
    let too_much = refund(&app, id, json!({"price": 7.51})).await;
    assert_eq!((too_much.status, too_much.code()), (400, "invalid_request"));
    assert_eq!(field_names(&too_much), ["price"]);
    assert!(
        too_much.body["fields"][0]["message"]
            .as_str()
            .unwrap()
            .contains("7.50"),
        "{:?}",
        too_much.body
    );

    // No price: what is left.
    let rest = refund_with(&app, id, &json!({}), &[]).await;
    assert_eq!(rest.status, 200, "{:?}", rest.body);
    assert_eq!(
        (&rest.body["price"], &rest.body["status"]),
        (&json!("7.50"), &json!("REFUND_SUCCEEDED"))
    );
    let shown = payment(&app, id).await;
    assert_eq!(shown["refunded"], "10.00");
    assert_eq!(shown["status"], "PAYMENT_FINISHED");
    let nothing = refund(&app, id, json!({})).await;
    assert_eq!(field_names(&nothing), ["price"], "{:?}", nothing.body);

    // Listed oldest first, shown one by one, another merchant sees none.
    let read = app.merchant.read_api_key.clone();
    let listed = app
        .get(&format!("/api/v1/payments/{id}/refunds"), Some(&read))
        .await;
    let refunds = listed.body["refunds"].as_array().unwrap();
    assert_eq!(refunds.len(), 2, "{:?}", listed.body);
    assert_eq!(refunds[0]["refund_id"], first.body["refund_id"]);
    let refund_id = first.body["refund_id"].as_i64().unwrap();
    let one = app
        .get(&format!("/api/v1/refunds/{refund_id}"), Some(&read))
        .await;
    assert_eq!(one.body, first.body);
    let other = super::app::new_merchant(&app.merchants, 10, false).await;
    let theirs = app
        .get(
            &format!("/api/v1/refunds/{refund_id}"),
            Some(&other.read_api_key),
        )
        .await;
    assert_eq!((theirs.status, theirs.code()), (404, "not_found"));
    let key = other.api_key.clone();
    let foreign = app
        .post_raw(
            &format!("/api/v1/payments/{id}/refunds"),
            Some(&key),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!((foreign.status, foreign.code()), (404, "not_found"));

    // The timeline shows each step; each succeeded refund is notified.
    let kinds = app.timeline_types(id).await;
    let requested = kinds
        .iter()
        .filter(|k| *k == "EVENT_REFUND_REQUESTED")
        .count();
    let succeeded = kinds
        .iter()
        .filter(|k| *k == "EVENT_REFUND_SUCCEEDED")
        .count();
    assert_eq!((requested, succeeded), (2, 2), "{kinds:?}");
    let started = Instant::now();
    let bodies = loop {
        let bodies: Vec<Value> = endpoint
            .received()
            .iter()
            .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
            .filter(|b| b["event_type"] == "refund.succeeded")
            .collect();
        if bodies.len() == 2 {
            break bodies;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{bodies:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let notified = bodies.iter().find(|b| b["refund_id"] == refund_id).unwrap();
    assert_eq!(notified["payment_id"], id);
    assert_eq!(notified["order_id"], 1);
    assert_eq!(notified["status"], "REFUND_SUCCEEDED");
    assert_eq!(
        (&notified["price"], &notified["currency"]),
        (&json!("2.50"), &json!("EUR"))
    );
    assert_eq!(notified["metadata"], json!({"cart": "c-1"}));
    // Built in SQL, the body reads as a payment's built in Rust does: the
    // refund's time in whole seconds, UTC; the event id a UUID.
    let created = first.body["created_at"].as_str().unwrap();
    assert_eq!(notified["created_at"], format!("{}Z", &created[..19]));
    let event_id = notified["event_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(event_id).is_ok(), "{event_id}");
    assert_eq!(notified["event_type"], "refund.succeeded");
    let listed = app
        .get(&format!("/api/v1/payments/{id}/notifications"), Some(&read))
        .await;
    let types: Vec<&str> = listed.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["payment.finished", "refund.succeeded", "refund.succeeded"]
    );
}

/// The transactions that queue notifications no longer `NOTIFY` (that
/// serialized their commits): they wake this process's producer after
/// committing. With the producer's poll an hour away, a payment's and a
/// refund's notifications still go out at once.
#[tokio::test]
async fn notifications_are_published_when_committed_not_when_polled() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = app_notifying_alone(&endpoint, "wake_on_commit", |mut c| {
        c.outbox.poll_interval = Duration::from_secs(3600);
        c
    })
    .await;
    let id = paid_payment(&app, 1).await;
    let refunded = refund(&app, id, json!({"price": "1.00"})).await;
    assert_eq!(
        refunded.body["status"], "REFUND_SUCCEEDED",
        "{:?}",
        refunded.body
    );
    let refund_id = refunded.body["refund_id"].as_i64().unwrap();
    endpoint
        .notified("payment.finished", "payment_id", id)
        .await;
    endpoint
        .notified("refund.succeeded", "refund_id", refund_id)
        .await;
}

#[tokio::test]
async fn refunds_are_refused_where_no_money_can_go_back() {
    let app = spawn_app().await;
    let created = app.create(&app.body(1)).await;
    let pending = created.body["payment_id"].as_i64().unwrap();
    let r = refund(&app, pending, json!({})).await;
    assert_eq!((r.status, r.code()), (409, "payment_not_refundable"));
    let r = refund(&app, 999_999_999, json!({})).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));

    let id = paid_payment(&app, 2).await;
    let r = refund(&app, id, json!({"price": "abc", "reason": "whim"})).await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
    assert_eq!(field_names(&r), ["price", "reason"]);
    for price in [json!("1.001"), json!(0), json!("-1"), json!(true)] {
        let r = refund(&app, id, json!({"price": price})).await;
        assert_eq!(field_names(&r), ["price"], "{price}");
    }
    let r = app
        .post_raw(
            &format!("/api/v1/payments/{id}/refunds"),
            Some(&app.merchant.read_api_key.clone()),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let r = app
        .post_raw(
            &format!("/api/v1/payments/{id}/refunds"),
            Some(&app.merchant.api_key.clone()),
            &[("content-type", "application/json")],
            b"{".to_vec(),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));

    // The sandbox declines a refund ending in 13: stored failed, answered
    // 502, and it takes nothing from what is left.
    let declined = refund(&app, id, json!({"price": "1.13"})).await;
    assert_eq!((declined.status, declined.code()), (502, "provider_error"));
    assert_eq!(declined.body["refund"]["status"], "REFUND_FAILED");
    assert!(
        declined.body["message"]
            .as_str()
            .unwrap()
            .contains("declined")
    );
    // One ending in 42 is pending at first.
    let pending = refund(&app, id, json!({"price": "0.42"})).await;
    assert_eq!(
        pending.body["status"], "REFUND_PENDING",
        "{:?}",
        pending.body
    );
    let r = refund(&app, id, json!({"price": "9.58"})).await;
    assert_eq!(r.body["status"], "REFUND_SUCCEEDED", "{:?}", r.body);
    assert_eq!(payment(&app, id).await["refunded"], "9.58");
    let r = refund(&app, id, json!({"price": "0.01"})).await;
    assert_eq!(
        field_names(&r),
        ["price"],
        "the pending refund holds its part"
    );
    assert_eq!(
        app.timeline_types(id)
            .await
            .iter()
            .filter(|k| *k == "EVENT_REFUND_FAILED")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_refund_key_replays_its_refund_and_refuses_another_body() {
    let app = spawn_app().await;
    let id = paid_payment(&app, 1).await;
    let headers = [("idempotency-key", "refund-1")];
    let first = refund_with(&app, id, &json!({"price": "1.00"}), &headers).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let again = refund_with(&app, id, &json!({"price": "1.00"}), &headers).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, first.body);
    let other = refund_with(&app, id, &json!({"price": "2.00"}), &headers).await;
    assert_eq!((other.status, other.code()), (409, "idempotency_conflict"));
    let second = paid_payment(&app, 2).await;
    let elsewhere = refund_with(&app, second, &json!({"price": "1.00"}), &headers).await;
    assert_eq!(
        (elsewhere.status, elsewhere.code()),
        (409, "idempotency_conflict")
    );
    assert_eq!(payment(&app, id).await["refunded"], "1.00");

    // A declined refund replays its 502.
    let declined = [("idempotency-key", "refund-13")];
    let r = refund_with(&app, id, &json!({"price": "1.13"}), &declined).await;
    assert_eq!(r.status, 502);
    let again = refund_with(&app, id, &json!({"price": "1.13"}), &declined).await;
    assert_eq!((again.status, again.code()), (502, "provider_error"));
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body["refund"], r.body["refund"]);
}

/// API.md: concurrent refunds never sum past the price. Twenty partial
/// refunds of 0.75 on 10.00 race; thirteen fit (9.75), the rest are told
/// what is left, and the provider and paygate agree on the sum.
#[tokio::test]
async fn twenty_concurrent_partial_refunds_never_sum_past_the_price() {
    let app = spawn_app_with(LAX_RATE_LIMIT, Vec::new(), |c| c).await;
    let id = paid_payment(&app, 1).await;
    let url = format!("{}/api/v1/payments/{id}/refunds", app.url);
    let sends: Vec<_> = (0..20)
        .map(|_| {
            let request = app
                .client
                .post(&url)
                .header("x-api-key", &app.merchant.api_key)
                .json(&json!({"price": "0.75"}));
            tokio::spawn(request.send())
        })
        .collect();
    let mut succeeded = Decimal::ZERO;
    let mut statuses = Vec::new();
    for send in sends {
        let response = send.await.unwrap().unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        if status == 200 {
            assert_eq!(body["status"], "REFUND_SUCCEEDED", "{body}");
            succeeded += body["price"].as_str().unwrap().parse::<Decimal>().unwrap();
        } else {
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("invalid_request")),
                "{body}"
            );
        }
        statuses.push(status);
    }
    assert_eq!(succeeded, Decimal::new(975, 2), "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 13);
    assert_eq!(payment(&app, id).await["refunded"], "9.75");
}

/// The `stripe` adapter refunds through Stripe's Refunds API (the
/// session's PaymentIntent, the amount in minor units), which the sandbox
/// speaks too, test prices included.
#[tokio::test]
async fn a_stripe_payment_is_refunded_through_its_payment_intent() {
    let app = spawn_app().await;
    let id = paid_through(&app, 1, "stripe").await;
    let r = refund(&app, id, json!({"price": "2.50", "reason": "duplicate"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "REFUND_SUCCEEDED");
    let declined = refund(&app, id, json!({"price": "1.13"})).await;
    assert_eq!(
        (declined.status, declined.code()),
        (502, "provider_error"),
        "{:?}",
        declined.body
    );
    assert!(
        declined.body["message"]
            .as_str()
            .unwrap()
            .contains("declined")
    );
    let pending = refund(&app, id, json!({"price": "0.42"})).await;
    assert_eq!(
        pending.body["status"], "REFUND_PENDING",
        "{:?}",
        pending.body
    );
    let pending_id = pending.body["refund_id"].as_i64().unwrap();
    let reference = refund_reference(&app, pending_id).await;
    assert!(reference.starts_with("re_"), "{reference}");

    // Signed by Stripe, about this refund, for other money: nothing moves
    // (sent at once, well inside the second the refund stays pending).
    let other_money = json!({"id": "evt_refund_cent", "type": "refund.updated",
        "data": {"object": {"id": reference, "object": "refund", "amount": 1, "currency": "eur",
                            "status": "succeeded",
                            "metadata": {"paygate_refund_id": pending_id.to_string()}}}});
    let r = stripe_webhook(&app, &other_money, "stripe-refund-cent").await;
    assert_eq!(
        r.body["result"],
        json!({"message": "amount mismatch", "refund_id": pending_id, "status": "REFUND_PENDING"}),
        "{:?}",
        r.body
    );
    let logged = app
        .webhooks
        .log
        .verdicts("stripe-refund-cent")
        .await
        .unwrap();
    assert_eq!(logged[0].0, "amount_mismatch");

    let rest = refund(&app, id, json!({})).await;
    assert_eq!(
        (&rest.body["price"], &rest.body["status"]),
        (&json!("7.08"), &json!("REFUND_SUCCEEDED"))
    );
    assert_eq!(payment(&app, id).await["refunded"], "9.58");

    // The sandbox confirms the pending refund with a signed
    // `refund.updated`, and all of the price has gone back.
    refund_becomes(&app, pending_id, "REFUND_SUCCEEDED").await;
    assert_eq!(payment(&app, id).await["refunded"], "10.00");
    let kinds = app.timeline_types(id).await;
    let mismatches = kinds
        .iter()
        .filter(|k| *k == "EVENT_PROVIDER_AMOUNT_MISMATCH")
        .count();
    assert_eq!(mismatches, 1, "{kinds:?}");
}

/// A refund the provider confirms later (test price 0.42) stays pending
/// until the provider's signed webhook says how it ended: the sandbox
/// sends the internal scheme's refund body, naming the refund by the
/// reference it answered; the refund succeeds, adds to the payment's
/// refunded total, and is notified once.
#[tokio::test]
async fn a_pending_refund_is_settled_by_the_providers_signed_webhook() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = app_notifying(&endpoint, |c| c).await;
    let id = paid_payment(&app, 1).await;
    let r = refund(&app, id, json!({"price": "0.42"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "REFUND_PENDING");
    let refund_id = r.body["refund_id"].as_i64().unwrap();
    assert_eq!(payment(&app, id).await["refunded"], "0");

    let settled = refund_becomes(&app, refund_id, "REFUND_SUCCEEDED").await;
    assert_eq!(settled["price"], "0.42");
    assert_eq!(payment(&app, id).await["refunded"], "0.42");
    let kinds = app.timeline_types(id).await;
    assert!(
        kinds.contains(&"EVENT_REFUND_SUCCEEDED".to_owned()),
        "{kinds:?}"
    );
    let started = Instant::now();
    loop {
        let notified: Vec<Value> = endpoint
            .received()
            .iter()
            .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
            .filter(|b| b["event_type"] == "refund.succeeded")
            .collect();
        if let [one] = notified.as_slice() {
            assert_eq!(one["refund_id"], refund_id);
            assert_eq!(one["status"], "REFUND_SUCCEEDED");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{notified:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A signed refund webhook moves only the refund it names by the reference
/// its provider answered paygate: another reference, or the right one with
/// another refund's id, moves nothing ("refund not found", verdict
/// `unmatched`), nor does a refund of a payment the verifier does not
/// speak for. API.md's body without a reference names the refund by its
/// id. A terminal refund never changes.
#[tokio::test]
async fn a_refund_webhook_moves_only_the_refund_it_names() {
    let app = spawn_app().await;
    let id = paid_payment(&app, 1).await;
    let first = refund(&app, id, json!({"price": "0.42"})).await;
    let first_id = first.body["refund_id"].as_i64().unwrap();
    let reference = refund_reference(&app, first_id).await;
    assert!(reference.starts_with("rf_"), "{reference}");
    let signed = |body: &Value| {
        let body = body.to_string();
        let signature =
            super::webhooks::hex_hmac(super::webhooks::INTERNAL_SECRET, body.as_bytes());
        (body, Some(signature))
    };
    let forged = [
        json!({"refund_id": first_id, "status": "failed", "reference": "rf_someone_elses"}),
        json!({"refund_id": first_id + 1000, "status": "failed", "reference": reference}),
    ];
    for (n, body) in forged.iter().enumerate() {
        let request_id = format!("refund-forged-{n}");
        let (body, signature) = signed(body);
        let r = internal_webhook(&app, &body, signature, &request_id).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["result"]["message"], "refund not found", "{body}");
        let logged = app.webhooks.log.verdicts(&request_id).await.unwrap();
        assert_eq!(logged[0].0, "unmatched", "{body}");
    }
    // The sandbox's own webhook, a second later, settles it.
    refund_becomes(&app, first_id, "REFUND_SUCCEEDED").await;
    let (late, signature) = signed(&json!({"refund_id": first_id, "status": "failed"}));
    let r = internal_webhook(&app, &late, signature, "refund-late").await;
    assert_eq!(
        r.body["result"],
        json!({"message": "already processed", "refund_id": first_id, "status": "REFUND_SUCCEEDED"})
    );

    // By id alone (sent at once, inside the second the refund stays
    // pending): the refund fails, and gives nothing back.
    let second = refund(&app, id, json!({"price": "0.42"})).await;
    let second_id = second.body["refund_id"].as_i64().unwrap();
    let (body, signature) = signed(&json!({"refund_id": second_id, "status": "failed"}));
    let r = internal_webhook(&app, &body, signature, "refund-by-id").await;
    assert_eq!(
        r.body["result"],
        json!({"message": "refund updated", "refund_id": second_id, "status": "REFUND_FAILED"}),
        "{:?}",
        r.body
    );
    assert_eq!(payment(&app, id).await["refunded"], "0.42");
    let outbox = super::webhooks::outbox_of(&app, id).await;
    let failed = outbox.iter().filter(|(t, _)| t == "refund.failed").count();
    assert_eq!(failed, 1, "{outbox:?}");

    // The internal verifier does not speak for the `stripe` alias.
    let stripe_payment = paid_through(&app, 2, "stripe").await;
    let theirs = refund(&app, stripe_payment, json!({"price": "1.00"})).await;
    let theirs_id = theirs.body["refund_id"].as_i64().unwrap();
    let (body, signature) = signed(&json!({"refund_id": theirs_id, "status": "failed"}));
    let r = internal_webhook(&app, &body, signature, "refund-other-alias").await;
    assert_eq!(r.body["result"]["message"], "refund not found");
    assert_eq!(
        refund_becomes(&app, theirs_id, "REFUND_SUCCEEDED").await["refund_id"],
        theirs_id
    );
}

/// A provider may send a refund's webhook before it answers the refund
/// request (Adyen says so): the event names a reference paygate has not
/// stored yet, and the id of a refund still waiting for that answer. It
/// waits a few seconds for the answer; if none comes it is refused 409
/// `request_in_progress` (verdict `deferred`) so that the provider sends
/// it again, and nothing has moved. Sent again while the answer arrives,
/// it settles the refund.
#[tokio::test]
async fn a_refund_webhook_that_comes_before_its_refunds_answer_waits_for_it_or_is_sent_again() {
    let app = spawn_app().await;
    let id = paid_payment(&app, 1).await;
    // Ending in 43: stays pending, and the sandbox sends no webhook.
    let taken = refund(&app, id, json!({"price": "0.43"})).await;
    assert_eq!(taken.status, 200, "{:?}", taken.body);
    let refund_id = taken.body["refund_id"].as_i64().unwrap();
    let reference = refund_reference(&app, refund_id).await;
    let set_reference = |reference: Option<String>| {
        sqlx::query("UPDATE refunds SET provider_reference = $2 WHERE id = $1")
            .bind(refund_id)
            .bind(reference)
            .execute(&app.dbs.payments)
    };
    // As if the provider's answer were still on its way.
    set_reference(None).await.unwrap();
    let body =
        json!({"refund_id": refund_id, "status": "succeeded", "reference": reference}).to_string();
    let signature = super::webhooks::hex_hmac(super::webhooks::INTERNAL_SECRET, body.as_bytes());

    let early = internal_webhook(&app, &body, Some(signature.clone()), "refund-early").await;
    assert_eq!(
        (early.status, early.code()),
        (409, "request_in_progress"),
        "{:?}",
        early.body
    );
    let logged = app.webhooks.log.verdicts("refund-early").await.unwrap();
    assert_eq!(logged[0].0, "deferred", "{logged:?}");
    let read = app.merchant.read_api_key.clone();
    let still = (app.get(&format!("/api/v1/refunds/{refund_id}"), Some(&read))).await;
    assert_eq!(still.body["status"], "REFUND_PENDING", "{:?}", still.body);

    // The provider sends it again; the answer is stored while it waits.
    let answered = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        set_reference(Some(reference.clone())).await.unwrap();
    };
    let (again, ()) = tokio::join!(
        internal_webhook(&app, &body, Some(signature), "refund-early-again"),
        answered
    );
    assert_eq!(
        again.body["result"],
        json!({"message": "refund updated", "refund_id": refund_id, "status": "REFUND_SUCCEEDED"}),
        "{:?}",
        again.body
    );
    assert_eq!(payment(&app, id).await["refunded"], "0.43");
}

/// The refund's answer can commit between the event's two lookups: the
/// one by reference (nothing yet) and the one that asks whether the
/// refund is still waiting for its answer (no longer: its reference is
/// set). The event must then look again and settle the refund, not be
/// answered 200 "refund not found", which the provider never resends.
///
/// The test holds the webhook inside its first lookup: a second refund
/// carries the same reference and is locked, so the lookup by reference
/// waits on it. While it waits the answer is stored; then the decoy's
/// reference moves and its lock is let go, so the lookup ends empty.
#[tokio::test]
async fn a_refund_answer_stored_between_the_webhooks_lookups_does_not_lose_the_event() {
    let app = spawn_app().await;
    let id = paid_payment(&app, 1).await;
    // Ending in 43: both stay pending, and the sandbox sends no webhook.
    let mut refunds = Vec::new();
    for _ in 0..2 {
        let taken = refund(&app, id, json!({"price": "0.43"})).await;
        assert_eq!(taken.status, 200, "{:?}", taken.body);
        refunds.push(taken.body["refund_id"].as_i64().unwrap());
    }
    let [refund_id, decoy] = refunds[..] else {
        unreachable!()
    };
    let reference = refund_reference(&app, refund_id).await;
    let db = &app.dbs.payments;
    let set_reference = |id: i64, reference: Option<&str>| {
        sqlx::query("UPDATE refunds SET provider_reference = $2 WHERE id = $1")
            .bind(id)
            .bind(reference.map(str::to_owned))
            .execute(db)
    };
    // The answer is on its way; the decoy carries the reference and is
    // held by a transaction of the test's.
    set_reference(refund_id, None).await.unwrap();
    set_reference(decoy, Some(&reference)).await.unwrap();
    let mut holder = db.begin().await.unwrap();
    sqlx::query("SELECT id FROM refunds WHERE id = $1 FOR UPDATE")
        .bind(decoy)
        .execute(&mut *holder)
        .await
        .unwrap();

    let body =
        json!({"refund_id": refund_id, "status": "succeeded", "reference": reference}).to_string();
    let signature = super::webhooks::hex_hmac(super::webhooks::INTERNAL_SECRET, body.as_bytes());
    // The lookup by reference takes its snapshot and waits for the decoy;
    // then the answer commits, and the decoy lets go and no longer matches.
    let race = async {
        let started = Instant::now();
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query LIKE '%provider_reference = $1%'",
            )
            .fetch_one(db)
            .await
            .unwrap();
            if waiting > 0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the webhook never reached its lookup"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        set_reference(refund_id, Some(&reference)).await.unwrap();
        sqlx::query("UPDATE refunds SET provider_reference = 'decoy-moved' WHERE id = $1")
            .bind(decoy)
            .execute(&mut *holder)
            .await
            .unwrap();
        holder.commit().await.unwrap();
    };
    let (answered, ()) = tokio::join!(
        internal_webhook(&app, &body, Some(signature), "refund-between"),
        race
    );
    assert_eq!(
        answered.body["result"],
        json!({"message": "refund updated", "refund_id": refund_id, "status": "REFUND_SUCCEEDED"}),
        "{:?}",
        answered.body
    );
    let read = app.merchant.read_api_key.clone();
    let shown = (app.get(&format!("/api/v1/refunds/{refund_id}"), Some(&read))).await;
    assert_eq!(shown.body["status"], "REFUND_SUCCEEDED", "{:?}", shown.body);
    let shown = (app.get(&format!("/api/v1/refunds/{decoy}"), Some(&read))).await;
    assert_eq!(shown.body["status"], "REFUND_PENDING", "{:?}", shown.body);
}

/// A 0.1.0 adapter has no `refund`: 409 `refunds_not_supported`, and
/// nothing is stored. It serves payments beside the 0.2.0 adapters.
#[tokio::test]
async fn an_adapter_built_against_wit_0_1_0_cannot_refund() {
    let legacy = ("legacy", "chaos", String::new());
    let app = spawn_app_with(LAX_RATE_LIMIT, vec![legacy], |c| c).await;
    bind_verified(&app.providers, "legacy", "legacy", "internal-webhook").await;
    let mut body = app.body(1);
    body["alias"] = json!("legacy");
    let created = app.create(&body).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let id = created.body["payment_id"].as_i64().unwrap();
    assert_eq!(
        provider_webhook(&app.url, &app.client, id, "finished").await,
        200
    );
    assert_eq!(payment(&app, id).await["status"], "PAYMENT_FINISHED");

    let r = refund(&app, id, json!({})).await;
    assert_eq!(
        (r.status, r.code()),
        (409, "refunds_not_supported"),
        "{:?}",
        r.body
    );
    let read = app.merchant.read_api_key.clone();
    let listed = app
        .get(&format!("/api/v1/payments/{id}/refunds"), Some(&read))
        .await;
    assert_eq!(listed.body["refunds"], json!([]));
}
