//! The `paygate` command line: one subcommand per file, each a thin layer
//! of argument parsing and printing over the gateway's services. `main.rs`
//! only parses and calls [`run`].

mod config;
mod merchants;
mod plugins;
mod providers;
mod replay;
mod upkeep;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{DatabaseUrls, SecretsKey};
use crate::db::Databases;
use crate::{App, Config, telemetry};
use config::ConfigCommand;
use merchants::MerchantCommand;
use plugins::PluginsCommand;
use providers::ProviderCommand;
use upkeep::{OutboxCommand, QuotaCommand};

#[derive(Parser)]
#[command(
    name = "paygate",
    version,
    about = "Payments gateway with sandboxed WebAssembly plugins"
)]
/// The `paygate` command line.
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Every `paygate` subcommand.
#[derive(Subcommand)]
pub enum Command {
    /// Serve the merchant API with the plugins of the plugin directory.
    Serve(Box<Config>),
    /// Create the databases if needed and apply pending migrations.
    Migrate(DbArgs),
    /// Check the settings of `serve` without starting it.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage merchants and their API keys.
    Merchants {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        secrets_key: SecretsKey,
        #[command(subcommand)]
        command: MerchantCommand,
    },
    /// Manage provider aliases and the plugins bound to them.
    Providers {
        #[command(flatten)]
        db: DbArgs,
        #[command(subcommand)]
        command: ProviderCommand,
    },
    /// Publish, activate, roll back and check plugins in a registry.
    Plugins {
        /// The registry directory (hosts serve it with the same setting).
        #[arg(
            long,
            env = "PAYGATE_REGISTRY_DIR",
            default_value = ".paygate/registry"
        )]
        registry: std::path::PathBuf,
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Inspect the outbox of merchant notifications.
    Outbox {
        #[command(flatten)]
        db: DbArgs,
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Quota upkeep.
    Quota {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        secrets_key: SecretsKey,
        #[command(subcommand)]
        command: QuotaCommand,
    },
    /// Test or run one plugin component against a mock host.
    Plugin {
        #[command(subcommand)]
        command: replay::PluginCli,
    },
}

/// The database URLs a command that touches the databases needs.
#[derive(clap::Args)]
pub struct DbArgs {
    #[command(flatten)]
    pub databases: DatabaseUrls,
    #[command(flatten)]
    pub tls: crate::tls::TlsSettings,
}

impl DbArgs {
    /// Connects to the four databases (and migrates them), pools of 2.
    pub async fn connect(&self) -> anyhow::Result<Databases> {
        Databases::connect_and_migrate(&self.databases, 2, &self.tls.trusted()?).await
    }
}

/// Runs one command; an `Err` is printed by `main` and exits non-zero.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // The harness prints a report on stdout; only problems belong on stderr.
    let is_harness = matches!(cli.command, Command::Plugin { .. });
    telemetry::init_with_default(if is_harness { "warn" } else { "info" });
    match cli.command {
        Command::Serve(config) => serve(*config).await,
        Command::Config { command } => {
            config::run(command, std::env::args_os().collect()).map_err(exit_if_refused)
        }
        Command::Migrate(db) => {
            db.connect().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Merchants {
            db,
            secrets_key,
            command,
        } => merchants::run(db, &secrets_key, command).await,
        Command::Providers { db, command } => providers::run(db, command).await,
        Command::Plugins { registry, command } => plugins::run(&registry, command).await,
        Command::Outbox { db, command } => upkeep::outbox(db, command).await,
        Command::Quota {
            db,
            secrets_key,
            command,
        } => upkeep::quota(db, &secrets_key, command).await,
        Command::Plugin {
            command: replay::PluginCli::Replay(args),
        } => replay::replay(args).await,
        Command::Plugin {
            command: replay::PluginCli::Harness(command),
        } => {
            let code = paygate_harness::cli::run(command).await?;
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = match App::build(&config).await {
        Ok(app) => app,
        // A service it cannot reach or trust: one line with the setting
        // and each cause (a certificate refused, say).
        Err(error) => {
            let error = exit_if_refused(error);
            eprintln!("paygate: cannot start: {error:#}");
            std::process::exit(1);
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let ran = app.run(shutdown).await;
    telemetry::flush_traces();
    ran
}

/// Ends the process as API.md says when `error` is a refused setting
/// (status 2, one line naming it); gives any other error back.
fn exit_if_refused(error: anyhow::Error) -> anyhow::Error {
    if let Some(refused) = error.downcast_ref::<crate::app::RefusedSetting>() {
        eprintln!("paygate: refusing to start: {refused}");
        std::process::exit(2);
    }
    error
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
pub async fn stop_on_signal(shutdown: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
