//! The `paygate` command: parse the command line, then run it (see
//! `paygate::cli`).

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    paygate::cli::run(paygate::cli::Cli::parse()).await
}
