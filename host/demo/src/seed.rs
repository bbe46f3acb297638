//! `paygate-demo serve`: a demo merchant with fresh keys, the `stripe`,
//! `adyen` and `sandbox` aliases bound to the shipped plugins, and beside
//! the API the sandbox provider (`:8002`) and the demo shop (`:8001`),
//! which orders as the demo merchant and receives its notifications. One command shows the
//! whole loop: order, payment page, provider webhook, notification, order
//! finished.

use std::net::SocketAddr;

use anyhow::Context;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::sandbox::{self, SandboxArgs};
use crate::shop::{Shop, ShopArgs};
use paygate::config::Config;
use paygate::merchants::{MerchantStore, NewMerchant};
use paygate::plugins::Secret;
use paygate::providers::{AliasBinding, ProviderStore};
use paygate::{MerchantId, SubscriptionId};

const DEMO_MERCHANT: &str = "Demo shop";

/// Where the demo's two servers listen; port 0 picks a free one. Buyers'
/// browsers reach them at `http://localhost:<port>`.
#[derive(Clone, Copy, Debug)]
pub struct DemoListen {
    pub shop: SocketAddr,
    pub sandbox: SocketAddr,
}

impl Default for DemoListen {
    /// The shop on :8001 and the sandbox provider on :8002, as the README
    /// and the staged plugin specs expect, on loopback only: the sandbox
    /// signs a "payment finished" webhook for whoever presses its Pay
    /// button, so it must not be reachable from elsewhere (security review,
    /// finding 16). `SANDBOX_LISTEN` and `DEMO_SHOP_LISTEN` widen them, for
    /// a container whose ports are published.
    fn default() -> Self {
        Self {
            shop: SocketAddr::from(([127, 0, 0, 1], 8001)),
            sandbox: SocketAddr::from(([127, 0, 0, 1], 8002)),
        }
    }
}

/// What [`start`] started: the demo merchant and where its servers answer.
pub struct Started {
    pub merchant: DemoMerchant,
    pub shop_url: String,
    pub sandbox_url: String,
}

/// What the demo merchant needs to use paygate: the keys are fresh on every
/// start, because they are only ever shown when made.
pub struct DemoMerchant {
    pub merchant_id: MerchantId,
    pub subscription_id: SubscriptionId,
    pub api_key: Secret,
    pub read_api_key: Secret,
    pub webhook_secret: Secret,
}

/// Seeds the demo data and starts the sandbox provider and the demo shop
/// beside the API listening on `api_port`, until `shutdown`. The merchant's
/// notifications go to the shop, wherever it was bound.
pub async fn start(
    (merchants, providers): (&MerchantStore, &ProviderStore),
    config: &Config,
    shop_database_url: &str,
    api_port: u16,
    listen: DemoListen,
    shutdown: CancellationToken,
) -> anyhow::Result<Started> {
    let api_url = format!("http://localhost:{api_port}");
    let merchant = seed(merchants, providers).await?;
    let listener = tokio::net::TcpListener::bind(listen.sandbox)
        .await
        .with_context(|| format!("binding the sandbox provider to {}", listen.sandbox))?;
    let sandbox_url = format!("http://localhost:{}", listener.local_addr()?.port());
    let sandbox_args =
        SandboxArgs::signing_as(config, listen.sandbox, sandbox_url.clone(), api_url.clone());
    tokio::spawn(sandbox::serve(listener, sandbox_args, shutdown.clone()));

    let shop_args = ShopArgs {
        listen: listen.shop,
        paygate_api_url: api_url,
        api_key: merchant.api_key.clone(),
        subscription_id: merchant.subscription_id.get(),
        webhook_secret: merchant.webhook_secret.clone(),
        database_url: shop_database_url.to_owned(),
        // As the demo prints it; port 0 (tests) lets the shop name itself.
        public_url: (listen.shop.port() != 0)
            .then(|| format!("http://localhost:{}", listen.shop.port())),
    };
    let shop = Shop::build(&shop_args)
        .await
        .context("starting the demo shop")?;
    let shop_url = format!("http://localhost:{}", shop.local_addr().port());
    merchants
        .set_callback_url(
            merchant.merchant_id,
            &format!("{shop_url}/api/v1/notifications"),
        )
        .await?;
    tokio::spawn(async move {
        if let Err(error) = shop.run(shutdown).await {
            tracing::error!(error = format!("{error:#}"), "the demo shop stopped");
        }
    });
    Ok(Started {
        merchant,
        shop_url,
        sandbox_url,
    })
}

/// Binds the demo aliases and makes sure the demo merchant exists, with
/// fresh keys; [`start`] points its notifications at the shop.
pub async fn seed(
    merchants: &MerchantStore,
    providers: &ProviderStore,
) -> anyhow::Result<DemoMerchant> {
    for (alias, provider, verifier) in [
        ("stripe", "stripe", "stripe-webhook"),
        ("adyen", "adyen", "adyen-webhook"),
        ("sandbox", "sandbox", "internal-webhook"),
    ] {
        providers
            .set(&AliasBinding {
                alias: alias.into(),
                provider_plugin: provider.into(),
                verifier_plugin: Some(verifier.into()),
                available: true,
            })
            .await?;
    }
    let Some(id) = merchants.id_by_name(DEMO_MERCHANT).await? else {
        let created = merchants
            .create(&NewMerchant {
                name: DEMO_MERCHANT.into(),
                callback_url: None,
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
    let rotated = merchants
        .rotate_keys(id, std::time::Duration::ZERO)
        .await?
        .context("the demo merchant was just found")?;
    let (api_key, read_api_key) = (rotated.api_key, rotated.read_api_key);
    let subscription_id = merchants
        .first_subscription(id)
        .await?
        .context("the demo merchant has no subscription")?;
    let webhook_secret = merchants
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
pub fn summary(started: &Started, api_url: &str) -> serde_json::Value {
    let (merchant, shop_url) = (&started.merchant, &started.shop_url);
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
        "shop": shop_url,
        "orders": format!("{shop_url}/orders"),
        "merchant_id": merchant.merchant_id,
        "subscription_id": subscription_id,
        "api_key": api_key,
        "read_api_key": merchant.read_api_key.expose(),
        "try": curl,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::DemoListen;
    use crate::sandbox::SandboxArgs;
    use crate::shop::ShopArgs;

    /// Security review, finding 16: the sandbox provider listened on every
    /// interface, and it signs a "payment finished" webhook for whoever
    /// presses its Pay button.
    #[test]
    fn the_demos_servers_listen_on_loopback_unless_widened() {
        let demo = DemoListen::default();
        assert!(demo.sandbox.ip().is_loopback() && demo.shop.ip().is_loopback());

        #[derive(Parser)]
        struct Sandbox {
            #[command(flatten)]
            args: SandboxArgs,
        }
        #[derive(Parser)]
        struct Shop {
            #[command(flatten)]
            args: ShopArgs,
        }
        let sandbox = Sandbox::try_parse_from(["sandbox"]).unwrap().args;
        assert!(sandbox.listen.ip().is_loopback(), "{}", sandbox.listen);
        let shop = Shop::try_parse_from([
            "shop",
            "--api-key",
            "pk_x",
            "--subscription-id",
            "1",
            "--webhook-secret",
            "whsec_x",
        ]);
        let shop = shop.unwrap().args;
        assert!(shop.listen.ip().is_loopback(), "{}", shop.listen);
    }
}
