//! paygate's notifications at the shop: signed ones settle an order once,
//! everything else is refused and changes nothing.

use std::time::Duration;

use serde_json::json;

use super::{notification, now, signed, spawn_shop, spawn_shop_notified};
use crate::api::app::new_merchant;

#[tokio::test]
async fn signed_notifications_settle_orders_once() {
    let shop = spawn_shop().await;
    let (paid, paid_payment) = shop.pending_order("sandbox").await;
    let finished = notification("payment.finished", paid, paid_payment);
    let answer = shop.notify_signed("msg-paid", &finished).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(
        answer.body,
        json!({"result": "updated", "order_id": paid, "order_status": "ORDER_FINISHED"})
    );
    assert_eq!(shop.order_status(paid).await, "ORDER_FINISHED");
    let page = shop.page("/orders").await;
    let cell =
        format!("id=\"order-{paid}-status\" class=\"status ORDER_FINISHED\">ORDER_FINISHED<");
    assert!(page.contains(&cell), "{page}");
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"2\">"));

    // A redelivery (same webhook-id, signed afresh) is a no-op, and so is a
    // contrary notification: a settled order stays settled.
    let again = shop.notify_signed("msg-paid", &finished).await;
    assert_eq!(
        (again.status, &again.body["result"]),
        (200, &json!("duplicate"))
    );
    let contrary = notification("payment.failed", paid, paid_payment);
    let late = shop.notify_signed("msg-late", &contrary).await;
    assert_eq!(
        (late.status, &late.body["result"]),
        (200, &json!("already_settled"))
    );
    assert_eq!(shop.order_status(paid).await, "ORDER_FINISHED");

    let (declined, declined_payment) = shop.pending_order("stripe").await;
    let failed = notification("payment.failed", declined, declined_payment);
    let answer = shop.notify_signed("msg-declined", &failed).await;
    assert_eq!(answer.body["order_status"], "ORDER_FAILED");
    assert_eq!(shop.order_status(declined).await, "ORDER_FAILED");
    let page = shop.page("/orders").await;
    assert!(page.contains(&format!(
        "id=\"order-{declined}-status\" class=\"status ORDER_FAILED\""
    )));
}

#[tokio::test]
async fn bad_signatures_are_refused_and_change_nothing() {
    let shop = spawn_shop().await;
    let (order, payment) = shop.pending_order("sandbox").await;
    let body = notification("payment.finished", order, payment);
    let secret = shop.app.merchant.webhook_secret.clone();
    let other_merchant = new_merchant(&shop.app.merchants, 1, false).await;
    let good = signed(&secret, "msg-1", now(), &body);
    let with = |name: &str, value: String| {
        let mut headers = good.clone();
        headers.iter_mut().find(|(n, _)| *n == name).unwrap().1 = value;
        headers
    };
    let signature = good[2].1.clone();
    let tampered = body.replace("payment.finished", "payment.failed");
    let cases = [
        (
            "tampered body",
            tampered.clone(),
            good.clone(),
            "invalid_signature",
        ),
        (
            "another merchant's secret",
            body.clone(),
            signed(&other_merchant.webhook_secret, "msg-1", now(), &body),
            "invalid_signature",
        ),
        (
            "truncated signature",
            body.clone(),
            with(
                "webhook-signature",
                signature[..signature.len() - 6].to_owned(),
            ),
            "invalid_signature",
        ),
        (
            "another webhook-id",
            body.clone(),
            with("webhook-id", "msg-2".into()),
            "invalid_signature",
        ),
        (
            "another timestamp",
            body.clone(),
            with("webhook-timestamp", (now() + 1).to_string()),
            "invalid_signature",
        ),
        (
            "five minutes and a bit old",
            body.clone(),
            signed(&secret, "msg-1", now() - 310, &body),
            "signature_expired",
        ),
        (
            "from the future",
            body.clone(),
            signed(&secret, "msg-1", now() + 400, &body),
            "signature_expired",
        ),
    ];
    for (case, sent, headers, code) in cases {
        let refused = shop.notify(&sent, &headers).await;
        assert_eq!(
            (refused.status, refused.body["error"].as_str()),
            (401, Some(code)),
            "{case}"
        );
    }
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let headers: Vec<_> = good
            .iter()
            .filter(|(n, _)| *n != missing)
            .cloned()
            .collect();
        let refused = shop.notify(&body, &headers).await;
        assert_eq!(refused.status, 401, "without {missing}");
        assert_eq!(refused.body["error"], "invalid_signature");
    }
    assert_eq!(shop.order_status(order).await, "ORDER_PENDING");

    // Refusals are not remembered: the genuine notification still counts.
    let accepted = shop.notify(&body, &good).await;
    assert_eq!(accepted.body["result"], "updated", "{:?}", accepted.body);
    assert_eq!(shop.order_status(order).await, "ORDER_FINISHED");
}

#[tokio::test]
async fn notifications_the_shop_cannot_apply() {
    let shop = spawn_shop().await;
    let (order, payment) = shop.pending_order("sandbox").await;

    // Another payment for this order: refused, and refused again on retry.
    let other_payment = notification("payment.finished", order, payment + 1000);
    for _ in 0..2 {
        let refused = shop.notify_signed("msg-other", &other_payment).await;
        assert_eq!(refused.status, 409, "{:?}", refused.body);
        assert_eq!(refused.body["error"], "payment_mismatch");
    }
    assert_eq!(shop.order_status(order).await, "ORDER_PENDING");

    // Nothing to act on, but authentic: 200, so paygate stops retrying.
    let unknown_order = notification("payment.finished", order + 1000, payment);
    let answer = shop.notify_signed("msg-unknown", &unknown_order).await;
    assert_eq!(
        (answer.status, &answer.body["result"]),
        (200, &json!("unknown_order"))
    );
    let refund = notification("payment.finished", order, payment)
        .replace("payment.finished", "payment.refunded");
    let answer = shop.notify_signed("msg-refund", &refund).await;
    assert_eq!(
        (answer.status, &answer.body["result"]),
        (200, &json!("ignored"))
    );

    // Signed but not a notification.
    let answer = shop.notify_signed("msg-junk", "{\"hello\": 1}").await;
    assert_eq!(
        (answer.status, &answer.body["error"]),
        (400, &json!("invalid_request"))
    );
    assert_eq!(shop.order_status(order).await, "ORDER_PENDING");
}

/// The loop the README walks through: order from the page, pay on the
/// sandbox's page, the provider's webhook finishes the payment at paygate,
/// the outbox, RabbitMQ and the notifier bring the signed notification to
/// the shop, and the order is finished.
#[tokio::test]
async fn the_whole_loop_from_order_to_finished() {
    let shop = spawn_shop_notified().await;
    let clicked = shop
        .order_form(&[("product_id", "1"), ("amount", "2"), ("alias", "sandbox")])
        .await;
    assert_eq!(clicked.status(), 303);
    let payment_page = clicked.headers()["location"].to_str().unwrap().to_owned();
    let paid = shop
        .client
        .post(format!("{payment_page}/pay"))
        .send()
        .await
        .unwrap();
    // Back to the order's own page.
    assert_eq!(paid.status(), 303);

    let order = shop.get("/api/v1/orders").await.body["orders"][0].clone();
    let order_id = order["order_id"].as_i64().unwrap();
    let back = format!("{}/orders/{order_id}", shop.url);
    assert_eq!(paid.headers()["location"], back.as_str());
    let started = std::time::Instant::now();
    while shop.order_status(order_id).await != "ORDER_FINISHED" {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the order never finished: {:?}",
            shop.get(&format!("/api/v1/orders/{order_id}")).await.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = shop.page("/orders").await;
    assert!(page.contains(&format!(
        "id=\"order-{order_id}-status\" class=\"status ORDER_FINISHED\""
    )));
    // paygate recorded the one delivery. The shop finishes the order
    // before it answers, and paygate records the answer after, so the
    // record may be a moment behind the order.
    let payment_id = order["payment_id"].as_i64().unwrap();
    let key = shop.app.merchant.read_api_key.clone();
    let started = std::time::Instant::now();
    let notifications = loop {
        let listed = shop
            .app
            .get(
                &format!("/api/v1/payments/{payment_id}/notifications"),
                Some(&key),
            )
            .await;
        if listed.body["notifications"][0]["status"] == "LOG_SUCCESS" {
            break listed;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the delivery was never recorded: {}",
            listed.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        notifications.body["notifications"][0]["attempts"][0]["status_code"],
        200
    );
}
