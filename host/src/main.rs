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
        #[command(subcommand)]
        command: QuotaCommand,
    },
    /// Test or run one plugin component against a mock host.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// Check a component (it must load, in the world its spec names) and
    /// store it as a version of a plugin.
    Publish {
        file: std::path::PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: String,
        /// Hosts, limits, config and secret references (the plugin spec TOML).
        #[arg(long)]
        spec: Option<std::path::PathBuf>,
        /// Sign with this key (from `plugins keygen`).
        #[arg(long)]
        sign_key: Option<std::path::PathBuf>,
        /// Make it the active version at once.
        #[arg(long)]
        activate: bool,
        /// Compiled code goes here, where hosts look for it.
        #[arg(
            long,
            env = "PAYGATE_PLUGIN_CACHE_DIR",
            default_value = ".paygate/cache"
        )]
        cache_dir: std::path::PathBuf,
    },
    /// Every plugin: kind, active version, digest, versions and, from a
    /// running host's admin API, what it serves, its calls and errors.
    List {
        #[arg(
            long,
            env = "PAYGATE_ADMIN_URL",
            default_value = "http://127.0.0.1:9090"
        )]
        admin_url: String,
        #[arg(long, env = "PAYGATE_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<paygate::secret::Secret>,
    },
    /// Make `NAME@VERSION` the active version; hosts swap within a second.
    Activate { target: String },
    /// Go back to the version active before the current one.
    Rollback { name: String },
    /// Hash every stored component and check signatures; non-zero on a problem.
    Verify,
    /// Make a signing key pair: the secret to a new file, the public key printed.
    Keygen {
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Trust a public key: from now on only components it signed are accepted.
    Trust { public_key: String },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// Print pending, retrying, processing, delivered and failed counts and
    /// the oldest pending age, as JSON.
    Stats,
}

#[derive(Subcommand)]
enum QuotaCommand {
    /// Give back the tokens of orders whose payment was never created (or
    /// whose creation failed) once their charge is older than `--grace`;
    /// prints what it did as JSON. Running hosts do this every 30 s.
    Reconcile {
        #[arg(long, default_value = "60s", value_parser = paygate::config::parse_duration)]
        grace: std::time::Duration,
    },
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
        Command::Plugins { registry, command } => plugins(&registry, command).await,
        Command::Outbox {
            db,
            command: OutboxCommand::Stats,
        } => {
            let dbs = Databases::connect_and_migrate(&db.databases, 2).await?;
            let store = OutboxStore::new(dbs.payments, dbs.payments_relaxed);
            println!("{}", serde_json::to_string_pretty(&store.stats().await?)?);
            Ok(())
        }
        Command::Quota {
            db,
            command: QuotaCommand::Reconcile { grace },
        } => {
            let dbs = Databases::connect_and_migrate(&db.databases, 2).await?;
            let merchants = paygate::merchants::MerchantStore::new(dbs.merchants);
            let payments = paygate::payments::PaymentStore::new(dbs.payments);
            let done = paygate::quota::reconcile(&merchants, &payments, grace).await?;
            println!(
                "{}",
                serde_json::json!({"settled": done.settled, "refunded": done.refunded})
            );
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
async fn plugins(root: &std::path::Path, command: PluginsCommand) -> anyhow::Result<()> {
    use paygate_plugin_registry::{PluginSpec, Registry, keygen};
    let registry = Registry::open(root)?;
    let print = |value: serde_json::Value| {
        println!("{}", serde_json::to_string_pretty(&value).expect("JSON"))
    };
    match command {
        PluginsCommand::Publish {
            file,
            name,
            version,
            spec,
            sign_key,
            activate,
            cache_dir,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let spec = match spec {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    PluginSpec::from_toml(&text)
                        .with_context(|| format!("in {}", path.display()))?
                }
                None => PluginSpec::default(),
            };
            let published = paygate::plugins::operator::publish(
                &registry,
                Some(cache_dir),
                paygate::plugins::operator::PublishRequest {
                    name: name.clone(),
                    version: version.clone(),
                    bytes,
                    spec,
                    sign_key,
                    activate,
                },
            )?;
            print(serde_json::json!({
                "plugin": name, "version": version, "digest": published.digest.to_string(),
                "outcome": format!("{:?}", published.outcome),
                "signed_by": published.signed_by.map(|k| k.to_string()),
                "activated": published.activated, "revision": published.revision,
            }));
        }
        PluginsCommand::List {
            admin_url,
            admin_token,
        } => {
            let serving = match admin_token {
                Some(token) => serving_plugins(&admin_url, &token).await,
                None => Vec::new(),
            };
            println!(
                "{:<18} {:<18} {:<10} {:<14} {:<10} {:>8} {:>7}  versions",
                "NAME", "KIND", "ACTIVE", "DIGEST", "LOADED", "CALLS", "ERRORS"
            );
            for p in registry.list()? {
                let host = serving.iter().find(|s| s["name"] == p.name.as_str());
                let field = |key: &str| {
                    host.and_then(|h| h.get(key))
                        .filter(|v| !v.is_null())
                        .map(|v| {
                            v.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string())
                        })
                        .unwrap_or_else(|| "-".into())
                };
                println!(
                    "{:<18} {:<18} {:<10} {:<14} {:<10} {:>8} {:>7}  {}{}",
                    p.name,
                    p.kind.to_string(),
                    p.active.as_deref().unwrap_or("-"),
                    p.digest.map(|d| d.short()).unwrap_or_else(|| "-".into()),
                    field("version"),
                    field("calls"),
                    field("errors"),
                    p.versions.join(", "),
                    host.and_then(|h| h["last_rejection"].as_str())
                        .map(|r| format!("  (refused: {r})"))
                        .unwrap_or_default(),
                );
            }
        }
        PluginsCommand::Activate { target } => {
            let (name, version) = target
                .split_once('@')
                .context("name the version as NAME@VERSION")?;
            let done = registry.activate(name, version)?;
            print(
                serde_json::json!({"plugin": done.name, "from": done.from, "to": done.to, "revision": done.revision}),
            );
        }
        PluginsCommand::Rollback { name } => {
            let done = registry.rollback(&name)?;
            print(
                serde_json::json!({"plugin": done.name, "from": done.from, "to": done.to, "revision": done.revision}),
            );
        }
        PluginsCommand::Verify => {
            let report = registry.verify()?;
            for problem in &report.problems {
                eprintln!("problem: {problem}");
            }
            print(serde_json::json!({
                "blobs": report.blobs, "versions": report.versions,
                "signatures_required": report.signatures_required, "problems": report.problems.len(),
            }));
            anyhow::ensure!(
                report.is_ok(),
                "the registry has {} problem(s)",
                report.problems.len()
            );
        }
        PluginsCommand::Keygen { out } => {
            let (secret, public) = keygen()?;
            secret.save(&out)?;
            print(
                serde_json::json!({"secret_key_file": out.display().to_string(), "public_key": public.to_string()}),
            );
        }
        PluginsCommand::Trust { public_key } => {
            let key = public_key.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
            let id = registry.trust(&key)?;
            print(serde_json::json!({"trusted": id.to_string()}));
        }
    }
    Ok(())
}

/// What a running host serves, from its admin API; nothing when it cannot
/// be reached (the registry columns still print).
async fn serving_plugins(
    admin_url: &str,
    token: &paygate::secret::Secret,
) -> Vec<serde_json::Value> {
    let answer = reqwest::Client::new()
        .get(format!("{admin_url}/admin/v1/plugins"))
        .bearer_auth(token.expose())
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await;
    match answer {
        Ok(r) if r.status().is_success() => r
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["plugins"].as_array().cloned())
            .unwrap_or_default(),
        Ok(r) => {
            eprintln!(
                "admin API at {admin_url} answered {}: loaded state not shown",
                r.status()
            );
            Vec::new()
        }
        Err(_) => {
            eprintln!("no host's admin API at {admin_url}: loaded state not shown");
            Vec::new()
        }
    }
}

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
