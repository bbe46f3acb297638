//! `paygate-demo serve`: a demo merchant with fresh keys, the `stripe` and
//! `sandbox` aliases bound to the shipped plugins, and beside the API the
//! sandbox provider (`:8002`) and the demo shop (`:8001`), which orders as
//! the demo merchant and receives its notifications. One command shows the
//! whole loop: order, payment page, provider webhook, notification, order
//! finished.

use std::net::SocketAddr;

use anyhow::Context;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::sandbox::{self, SandboxArgs};
use crate::shop::{Shop, ShopArgs};
use paygate::config::Config;
use paygate::gateway::Gateway;
use paygate::merchants::NewMerchant;
use paygate::plugins::Secret;
use paygate::providers::AliasBinding;

const DEMO_MERCHANT: &str = "Demo shop";
/// Where the demo shop listens and where buyers' browsers reach it.
const SHOP_LISTEN: &str = "0.0.0.0:8001";
const SHOP_URL: &str = "http://localhost:8001";
const SANDBOX_LISTEN: &str = "0.0.0.0:8002";
const SANDBOX_URL: &str = "http://localhost:8002";

/// What the demo merchant needs to use paygate: the keys are fresh on every
/// start, because they are only ever shown when made.
pub struct DemoMerchant {
    pub merchant_id: i64,
    pub subscription_id: i64,
    pub api_key: Secret,
    pub read_api_key: Secret,
    pub webhook_secret: Secret,
}

/// Seeds the demo data, prints it, and starts the sandbox provider and the
/// demo shop beside the API listening on `api_port`, until `shutdown`.
pub async fn start(
    gw: &Gateway,
    config: &Config,
    shop_database_url: &str,
    api_port: u16,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let api_url = format!("http://localhost:{api_port}");
    let merchant = seed(gw).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&summary(&merchant, &api_url))?
    );
    let sandbox_args = SandboxArgs {
        listen: SANDBOX_LISTEN.parse().expect("static address"),
        public_url: SANDBOX_URL.into(),
        gateway_url: api_url.clone(),
        internal_webhook_secret: config.internal_webhook_secret.clone(),
        stripe_webhook_secret: config.stripe_webhook_secret.clone(),
    };
    let listener = tokio::net::TcpListener::bind(sandbox_args.listen)
        .await
        .with_context(|| format!("binding the sandbox provider to {}", sandbox_args.listen))?;
    tokio::spawn(sandbox::serve(listener, sandbox_args, shutdown.clone()));

    let shop_args = ShopArgs {
        listen: SHOP_LISTEN.parse::<SocketAddr>().expect("static address"),
        paygate_api_url: api_url,
        api_key: merchant.api_key,
        subscription_id: merchant.subscription_id,
        webhook_secret: merchant.webhook_secret,
        database_url: shop_database_url.to_owned(),
    };
    let shop = Shop::build(&shop_args)
        .await
        .context("starting the demo shop")?;
    tokio::spawn(async move {
        if let Err(error) = shop.run(shutdown).await {
            tracing::error!(error = format!("{error:#}"), "the demo shop stopped");
        }
    });
    Ok(())
}

/// Binds the demo aliases and makes sure the demo merchant exists, with
/// fresh keys and its notifications going to the demo shop.
pub async fn seed(gw: &Gateway) -> anyhow::Result<DemoMerchant> {
    for (alias, provider, verifier) in [
        ("stripe", "stripe", "stripe-webhook"),
        ("sandbox", "sandbox", "internal-webhook"),
    ] {
        gw.providers
            .set(&AliasBinding {
                alias: alias.into(),
                provider_plugin: provider.into(),
                verifier_plugin: Some(verifier.into()),
                available: true,
            })
            .await?;
    }
    let callback_url = format!("{SHOP_URL}/api/v1/notifications");
    let Some(id) = gw.merchants.id_by_name(DEMO_MERCHANT).await? else {
        let created = gw
            .merchants
            .create(&NewMerchant {
                name: DEMO_MERCHANT.into(),
                callback_url: Some(callback_url),
                tokens: 1_000_000,
                currency: "EUR".into(),
                require_signed_writes: false,
            })
            .await?;
        return Ok(DemoMerchant {
            merchant_id: created.merchant_id,
            subscription_id: created.subscription_id,
            api_key: Secret::new(created.api_key),
            read_api_key: Secret::new(created.read_api_key),
            webhook_secret: Secret::new(created.webhook_secret),
        });
    };
    // A merchant kept from an earlier version of the demo may predate the
    // shop, or point elsewhere.
    gw.merchants.set_callback_url(id, &callback_url).await?;
    let (api_key, read_api_key) = gw
        .merchants
        .rotate_keys(id)
        .await?
        .context("the demo merchant was just found")?;
    let subscription_id = gw
        .merchants
        .first_subscription(id)
        .await?
        .unwrap_or_default();
    let webhook_secret = gw
        .merchants
        .webhook_secret(id)
        .await?
        .context("the demo merchant was just found")?;
    Ok(DemoMerchant {
        merchant_id: id,
        subscription_id,
        api_key,
        read_api_key,
        webhook_secret,
    })
}

/// What `paygate-demo serve` prints: where to go, the keys, and a ready curl.
pub fn summary(merchant: &DemoMerchant, api_url: &str) -> serde_json::Value {
    // A fresh order number each start, so the printed curl works again
    // against databases kept from an earlier run, and stays clear of the
    // shop's own order numbers (1, 2, 3 …).
    let order_id = chrono::Utc::now().timestamp();
    let (api_key, subscription_id) = (merchant.api_key.expose(), merchant.subscription_id);
    let curl = format!(
        "curl -s -X POST {api_url}/api/v1/payments -H 'X-Api-Key: {api_key}' -H 'Content-Type: application/json' \
         -d '{{\"order_id\": {order_id}, \"amount\": 1, \"price\": \"10.00\", \"alias\": \"stripe\", \"subscription_id\": {subscription_id}}}'"
    );
    json!({
        "shop": SHOP_URL,
        "orders": format!("{SHOP_URL}/orders"),
        "merchant_id": merchant.merchant_id,
        "subscription_id": subscription_id,
        "api_key": api_key,
        "read_api_key": merchant.read_api_key.expose(),
        "try": curl,
    })
}
