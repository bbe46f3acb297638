//! The demo shop as a merchant of a real gateway: orders open payments
//! through the public API, signed notifications settle orders once, and
//! anything unsigned, stale or malformed changes nothing. Each shop keeps
//! its orders in a database of its own, so a test sees only its orders.

mod browser;
mod demo;
mod notifications;
mod orders;
mod refunds;

use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use paygate::plugins::Secret;
use paygate_demo::shop::{Shop, ShopArgs};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::api::app::{Reply, TestApp, databases, reply, spawn_app};

/// A shop in front of its own gateway, as the shop's merchant.
struct TestShop {
    app: TestApp,
    url: String,
    /// Shows redirects instead of following them.
    client: reqwest::Client,
}

/// A shop for the app's merchant.
async fn spawn_shop() -> TestShop {
    spawn_shop_with(|args| args).await
}

/// A shop whose merchant's notifications paygate delivers to the shop itself.
async fn spawn_shop_notified() -> TestShop {
    let shop = spawn_shop().await;
    shop.app
        .merchants
        .set_callback_url(
            shop.app.merchant.merchant_id,
            &format!("{}/api/v1/notifications", shop.url),
        )
        .await
        .unwrap();
    shop
}

/// A shop whose settings `tweak` may change (a wrong key, another gateway).
async fn spawn_shop_with(tweak: impl FnOnce(ShopArgs) -> ShopArgs) -> TestShop {
    static SHOPS: AtomicUsize = AtomicUsize::new(0);
    let app = spawn_app().await;
    // Named like the process's other test databases, so a later run drops it.
    let payments = databases().await.payments;
    let own_database = format!("{payments}_shop{}", SHOPS.fetch_add(1, Ordering::Relaxed));
    let args = tweak(shop_args(&app, own_database));
    let shop = Shop::build(&args).await.expect("building the shop");
    let url = format!("http://{}", shop.local_addr());
    tokio::spawn(shop.run(app.shutdown.clone()));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    TestShop { app, url, client }
}

/// Settings of a shop on a free port for the app's merchant.
fn shop_args(app: &TestApp, database_url: String) -> ShopArgs {
    ShopArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        paygate_api_url: app.url.clone(),
        api_key: Secret::new(app.merchant.api_key.clone()),
        subscription_id: app.merchant.subscription_id.get(),
        webhook_secret: Secret::new(app.merchant.webhook_secret.clone()),
        database_url,
        public_url: None,
    }
}

impl TestShop {
    /// `POST /api/v1/orders` with a JSON body.
    async fn order(&self, body: Value) -> Reply {
        let sent = self
            .client
            .post(format!("{}/api/v1/orders", self.url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        reply(sent).await
    }

    /// An order that must succeed: (order id, payment id).
    async fn pending_order(&self, alias: &str) -> (i64, i64) {
        let placed = self
            .order(json!({"product_id": 1, "amount": 1, "alias": alias}))
            .await;
        assert_eq!(placed.status, 201, "{:?}", placed.body);
        let ids = (
            placed.body["order_id"].as_i64(),
            placed.body["payment_id"].as_i64(),
        );
        (ids.0.unwrap(), ids.1.unwrap())
    }

    /// Posts the HTML order form.
    async fn order_form(&self, fields: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(format!("{}/orders", self.url))
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> Reply {
        let sent = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        reply(sent).await
    }

    async fn page(&self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, 200, "{path}: {:?}", page.body);
        page.body.as_str().unwrap().to_owned()
    }

    async fn order_status(&self, order_id: i64) -> String {
        let order = self.get(&format!("/api/v1/orders/{order_id}")).await;
        order.body["status"].as_str().unwrap().to_owned()
    }

    /// The payment as paygate shows it to the merchant.
    async fn payment(&self, payment_id: i64) -> Value {
        let key = self.app.merchant.read_api_key.clone();
        let path = format!("/api/v1/payments/{payment_id}/show");
        let shown = self.app.get(&path, Some(&key)).await;
        assert_eq!(shown.status, 200, "{:?}", shown.body);
        shown.body
    }

    /// Posts a notification with exactly these headers.
    async fn notify(&self, body: &str, headers: &[(&str, String)]) -> Reply {
        let mut request = self
            .client
            .post(format!("{}/api/v1/notifications", self.url))
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        reply(request.send().await.unwrap()).await
    }

    /// Posts a notification signed with the merchant's secret, now.
    async fn notify_signed(&self, webhook_id: &str, body: &str) -> Reply {
        let secret = &self.app.merchant.webhook_secret;
        let headers = signed(secret, webhook_id, now(), body);
        self.notify(body, &headers).await
    }
}

/// A notification body as API.md gives it.
fn notification(event_type: &str, order_id: i64, payment_id: i64) -> String {
    let status = if event_type == "payment.finished" {
        "PAYMENT_FINISHED"
    } else {
        "PAYMENT_FAILED"
    };
    json!({
        "event_id": uuid::Uuid::new_v4().to_string(), "event_type": event_type,
        "payment_id": payment_id, "order_id": order_id, "merchant_id": 1, "status": status,
        "amount": "1", "price": "18.50", "currency": "EUR", "created_at": "2026-11-26T12:00:00Z",
    })
    .to_string()
}

/// The Standard Webhooks headers for `body`, signed with `secret`
/// (`whsec_` + base64 of the key) at Unix time `t`.
fn signed(secret: &str, webhook_id: &str, t: i64, body: &str) -> Vec<(&'static str, String)> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{webhook_id}.{t}.{body}").as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    vec![
        ("webhook-id", webhook_id.to_owned()),
        ("webhook-timestamp", t.to_string()),
        ("webhook-signature", format!("v1,{signature}")),
    ]
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[test]
fn settings_come_from_flags_and_the_environment_and_hide_the_secrets() {
    use clap::{CommandFactory, Parser};
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        shop: ShopArgs,
    }
    // SAFETY: only this test reads or writes these variables.
    unsafe {
        std::env::set_var("DEMO_SHOP_API_KEY", "pk_s3cret-key");
        std::env::set_var("DEMO_SHOP_WEBHOOK_SECRET", "whsec_s3cretsecret");
    }
    let cli = Cli::try_parse_from([
        "demo-shop",
        "--listen=127.0.0.1:9001",
        "--paygate-api-url=http://gateway.test",
        "--subscription-id=7",
    ])
    .unwrap();
    let args = cli.shop;
    assert_eq!(args.listen.port(), 9001);
    assert_eq!(args.paygate_api_url, "http://gateway.test");
    assert_eq!(args.subscription_id, 7);
    assert_eq!(args.api_key.expose(), "pk_s3cret-key");
    assert!(!format!("{args:?}").contains("s3cret"), "{args:?}");
    let help = Cli::command().render_long_help().to_string();
    assert!(help.contains("DEMO_SHOP_WEBHOOK_SECRET"), "{help}");
    assert!(!help.contains("s3cret"), "{help}");
}

#[tokio::test]
async fn a_webhook_secret_that_is_not_one_stops_the_start() {
    let app = spawn_app().await;
    let payments = databases().await.payments;
    let args = ShopArgs {
        webhook_secret: Secret::new("not-a-secret"),
        ..shop_args(&app, format!("{payments}_shop_never"))
    };
    let error = Shop::build(&args).await.err().expect("refused");
    assert!(
        format!("{error:#}").contains("DEMO_SHOP_WEBHOOK_SECRET"),
        "{error:#}"
    );
    // Refused before anything was touched: its database was never created.
    let db = sqlx::PgPool::connect(&payments).await.unwrap();
    let name = format!("{}_shop_never", payments.rsplit('/').next().unwrap());
    let created: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(!created, "{name} was created");
}
