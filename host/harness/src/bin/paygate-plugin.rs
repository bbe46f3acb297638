//! `paygate-plugin`: the plugin harness alone, for plugin repositories' CI.
//! The same suites as `paygate plugin test|run`, without building the
//! gateway and its database, broker and cache clients.

use clap::Parser;
use paygate_harness::cli::{self, PluginCommand};

#[derive(Parser)]
#[command(
    name = "paygate-plugin",
    version,
    about = "Test or run one paygate plugin component against a mock host"
)]
struct Cli {
    #[command(subcommand)]
    command: PluginCommand,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Warnings only (a plugin's own log lines among them), unless RUST_LOG says otherwise.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let code = cli::run(Cli::parse().command).await?;
    std::process::exit(code);
}
