//! The `paygate` command.

use anyhow::Context;
use clap::{Parser, Subcommand};
use paygate::config::DatabaseUrls;
use paygate::db::Databases;
use paygate::harness::cli::PluginCommand;
use paygate::merchants::{MerchantStore, NewMerchant};
use paygate::outbox::OutboxStore;
use paygate::providers::{AliasBinding, ProviderStore};
use paygate::sandbox::SandboxArgs;
use paygate::shop::{Shop, ShopArgs};
use paygate::{App, Config, demo, sandbox, telemetry};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "paygate",
    version,
    about = "Payments gateway with sandboxed WebAssembly plugins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the merchant API with the plugins of the plugin directory.
    Serve(Box<Config>),
    /// Create the databases if needed and apply pending migrations.
    Migrate(DbArgs),
    /// Manage merchants and their API keys.
    Merchants {
        #[command(flatten)]
        db: DbArgs,
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
    /// Run the sandbox payment provider (tests and the demo use it).
    SandboxProvider(SandboxArgs),
    /// Run the demo shop, a merchant storefront that pays through paygate.
    DemoShop(ShopArgs),
    /// Inspect the outbox of merchant notifications.
    Outbox {
        #[command(flatten)]
        db: DbArgs,
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Test or run one plugin component against a mock host.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// Print pending, retrying, processing, delivered and failed counts and
    /// the oldest pending age, as JSON.
    Stats,
}

#[derive(clap::Args)]
struct DbArgs {
    #[command(flatten)]
    databases: DatabaseUrls,
}

#[derive(Subcommand)]
enum MerchantCommand {
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
    RotateKey { merchant_id: i64 },
}

#[derive(Subcommand)]
enum ProviderCommand {
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The harness prints a report on stdout; only problems belong on stderr.
    let is_harness = matches!(cli.command, Command::Plugin { .. });
    telemetry::init_with_default(if is_harness { "warn" } else { "info" });
    match cli.command {
        Command::Serve(config) => serve(*config).await,
        Command::Migrate(db) => {
            Databases::connect_and_migrate(&db.databases, 2).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Merchants { db, command } => merchants(db, command).await,
        Command::Providers { db, command } => providers(db, command).await,
        Command::Outbox {
            db,
            command: OutboxCommand::Stats,
        } => {
            let dbs = Databases::connect_and_migrate(&db.databases, 2).await?;
            let store = OutboxStore::new(dbs.payments, dbs.payments_relaxed);
            println!("{}", serde_json::to_string_pretty(&store.stats().await?)?);
            Ok(())
        }
        Command::SandboxProvider(args) => {
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("binding SANDBOX_LISTEN={}", args.listen))?;
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            sandbox::serve(listener, args, shutdown).await
        }
        Command::DemoShop(args) => {
            let shop = Shop::build(&args).await?;
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            shop.run(shutdown).await
        }
        Command::Plugin { command } => {
            let code = paygate::harness::cli::run(command).await?;
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
    }
}

async fn serve(mut config: Config) -> anyhow::Result<()> {
    if config.demo {
        // The demo shop listens on localhost.
        config.notifier.allow_private_callbacks = true;
    }
    let app = App::build(&config).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    if config.demo {
        let port = app.local_addr().port();
        demo::start(&app.gateway, &config, port, shutdown.clone()).await?;
    }
    app.run(shutdown).await
}

async fn merchants(db: DbArgs, command: MerchantCommand) -> anyhow::Result<()> {
    let dbs = Databases::connect_and_migrate(&db.databases, 2).await?;
    let store = MerchantStore::new(dbs.merchants);
    match command {
        MerchantCommand::Create {
            name,
            callback_url,
            tokens,
            currency,
            require_signed_writes,
        } => {
            let currency = paygate::payments::Currency::parse(&currency)
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
    }
    Ok(())
}

async fn providers(db: DbArgs, command: ProviderCommand) -> anyhow::Result<()> {
    let dbs = Databases::connect_and_migrate(&db.databases, 2).await?;
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
            paygate::payments::Alias::parse(&alias).map_err(|e| anyhow::anyhow!("alias {e}"))?;
            let binding = AliasBinding {
                alias,
                provider_plugin: plugin,
                verifier_plugin: verifier,
                available: !unavailable,
            };
            store.set(&binding).await?;
            println!("{}", serde_json::to_string(&binding)?);
        }
    }
    Ok(())
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn stop_on_signal(shutdown: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
