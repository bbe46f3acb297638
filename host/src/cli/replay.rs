//! `paygate plugin replay --from-logs`: webhooks paygate received, from the
//! logs database, as harness fixtures (`paygate_harness::replay`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use paygate_harness::Scheme;
use paygate_harness::cli::PluginCommand;

use crate::WebhookLog;

/// `paygate plugin ...`: the harness's commands, which need no service,
/// and `replay`, which reads the logs database.
#[derive(Subcommand)]
pub enum PluginCli {
    #[command(flatten)]
    Harness(PluginCommand),
    /// Write webhooks paygate received (the logs database) as harness
    /// fixtures with the verdicts they got, signed again with the harness's
    /// test secret, to test a verifier change against real traffic.
    Replay(ReplayArgs),
}

/// Arguments of `paygate plugin replay`.
#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Read the webhooks from the logs database (the one source so far).
    #[arg(long, required = true)]
    from_logs: bool,
    /// The folder to write the fixtures to (created if missing); a fixture
    /// of the same webhook is replaced.
    #[arg(long)]
    out: PathBuf,
    /// The signature scheme of the verifier to test: the log keeps no
    /// signature, so each fixture is signed again in it.
    #[arg(long)]
    scheme: Scheme,
    /// Only the webhooks of this alias (`internal`: the internal route).
    #[arg(long)]
    alias: Option<String>,
    /// How many, newest first (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    limit: u16,
    /// The logs database.
    #[arg(
        long = "logs-database-url",
        env = "PAYGATE_LOGS_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/paygate_logs",
        hide_env_values = true,
        hide_default_value = true
    )]
    logs_database_url: String,
    #[command(flatten)]
    tls: crate::tls::TlsSettings,
}

/// Writes the fixtures; prints how many, and why any webhook was left out.
pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let pool = crate::db::connect_existing(
        "PAYGATE_LOGS_DATABASE_URL",
        &args.logs_database_url,
        &args.tls.trusted()?,
    )
    .await?;
    let alias = args
        .alias
        .as_deref()
        .map(|a| (a != "internal").then_some(a));
    let logged = WebhookLog::new(pool)
        .newest(alias, i64::from(args.limit))
        .await
        .context("reading the webhook log")?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let secret = paygate_harness::DEFAULT_SECRETS
        .iter()
        .find(|(name, _)| *name == args.scheme.secret_name())
        .map(|(_, value)| *value)
        .unwrap_or_default();
    let mut written = 0;
    for webhook in &logged {
        match paygate_harness::replay::fixture(webhook, args.scheme, secret) {
            Ok(fixture) => {
                let path = args.out.join(format!("logged-{}.json", webhook.id));
                let text = serde_json::to_string_pretty(&fixture)?;
                std::fs::write(&path, text + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
                written += 1;
            }
            Err(why) => eprintln!("webhook {} left out: {why}", webhook.id),
        }
    }
    println!(
        "{written} of {} logged webhooks written to {} as fixtures, signed in the {} scheme with \
         the harness's test secret: paygate plugin test VERIFIER.wasm --fixtures {}",
        logged.len(),
        args.out.display(),
        args.scheme,
        args.out.display()
    );
    Ok(())
}
