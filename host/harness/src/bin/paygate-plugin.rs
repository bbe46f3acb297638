//! `paygate-plugin`: the plugin harness alone, for plugin repositories' CI.
//! The same suites as `paygate plugin test|run`, without building the
//! gateway and its database, broker and cache clients.

use std::io::IsTerminal;

use clap::Parser;
use paygate_harness::cli::{self, PluginCommand};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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
    // Warnings only (a plugin's own log lines among them), unless RUST_LOG
    // says otherwise: a level, or `target=level` directives.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::WARN));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colours for a person, not for a CI log.
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .with(filter)
        .init();
    let code = cli::run(Cli::parse().command).await?;
    std::process::exit(code);
}
