//! The demo shop: a small storefront that is a merchant of paygate and
//! nothing more. It sells a fixed [`order::CATALOGUE`], creates each
//! order's payment through paygate's public API with its own key
//! ([`client`]), sends the buyer to the payment page, and settles the order
//! when paygate's signed notification arrives ([`notifications`]). Orders
//! live in the shop's own database ([`store`], migrations in
//! `migrations/demo/`), never in paygate's. [`api`] is the JSON side
//! (`/api/v1/orders`, `/api/v1/notifications`), [`pages`] the HTML one.
//!
//! `paygate-demo shop` runs it alone; `paygate-demo serve` runs it beside
//! the API for the demo merchant, so the README's loop works in one command.

mod api;
mod client;
mod error;
pub mod notifications;
pub mod order;
mod pages;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use client::PaygateClient;
use error::ShopError;
use notifications::WebhookKey;
use order::{NewOrder, OrderStatus};
use paygate::OrderId;
use paygate::http::middleware::no_sniffing_or_framing;
use paygate::plugins::Secret;
use store::{Order, OrderStore};

/// The shop's database on a developer machine, beside paygate's four.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/paygate_demo_shop";

/// The shop's migrations, embedded at build time.
static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/demo");

/// Largest request body: orders and notifications are a few hundred bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Settings of the demo shop, from flags or environment variables.
#[derive(Clone, Debug, clap::Args)]
pub struct ShopArgs {
    /// Address the shop listens on.
    #[arg(long, env = "DEMO_SHOP_LISTEN", default_value = "127.0.0.1:8001")]
    pub listen: SocketAddr,

    /// paygate's base URL; payments are created at its `/api/v1/payments`.
    #[arg(long, env = "PAYGATE_API_URL", default_value = "http://localhost:8080")]
    pub paygate_api_url: String,

    /// The shop's write key at paygate (`pk_…`).
    #[arg(long, env = "DEMO_SHOP_API_KEY", hide_env_values = true)]
    pub api_key: Secret,

    /// The subscription the shop's payments are charged to.
    #[arg(long, env = "DEMO_SHOP_SUBSCRIPTION_ID")]
    pub subscription_id: i64,

    /// The shop's webhook secret at paygate (`whsec_…`), to verify notifications.
    #[arg(long, env = "DEMO_SHOP_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Secret,

    /// The shop's own database, where the orders are kept (created and
    /// migrated at start when the server allows).
    #[arg(
        long,
        env = "DEMO_SHOP_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true
    )]
    pub database_url: String,

    /// The shop's URL as buyers' browsers reach it: each payment returns
    /// the buyer to its order's page there (`{url}/orders/{id}`). Default:
    /// `http://` and the address the shop listens on.
    #[arg(long, env = "DEMO_SHOP_PUBLIC_URL")]
    pub public_url: Option<String>,
}

/// Everything a handler needs.
#[derive(Clone)]
struct ShopState {
    inner: Arc<Inner>,
}

struct Inner {
    orders: OrderStore,
    paygate: PaygateClient,
    webhook_key: WebhookKey,
    /// Where buyers' browsers reach the shop, without a trailing `/`.
    public_url: String,
}

/// A built shop: settings checked, database ready, listener bound.
pub struct Shop {
    listener: TcpListener,
    state: ShopState,
}

impl Shop {
    /// Checks the settings, connects to the shop's database, applies its
    /// migrations and binds the listener (port 0 picks a free one). A bad
    /// setting is refused before anything is touched.
    pub async fn build(args: &ShopArgs) -> anyhow::Result<Self> {
        let webhook_key = WebhookKey::parse(args.webhook_secret.expose())
            .map_err(|e| anyhow::anyhow!("DEMO_SHOP_WEBHOOK_SECRET {e}"))?;
        anyhow::ensure!(
            args.subscription_id > 0,
            "DEMO_SHOP_SUBSCRIPTION_ID must be a subscription id (1 or more)"
        );
        let pool = paygate::db::connect_and_migrate(
            "DEMO_SHOP_DATABASE_URL",
            &args.database_url,
            4,
            &MIGRATIONS,
        )
        .await?;
        let paygate = PaygateClient::new(
            &args.paygate_api_url,
            args.api_key.clone(),
            args.subscription_id,
        );
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding DEMO_SHOP_LISTEN={}", args.listen))?;
        let public_url = match &args.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", listener.local_addr()?),
        };
        let inner = Inner {
            orders: OrderStore::new(pool),
            paygate,
            webhook_key,
            public_url,
        };
        Ok(Self {
            listener,
            state: ShopState {
                inner: Arc::new(inner),
            },
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` is cancelled, then finishes the requests in
    /// flight.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let addr = self.local_addr();
        tracing::info!(%addr, "demo shop serving");
        let timeouts = paygate::http::server::ServerTimeouts::default();
        paygate::http::server::serve(self.listener, router(self.state), timeouts, shutdown).await;
        tracing::info!("demo shop stopped");
        Ok(())
    }
}

fn router(state: ShopState) -> Router {
    Router::new()
        .route("/", get(pages::products))
        .route("/orders", get(pages::orders).post(pages::order_form))
        .route(
            "/api/v1/orders",
            post(api::create_order).get(api::list_orders),
        )
        .route("/api/v1/orders/{id}", get(api::show_order))
        .route("/api/v1/orders/{id}/refund", post(api::refund_order))
        .route("/orders/{id}", get(pages::order_page))
        .route("/orders/{id}/refund", post(pages::refund_form))
        .route("/api/v1/notifications", post(api::notification))
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .fallback(|| async { ShopError::NotFound })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Headers every answer carries; pages add their own policy. Orders
/// change, so nothing is cached.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    no_sniffing_or_framing(headers);
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Asks paygate to give back all of a finished order's payment. The order
/// turns `ORDER_REFUNDED` when paygate's `refund.succeeded` arrives; asking
/// again once the refund was made answers the order as it is.
async fn refund_order(state: &ShopState, order_id: OrderId) -> Result<Order, ShopError> {
    let shop = &state.inner;
    let order = shop
        .orders
        .get(order_id)
        .await?
        .ok_or(ShopError::NotFound)?;
    let payment_id = match (order.status, order.payment_id, order.refund_id) {
        (_, _, Some(_)) => return Ok(order),
        (OrderStatus::Finished, Some(payment_id), None) => payment_id,
        _ => return Err(ShopError::NotRefundable(order_id)),
    };
    match shop.paygate.refund_payment(order_id, payment_id).await {
        Ok(refund_id) => {
            tracing::info!(
                order_id = order_id.get(),
                refund_id,
                "demo shop asked for a refund"
            );
            shop.orders.set_refund(order_id, refund_id).await?;
            Ok(shop
                .orders
                .get(order_id)
                .await?
                .ok_or(ShopError::NotFound)?)
        }
        Err(refusal) => {
            tracing::warn!(order_id = order_id.get(), code = %refusal.code, "paygate refused the order's refund");
            Err(ShopError::RefundFailed { order_id, refusal })
        }
    }
}

/// Stores the order, then asks paygate for its payment: the order exists
/// before paygate is called, so its id can be the payment's `order_id`. A
/// refusal fails the order and is passed on.
async fn place_order(state: &ShopState, new: NewOrder) -> Result<Order, ShopError> {
    let shop = &state.inner;
    let order = shop.orders.insert(&new).await?;
    // The buyer comes back to this order's own page, paid or not.
    let back = format!("{}/orders/{}", shop.public_url, order.order_id);
    match shop
        .paygate
        .create_payment(order.order_id, &new, &back)
        .await
    {
        Ok(payment) => {
            tracing::info!(
                order_id = order.order_id.get(),
                payment_id = payment.payment_id.get(),
                "demo shop order placed"
            );
            Ok(shop
                .orders
                .set_payment(order.order_id, payment.payment_id, &payment.payment_url)
                .await?)
        }
        Err(refusal) => {
            tracing::warn!(order_id = order.order_id.get(), code = %refusal.code, "paygate refused the order's payment");
            shop.orders.fail(order.order_id).await?;
            Err(ShopError::PaymentFailed {
                order_id: order.order_id,
                refusal,
            })
        }
    }
}
