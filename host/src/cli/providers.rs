//! `paygate providers`: provider aliases and the plugins bound to them.

use clap::Subcommand;

use super::DbArgs;
use crate::providers::{AliasBinding, ProviderStore};

#[derive(Subcommand)]
pub enum ProviderCommand {
    /// List the aliases and their plugins.
    List,
    /// Bind an alias to a provider plugin (and its webhook verifier).
    Set {
        alias: String,
        #[arg(long)]
        plugin: String,
        #[arg(long)]
        verifier: Option<String>,
        /// Mark the alias unavailable (payments to it are refused).
        #[arg(long)]
        unavailable: bool,
    },
    /// Delete an alias's binding. Refused while payments or refunds through
    /// it are pending (they need its plugins to finish): mark it
    /// `--unavailable` with `set` first, and remove it once they are done.
    Remove { alias: String },
}

/// Runs `paygate providers ...`.
pub async fn run(db: DbArgs, command: ProviderCommand) -> anyhow::Result<()> {
    let dbs = db.connect().await?;
    let store = ProviderStore::new(dbs.providers);
    match command {
        ProviderCommand::List => {
            println!("{}", serde_json::to_string_pretty(&store.list().await?)?)
        }
        ProviderCommand::Set {
            alias,
            plugin,
            verifier,
            unavailable,
        } => {
            crate::payments::Alias::parse(&alias).map_err(|e| anyhow::anyhow!("alias {e}"))?;
            let binding = AliasBinding {
                alias,
                provider_plugin: plugin,
                verifier_plugin: verifier,
                available: !unavailable,
            };
            store.set(&binding).await?;
            println!("{}", serde_json::to_string(&binding)?);
        }
        ProviderCommand::Remove { alias } => {
            let payments = crate::payments::PaymentStore::new(dbs.payments);
            let (pending, refunds) = payments.unfinished_of_alias(&alias).await?;
            if pending > 0 || refunds > 0 {
                anyhow::bail!(
                    "alias {alias} has {pending} pending payments and {refunds} pending refunds: \
                     they need its plugins to finish; mark it --unavailable and remove it later"
                );
            }
            if !store.remove(&alias).await? {
                anyhow::bail!("no alias {alias}");
            }
            println!("{}", serde_json::json!({ "removed": alias }));
        }
    }
    Ok(())
}
