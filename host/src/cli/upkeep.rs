//! `paygate outbox` and `paygate quota`: upkeep of the notification outbox
//! and of quota tokens.

use clap::Subcommand;

use super::DbArgs;
use crate::merchants::MerchantStore;
use crate::outbox::OutboxStore;
use crate::payments::PaymentStore;

#[derive(Subcommand)]
pub enum OutboxCommand {
    /// Print pending, retrying, processing, delivered and failed counts and
    /// the oldest pending age, as JSON.
    Stats,
}

#[derive(Subcommand)]
pub enum QuotaCommand {
    /// Give back the tokens of orders whose payment was never created (or
    /// whose creation failed) once their charge is older than `--grace`;
    /// prints what it did as JSON. Running hosts do this every 30 s.
    Reconcile {
        #[arg(long, default_value = "60s", value_parser = crate::config::parse_duration)]
        grace: std::time::Duration,
    },
}

/// Runs `paygate outbox ...`.
pub async fn outbox(db: DbArgs, command: OutboxCommand) -> anyhow::Result<()> {
    let OutboxCommand::Stats = command;
    let dbs = db.connect().await?;
    let store = OutboxStore::new(dbs.outbox, dbs.outbox_relaxed);
    println!("{}", serde_json::to_string_pretty(&store.stats().await?)?);
    Ok(())
}

/// Runs `paygate quota ...`.
pub async fn quota(
    db: DbArgs,
    secrets_key: &crate::config::SecretsKey,
    command: QuotaCommand,
) -> anyhow::Result<()> {
    let QuotaCommand::Reconcile { grace } = command;
    let sealer = std::sync::Arc::new(secrets_key.sealer(false)?);
    let dbs = db.connect().await?;
    let merchants = MerchantStore::new(dbs.merchants, sealer);
    let payments = PaymentStore::new(dbs.payments);
    let done = crate::quota::reconcile(&merchants, &payments, grace).await?;
    println!(
        "{}",
        serde_json::json!({"confirmed": done.confirmed, "returned": done.returned})
    );
    Ok(())
}
