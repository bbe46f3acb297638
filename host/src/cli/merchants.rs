//! `paygate merchants`: create merchants and manage their keys.

use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;

use super::DbArgs;
use crate::config::SecretsKey;
use crate::db::Databases;
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
    /// Revoke a merchant's keys and issue a new pair; prints them as JSON.
    RotateKey { merchant_id: MerchantId },
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
    let dbs = Databases::connect_and_migrate(&db.databases, 2).await?;
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
        MerchantCommand::RotateKey { merchant_id } => {
            let (write, read) = store
                .rotate_keys(merchant_id)
                .await?
                .context("no such merchant")?;
            println!(
                "{}",
                serde_json::json!({"api_key": write.expose(), "read_api_key": read.expose()})
            );
        }
        MerchantCommand::Reseal => {
            let resealed = store.reseal().await?;
            println!("{}", serde_json::json!({"resealed": resealed}));
        }
    }
    Ok(())
}
