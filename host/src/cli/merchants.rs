//! `paygate merchants`: create merchants and manage their keys.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use super::DbArgs;
use crate::config::SecretsKey;
use crate::ids::MerchantId;
use crate::merchants::{MerchantStore, NewMerchant};

#[derive(Subcommand)]
pub enum MerchantCommand {
    /// Create a merchant; prints its id, subscription, keys and secrets as JSON.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        callback_url: Option<String>,
        #[arg(long, default_value_t = 1000)]
        tokens: i64,
        #[arg(long, default_value = "EUR")]
        currency: String,
        #[arg(long)]
        require_signed_writes: bool,
    },
    /// Revoke one API key (effective within 5 s).
    RevokeKey { key: String },
    /// Issue a merchant a new key pair, revoking its keys now or after a
    /// grace period; prints the new keys as JSON.
    RotateKey {
        merchant_id: MerchantId,
        /// How long the old keys keep working (at most 604800).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=604_800))]
        grace_seconds: u64,
    },
    /// Give a merchant a new webhook secret; the old one keeps signing for
    /// the grace period. Prints the new secret as JSON.
    RotateWebhookSecret {
        merchant_id: MerchantId,
        /// How long the old secret keeps signing (at most 604800).
        #[arg(long, default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(0..=604_800))]
        grace_seconds: u64,
    },
    /// Seal every merchant secret under the current `PAYGATE_SECRETS_KEY`
    /// (after a key rotation, or once after upgrading to sealed secrets).
    Reseal,
}

/// Runs `paygate merchants ...`.
pub async fn run(
    db: DbArgs,
    secrets_key: &SecretsKey,
    command: MerchantCommand,
) -> anyhow::Result<()> {
    let sealer = Arc::new(secrets_key.sealer(false)?);
    let dbs = db.connect().await?;
    let store = MerchantStore::new(dbs.merchants, sealer);
    match command {
        MerchantCommand::Create {
            name,
            callback_url,
            tokens,
            currency,
            require_signed_writes,
        } => {
            let currency = crate::payments::Currency::parse(&currency)
                .map_err(|e| anyhow::anyhow!("--currency {e}"))?;
            anyhow::ensure!(tokens >= 0, "--tokens must be 0 or more");
            let created = store
                .create(&NewMerchant {
                    name,
                    callback_url,
                    tokens,
                    currency: currency.to_string(),
                    require_signed_writes,
                })
                .await?;
            println!("{}", serde_json::to_string_pretty(&created)?);
        }
        MerchantCommand::RevokeKey { key } => {
            anyhow::ensure!(store.revoke_key(&key).await?, "no live key matches");
            println!("{{\"revoked\": true}}");
        }
        MerchantCommand::RotateKey {
            merchant_id,
            grace_seconds,
        } => {
            let grace = Duration::from_secs(grace_seconds);
            let rotated = store
                .rotate_keys(merchant_id, grace)
                .await?
                .context("no such merchant")?;
            let json = serde_json::json!({
                "api_key": rotated.api_key.expose(),
                "read_api_key": rotated.read_api_key.expose(),
                "previous_expires_at": rotated.previous_expires_at,
            });
            println!("{json}");
        }
        MerchantCommand::RotateWebhookSecret {
            merchant_id,
            grace_seconds,
        } => {
            let grace = Duration::from_secs(grace_seconds);
            let rotated = store
                .rotate_webhook_secret(merchant_id, grace)
                .await?
                .context("no such merchant")?;
            let json = serde_json::json!({
                "webhook_secret": rotated.webhook_secret.expose(),
                "previous_expires_at": rotated.previous_expires_at,
            });
            println!("{json}");
        }
        MerchantCommand::Reseal => {
            let resealed = store.reseal().await?;
            let accounts = store.accounts.reseal().await?;
            let json = serde_json::json!({"resealed": resealed, "provider_accounts": accounts});
            println!("{json}");
        }
    }
    Ok(())
}
