//! `serve --demo`: a demo merchant with fresh keys, the `stripe` and
//! `sandbox` aliases bound to the shipped plugins, and the sandbox provider
//! running beside the API, so a curl from the README works at once.

use serde_json::json;

use crate::gateway::Gateway;
use crate::merchants::NewMerchant;
use crate::providers::AliasBinding;

const DEMO_MERCHANT: &str = "Demo shop";

/// Binds the demo aliases and seeds the demo merchant; returns what to print.
pub async fn seed(gw: &Gateway, api_base: &str) -> anyhow::Result<serde_json::Value> {
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
    // Keys are only ever shown when made: an existing demo merchant gets a
    // fresh pair on every start.
    let (merchant_id, subscription_id, api_key, read_api_key) =
        match gw.merchants.id_by_name(DEMO_MERCHANT).await? {
            Some(id) => {
                let (write, read) = gw
                    .merchants
                    .rotate_keys(id)
                    .await?
                    .expect("the merchant was just found");
                let subscription = gw
                    .merchants
                    .first_subscription(id)
                    .await?
                    .unwrap_or_default();
                (
                    id,
                    subscription,
                    write.expose().to_owned(),
                    read.expose().to_owned(),
                )
            }
            None => {
                let created = gw
                    .merchants
                    .create(&NewMerchant {
                        name: DEMO_MERCHANT.into(),
                        callback_url: Some("http://localhost:8001/api/v1/notifications".into()),
                        tokens: 1_000_000,
                        currency: "EUR".into(),
                        require_signed_writes: false,
                    })
                    .await?;
                (
                    created.merchant_id,
                    created.subscription_id,
                    created.api_key,
                    created.read_api_key,
                )
            }
        };
    // A fresh order number each start, so the printed curl works again
    // against databases kept from an earlier run.
    let order_id = chrono::Utc::now().timestamp();
    let curl = format!(
        "curl -s -X POST {api_base}/api/v1/payments -H 'X-Api-Key: {api_key}' -H 'Content-Type: application/json' \
         -d '{{\"order_id\": {order_id}, \"amount\": 1, \"price\": \"10.00\", \"alias\": \"stripe\", \"subscription_id\": {subscription_id}}}'"
    );
    Ok(json!({
        "merchant_id": merchant_id,
        "subscription_id": subscription_id,
        "api_key": api_key,
        "read_api_key": read_api_key,
        "try": curl,
    }))
}
