//! `paygate-demo serve`'s own work, in process: the demo merchant is seeded
//! with fresh keys, the sandbox provider and the shop start (on free ports
//! here), the merchant's notifications go to the shop wherever it listens,
//! and the shop can order through the gateway.

use paygate::Config;
use paygate_demo::seed::{self, DemoListen};
use serde_json::json;

use crate::api::app::{cache_dir, databases, spawn_app};

#[tokio::test]
async fn the_demo_seeds_its_merchant_and_starts_a_shop_that_orders() {
    let app = spawn_app().await;
    let dbs = databases().await;
    let config = Config::for_tests(
        dbs.clone(),
        std::env::temp_dir(),
        cache_dir(),
        "unused:".into(),
    );
    let api_port: u16 = app.url.rsplit(':').next().unwrap().parse().unwrap();
    let free = DemoListen {
        shop: "127.0.0.1:0".parse().unwrap(),
        sandbox: "127.0.0.1:0".parse().unwrap(),
    };
    let shop_db = format!("{}_demo_shop", dbs.payments);
    let start = || {
        seed::start(
            (&app.merchants, &app.providers),
            &config,
            &shop_db,
            api_port,
            free,
            app.shutdown.clone(),
        )
    };
    let first = start().await.expect("the demo starts");
    let started = start().await.expect("and starts again over its own data");
    // The same merchant, with keys made fresh on every start.
    assert_eq!(started.merchant.merchant_id, first.merchant.merchant_id);
    assert_ne!(started.merchant.api_key, first.merchant.api_key);

    let merchants = sqlx::PgPool::connect(&dbs.merchants).await.unwrap();
    let callback: Option<String> =
        sqlx::query_scalar("SELECT callback_url FROM merchants WHERE id = $1")
            .bind(started.merchant.merchant_id)
            .fetch_one(&merchants)
            .await
            .unwrap();
    assert_eq!(
        callback.as_deref(),
        Some(format!("{}/api/v1/notifications", started.shop_url).as_str())
    );

    let summary = seed::summary(&started, &app.url);
    assert_eq!(summary["shop"], started.shop_url.as_str());
    assert_eq!(summary["api_key"], started.merchant.api_key.expose());

    let client = reqwest::Client::new();
    let sandbox = client.get(&started.sandbox_url).send().await.unwrap();
    assert_eq!(sandbox.status(), 404, "the sandbox answers");
    let placed = client
        .post(format!("{}/api/v1/orders", started.shop_url))
        .json(&json!({"product_id": 1, "amount": 1, "alias": "sandbox"}))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 201);
    let placed: serde_json::Value = placed.json().await.unwrap();
    assert_eq!(placed["status"], "ORDER_PENDING", "{placed}");
    assert!(placed["payment_id"].as_i64().is_some(), "{placed}");
}
