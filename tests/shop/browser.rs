//! The demo's whole loop in a real browser: headless Chromium opens the
//! shop, orders, follows the payment page and clicks Pay; the provider's
//! signed webhook finishes the payment, the outbox and RabbitMQ carry the
//! outcome, the notifier's signed notification finishes the order, and the
//! orders page shows it. Then Refund gives the money back, and the order
//! turns refunded when paygate's `refund.succeeded` reaches the shop.

use std::time::{Duration, Instant};

use super::spawn_shop_notified;
use crate::webdriver::{self, Browser};

#[tokio::test]
async fn a_browser_orders_pays_refunds_and_sees_the_order_refunded() {
    if !webdriver::wanted() {
        return;
    }
    let shop = spawn_shop_notified().await;

    let browser = Browser::start().await;
    browser.open(&format!("{}/", shop.url)).await;
    browser.click("#order-2").await;
    // The shop redirected to the provider's payment page.
    let started = Instant::now();
    while !browser
        .current_url()
        .await
        .starts_with(&shop.app.sandbox_url)
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never reached the payment page"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.click("#pay").await;
    // Let the click's own navigation (the provider's redirect onward)
    // settle first, or it could land after, and over, the orders page.
    let started = Instant::now();
    while browser
        .current_url()
        .await
        .starts_with(&shop.app.sandbox_url)
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "Pay never left the payment page"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let order = shop.get("/api/v1/orders").await.body["orders"][0].clone();
    let order_id = order["order_id"].as_i64().unwrap();
    assert_eq!(order["product_id"], 2);
    let status_cell = format!("#order-{order_id}-status");
    let shows = async |status: &str| {
        let started = Instant::now();
        loop {
            // Reopened each round: a late navigation can never strand the check.
            browser.open(&format!("{}/orders", shop.url)).await;
            let shown = browser.text_now(&status_cell).await.unwrap_or_default();
            if shown.contains(status) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the orders page still shows {shown:?}, not {status}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    shows("FINISHED").await;
    assert_eq!(shop.order_status(order_id).await, "ORDER_FINISHED");

    browser.click(&format!("#refund-{order_id}")).await;
    // The button submits a form: reopening the page before its POST has
    // been answered would cancel it, so wait for the shop to have asked.
    let asked = Instant::now();
    while shop.get(&format!("/api/v1/orders/{order_id}")).await.body["refund_id"].is_null() {
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "the Refund button's POST never reached the shop"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shows("REFUNDED").await;
    browser.close().await;
    assert_eq!(shop.order_status(order_id).await, "ORDER_REFUNDED");
}
