//! `paygate-demo`: the gateway with demo data beside the sandbox provider
//! and the demo shop (`serve`), or either of those alone.

use anyhow::Context;
use clap::{Parser, Subcommand};
use paygate::cli::stop_on_signal;
use paygate::secret_files::{SECRET_SETTINGS, load_or_exit};
use paygate::{App, Config, telemetry};
use paygate_demo::sandbox::{self, SandboxArgs};
use paygate_demo::seed::{self, DemoListen};
use paygate_demo::shop::{self, Shop, ShopArgs};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "paygate-demo",
    version,
    about = "paygate with demo data, the sandbox provider and the demo shop"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API as `paygate serve` does, after seeding a demo merchant
    /// and binding the `stripe`, `adyen` and `sandbox` aliases; start the
    /// sandbox provider (:8002) and the demo shop (:8001) beside it.
    Serve {
        #[command(flatten)]
        config: Box<Config>,
        /// The demo shop's own database.
        #[arg(
            long,
            env = "DEMO_SHOP_DATABASE_URL",
            default_value = shop::DEFAULT_DATABASE_URL,
            hide_env_values = true
        )]
        shop_database_url: String,
        /// Address of the demo shop (loopback unless widened).
        #[arg(long, env = "DEMO_SHOP_LISTEN", default_value = "127.0.0.1:8001")]
        shop_listen: std::net::SocketAddr,
        /// Address of the sandbox provider (loopback unless widened: it
        /// signs a payment's webhook for whoever presses Pay).
        #[arg(long, env = "SANDBOX_LISTEN", default_value = "127.0.0.1:8002")]
        sandbox_listen: std::net::SocketAddr,
    },
    /// Run the sandbox payment provider alone.
    SandboxProvider(SandboxArgs),
    /// Run the demo shop alone, for any merchant of a running paygate.
    Shop(ShopArgs),
}

#[global_allocator]
static ALLOCATOR: paygate::Allocator = paygate::Allocator;

fn main() -> anyhow::Result<()> {
    let names = [&SECRET_SETTINGS[..], &["DEMO_SHOP_DATABASE_URL"]].concat();
    // SAFETY: the process has one thread yet; the runtime starts below.
    unsafe { load_or_exit(&names) };
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    telemetry::init_with_default("info");
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    match cli.command {
        Command::Serve {
            mut config,
            shop_database_url,
            shop_listen,
            sandbox_listen,
        } => {
            // The demo shop listens on localhost; the secrets are the demo's.
            config.notifier.allow_private_callbacks = true;
            config.demo = true;
            let app = App::build(&config).await?;
            let port = app.local_addr().port();
            let services = &app.services;
            let stores = (&services.merchants.store, &*services.payments.providers);
            let started = seed::start(
                stores,
                &config,
                &shop_database_url,
                port,
                DemoListen {
                    shop: shop_listen,
                    sandbox: sandbox_listen,
                },
                shutdown.clone(),
            )
            .await?;
            let api_url = format!("http://localhost:{port}");
            println!(
                "{}",
                serde_json::to_string_pretty(&seed::summary(&started, &api_url))?
            );
            let ran = app.run(shutdown).await;
            telemetry::flush_traces();
            ran
        }
        Command::SandboxProvider(args) => {
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("binding SANDBOX_LISTEN={}", args.listen))?;
            sandbox::serve(listener, args, shutdown).await
        }
        Command::Shop(args) => Shop::build(&args).await?.run(shutdown).await,
    }
}
