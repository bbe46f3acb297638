//! The shop gives an order's money back (issue 15, item 7): a finished
//! order's Refund asks paygate to refund its whole payment, once however
//! often it is pressed, and the order turns `ORDER_REFUNDED` when paygate's
//! signed `refund.succeeded` arrives. An order not paid has nothing to
//! give back.

use std::time::{Duration, Instant};

use crate::api::app::clicker;

use super::{TestShop, spawn_shop_notified};

/// Waits until the order is `status`.
async fn order_becomes(shop: &TestShop, order_id: i64, status: &str) {
    let started = Instant::now();
    while shop.order_status(order_id).await != status {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "order {order_id} never became {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An order placed and paid on the sandbox's page: (order id, payment id).
pub(super) async fn paid_order(shop: &TestShop) -> (i64, i64) {
    let (order_id, payment_id) = shop.pending_order("sandbox").await;
    let url = shop.payment(payment_id).await["payment_url"]
        .as_str()
        .unwrap()
        .to_owned();
    clicker().post(format!("{url}/pay")).send().await.unwrap();
    order_becomes(shop, order_id, "ORDER_FINISHED").await;
    (order_id, payment_id)
}

#[tokio::test]
async fn a_finished_order_is_refunded_once_and_turns_refunded() {
    let shop = spawn_shop_notified().await;
    let (pending, _) = shop.pending_order("sandbox").await;
    let early = shop
        .client
        .post(format!("{}/api/v1/orders/{pending}/refund", shop.url))
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), 409);
    let early: serde_json::Value = early.json().await.unwrap();
    assert_eq!(early["error"], "order_not_refundable");

    let (order_id, payment_id) = paid_order(&shop).await;
    // The page offers the button; pressing it twice refunds once.
    let page = shop.page("/orders").await;
    assert!(
        page.contains(&format!("id=\"refund-{order_id}\"")),
        "{page}"
    );
    for _ in 0..2 {
        let pressed = shop
            .client
            .post(format!("{}/orders/{order_id}/refund", shop.url))
            .send()
            .await
            .unwrap();
        assert_eq!(pressed.status(), 303);
        assert_eq!(pressed.headers()["location"], "../../orders");
    }
    order_becomes(&shop, order_id, "ORDER_REFUNDED").await;
    let payment = shop.payment(payment_id).await;
    assert_eq!(payment["refunded"], payment["price"], "{payment}");
    let key = shop.app.merchant.read_api_key.clone();
    let refunds = shop
        .app
        .get(
            &format!("/api/v1/payments/{payment_id}/refunds"),
            Some(&key),
        )
        .await;
    assert_eq!(refunds.body["refunds"].as_array().unwrap().len(), 1);
    let page = shop.page("/orders").await;
    assert!(
        !page.contains(&format!("id=\"refund-{order_id}\"")),
        "{page}"
    );
    assert!(page.contains("ORDER_REFUNDED"), "{page}");
}
