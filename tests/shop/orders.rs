//! Placing orders, as JSON and from the HTML form: each opens a payment at
//! paygate for the order's id; invalid orders and paygate's refusals.

use serde_json::{Value, json};

use super::{TestShop, spawn_shop, spawn_shop_with};
use paygate::plugins::Secret;

#[tokio::test]
async fn a_json_order_opens_its_payment_at_paygate() {
    let shop = spawn_shop().await;
    let placed = shop
        .order(json!({"product_id": 2, "amount": 3, "alias": "sandbox"}))
        .await;
    assert_eq!(placed.status, 201, "{:?}", placed.body);
    let order_id = placed.body["order_id"].as_i64().unwrap();
    let payment_id = placed.body["payment_id"].as_i64().unwrap();
    let payment_url = placed.body["payment_url"].as_str().unwrap();
    assert_eq!(placed.body["status"], "ORDER_PENDING");
    let sandbox_page = format!("{}/pay/pl_", shop.app.sandbox_url);
    assert!(payment_url.starts_with(&sandbox_page), "{payment_url}");

    // paygate holds a payment for this very order: 3 mugs at 9.90.
    let payment = shop.payment(payment_id).await;
    assert_eq!(payment["order_id"], order_id);
    assert_eq!(
        (&payment["amount"], &payment["price"]),
        (&json!("3"), &json!("29.70"))
    );
    assert_eq!(
        (&payment["currency"], &payment["provider"]),
        (&json!("EUR"), &json!("sandbox"))
    );
    assert_eq!(payment["payment_url"], payment_url);

    let shown = shop.get(&format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(shown.status, 200);
    for (field, value) in [
        ("product_id", json!(2)),
        ("quantity", json!(3)),
        ("price", json!("29.70")),
        ("alias", json!("sandbox")),
        ("payment_id", json!(payment_id)),
        ("status", json!("ORDER_PENDING")),
    ] {
        assert_eq!(shown.body[field], value, "{field}: {:?}", shown.body);
    }

    // A Stripe order goes to the sandbox's Checkout page.
    let stripe = shop
        .order(json!({"product_id": 1, "amount": 1, "alias": "stripe"}))
        .await;
    assert_eq!(stripe.status, 201, "{:?}", stripe.body);
    let checkout = format!("{}/pay/cs_test_", shop.app.sandbox_url);
    assert!(
        stripe.body["payment_url"]
            .as_str()
            .unwrap()
            .starts_with(&checkout)
    );

    let listed = shop.get("/api/v1/orders").await;
    let ids: Vec<_> = orders(&listed.body)
        .iter()
        .map(|o| o["order_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [stripe.body["order_id"].as_i64().unwrap(), order_id]);
    assert_eq!(shop.get("/api/v1/orders/999999").await.status, 404);
    assert_eq!(shop.get("/api/v1/orders/abc").await.status, 404);
}

#[tokio::test]
async fn the_order_form_sends_the_browser_to_the_payment_page() {
    let shop = spawn_shop().await;
    let products = shop.page("/").await;
    for id in 1..=4 {
        assert!(
            products.contains(&format!("id=\"order-{id}\"")),
            "{products}"
        );
    }
    assert!(products.contains("<form method=\"post\" action=\"orders\">"));
    assert!(products.contains("<option value=\"sandbox\">"));
    assert!(products.contains("<option value=\"adyen\">"));

    let clicked = shop
        .order_form(&[("product_id", "4"), ("amount", "2"), ("alias", "stripe")])
        .await;
    assert_eq!(clicked.status(), 303);
    let location = clicked.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&shop.app.sandbox_url), "{location}");

    let listed = shop.get("/api/v1/orders").await;
    let order = &orders(&listed.body)[0];
    assert_eq!(order["payment_url"], location.as_str());
    assert_eq!(order["price"], "8.50");
    let payment = shop.payment(order["payment_id"].as_i64().unwrap()).await;
    assert_eq!(payment["order_id"], order["order_id"]);

    // The browser lands on the sandbox's page with its Pay button.
    let page = shop.client.get(&location).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("id=\"pay\""));

    // A bad form is answered with a page naming the field; nothing is stored.
    let refused = shop
        .order_form(&[("product_id", "4"), ("amount", "0"), ("alias", "stripe")])
        .await;
    assert_eq!(refused.status(), 400);
    let text = refused.text().await.unwrap();
    assert!(text.contains("<code>amount</code>"), "{text}");
    assert_eq!(orders(&shop.get("/api/v1/orders").await.body).len(), 1);
}

#[tokio::test]
async fn invalid_orders_are_refused_and_nothing_is_stored() {
    let shop = spawn_shop().await;
    let fields_of = |body: &Value| -> Vec<String> {
        body["fields"]
            .as_array()
            .map(|fields| fields.iter().map(|f| f["field"].to_string()).collect())
            .unwrap_or_default()
    };
    for (body, field) in [
        (
            json!({"product_id": 99, "amount": 1, "alias": "stripe"}),
            "product_id",
        ),
        (
            json!({"product_id": "1", "amount": 1, "alias": "stripe"}),
            "product_id",
        ),
        (json!({"amount": 1, "alias": "stripe"}), "product_id"),
        (
            json!({"product_id": 1, "amount": 0, "alias": "stripe"}),
            "amount",
        ),
        (
            json!({"product_id": 1, "amount": 101, "alias": "stripe"}),
            "amount",
        ),
        (
            json!({"product_id": 1, "amount": 1.5, "alias": "stripe"}),
            "amount",
        ),
        (
            json!({"product_id": 1, "amount": "2", "alias": "stripe"}),
            "amount",
        ),
        (
            json!({"product_id": 1, "amount": 1e30, "alias": "stripe"}),
            "amount",
        ),
        (json!({"product_id": 1, "amount": 1, "alias": ""}), "alias"),
        (json!({"product_id": 1, "amount": 1}), "alias"),
        (
            json!({"product_id": 1, "amount": 1, "alias": "paypal"}),
            "alias",
        ),
        (json!({"product_id": 1, "amount": 1, "alias": 7}), "alias"),
    ] {
        let refused = shop.order(body.clone()).await;
        assert_eq!(
            (refused.status, refused.body["error"].as_str()),
            (400, Some("invalid_request")),
            "{body}"
        );
        assert_eq!(fields_of(&refused.body), [format!("\"{field}\"")], "{body}");
    }
    for raw in ["{", "[1, 2]", "", "null"] {
        let refused = shop
            .client
            .post(format!("{}/api/v1/orders", shop.url))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{raw:?}");
    }
    let not_json = shop
        .client
        .post(format!("{}/api/v1/orders", shop.url))
        .header("content-type", "text/plain")
        .body(r#"{"product_id": 1, "amount": 1, "alias": "stripe"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);

    assert!(orders(&shop.get("/api/v1/orders").await.body).is_empty());
    assert_eq!(shop.app.payment_count().await, 0);
}

#[tokio::test]
async fn a_payment_paygate_refuses_fails_the_order() {
    let wrong_key = spawn_shop_with(|mut args| {
        args.api_key = Secret::new("pk_not-a-key");
        args
    })
    .await;
    assert_refused(&wrong_key, "invalid_api_key").await;

    let no_gateway = spawn_shop_with(|mut args| {
        // A port nothing listens on: the connection is refused at once.
        args.paygate_api_url = "http://127.0.0.1:9".into();
        args
    })
    .await;
    assert_refused(&no_gateway, "gateway_unreachable").await;
}

/// The order is answered 502 with paygate's code, and stored failed.
async fn assert_refused(shop: &TestShop, gateway_error: &str) {
    let refused = shop
        .order(json!({"product_id": 3, "amount": 1, "alias": "sandbox"}))
        .await;
    assert_eq!(refused.status, 502, "{:?}", refused.body);
    assert_eq!(refused.body["error"], "payment_failed");
    assert_eq!(refused.body["gateway_error"], gateway_error);
    let order_id = refused.body["order_id"].as_i64().unwrap();
    assert_eq!(shop.order_status(order_id).await, "ORDER_FAILED");
}

fn orders(listing: &Value) -> Vec<Value> {
    listing["orders"].as_array().unwrap().clone()
}

/// Each payment brings its buyer back to the order's own page: the shop
/// sends `{shop}/orders/{id}` as the return and cancel URL, the sandbox's
/// page redirects there after Pay or Decline, and the page shows the order
/// with links that lead back up to the shop.
#[tokio::test]
async fn the_buyer_comes_back_to_the_orders_own_page() {
    let shop = super::spawn_shop_notified().await;
    for (button, status) in [("pay", "ORDER_FINISHED"), ("decline", "ORDER_FAILED")] {
        let (order_id, payment_id) = shop.pending_order("sandbox").await;
        let back = format!("{}/orders/{order_id}", shop.url);
        let payment = shop.payment(payment_id).await;
        assert_eq!(
            (&payment["return_url"], &payment["cancel_url"]),
            (&json!(back), &json!(back)),
            "{payment}"
        );
        assert_eq!(
            payment["metadata"],
            json!({"shop_order": order_id.to_string()})
        );
        let url = payment["payment_url"].as_str().unwrap();
        let clicked = shop
            .client
            .post(format!("{url}/{button}"))
            .send()
            .await
            .unwrap();
        assert_eq!(clicked.status(), 303, "{button}");
        assert_eq!(clicked.headers()["location"], back.as_str(), "{button}");

        let started = std::time::Instant::now();
        while shop.order_status(order_id).await != status {
            assert!(started.elapsed() < std::time::Duration::from_secs(20));
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let page = shop.page(&format!("/orders/{order_id}")).await;
        assert!(
            page.contains(&format!(
                "id=\"order-{order_id}-status\" class=\"status {status}\""
            )),
            "{page}"
        );
        assert!(page.contains("href=\"../orders\""), "{page}");
    }
    let missing = shop.get("/orders/999999").await;
    assert_eq!(missing.status, 404);
}
