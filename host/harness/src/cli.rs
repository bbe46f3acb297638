//! `paygate plugin test` and `paygate plugin run`: argument parsing and
//! printing around [`crate::Harness`] and [`crate::run_once`].

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::{CaseResult, Harness, Options, Profile, RunInput, Scheme, run_once_with};

/// `paygate plugin ...`: one component file, no services needed.
#[derive(Subcommand)]
pub enum PluginCommand {
    /// Start a plugin project: sources, the host's WIT, a spec and a build
    /// script, passing `plugin test` as written.
    New(crate::scaffold::NewArgs),
    /// Run the conformance suite of the component's world against a mock
    /// host; exits 1 when a case fails.
    Test(TestArgs),
    /// Make one call described by a JSON file and print the result as JSON;
    /// exits 1 when the component does not load or the host stops the call.
    Run(RunArgs),
}

/// Arguments of `paygate plugin test`.
#[derive(Args)]
pub struct TestArgs {
    /// The component (`.wasm`).
    pub file: PathBuf,
    /// A folder of recorded exchanges (`*.json`, `*.toml`) to run as extra cases.
    #[arg(long)]
    pub fixtures: Option<PathBuf>,
    /// Also write the results as JUnit XML to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// A setting for the plugin, `KEY=VALUE`; `{mock}` in VALUE is the mock
    /// provider's URL (`base-url` points there by default).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = key_value)]
    pub config: Vec<(String, String)>,
    /// A secret for the plugin, `KEY=VALUE` (`secret-key`, `webhook-secret`,
    /// `api-key` and `hmac-key` have test values already).
    #[arg(long = "secret", value_name = "KEY=VALUE", value_parser = key_value)]
    pub secrets: Vec<(String, String)>,
    /// Whose answers the mock provider gives in the built-in cases: generic
    /// (a plain JSON API, as `plugin new` writes), stripe or adyen. The
    /// outcome an adapter must make of them is the same for all; a case
    /// the provider has no answer for is skipped, saying why. For a
    /// verifier, the provider's scheme when --scheme is not given.
    #[arg(long, default_value = "generic")]
    pub profile: Profile,
    /// A verifier's signature scheme: internal-hmac, stripe or adyen
    /// (default: the profile's, else try each).
    #[arg(long)]
    pub scheme: Option<Scheme>,
    /// A built-in case not to run (repeatable), e.g. one that assumes what
    /// your provider does not do, or a whole group (contract, errors,
    /// limits, refunds); it shows as skipped.
    #[arg(long = "skip", value_name = "CASE|GROUP")]
    pub skip: Vec<String>,
    /// Print the cases of the component's suite, with fixtures, and run none.
    #[arg(long)]
    pub list: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// Arguments of `paygate plugin run`.
#[derive(Args)]
pub struct RunArgs {
    /// The component (`.wasm`).
    pub file: PathBuf,
    /// The call as JSON (see the harness documentation); `-` reads stdin.
    #[arg(long)]
    pub input: PathBuf,
    /// A host the plugin may call besides the mock provider (repeatable),
    /// e.g. `localhost:8002` or `api.stripe.com`: with its `base-url` set
    /// there in the input's `config`, the call goes to that provider.
    #[arg(long = "allow-host", value_name = "HOST[:PORT]")]
    pub allow_hosts: Vec<String>,
    /// The plugin's spec (TOML, as `plugins publish --spec` takes it): its
    /// `allowed_hosts` are allowed and its `[config]` given, under the
    /// input's own `config`, so the call goes where `serve` would send it.
    /// Its `[secrets]` are references this command does not resolve: give
    /// their values in the input's `secrets`.
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// Where compiled code is kept between runs: the same cache `serve` uses.
#[derive(Args)]
pub struct CacheArgs {
    /// Where compiled code is kept between runs (the cache `serve` uses).
    #[arg(
        long = "cache-dir",
        env = "PAYGATE_PLUGIN_CACHE_DIR",
        default_value = ".paygate/cache"
    )]
    pub dir: PathBuf,
}

fn key_value(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {raw:?}")),
    }
}

/// Runs the command; the process exit code is the returned value.
pub async fn run(command: PluginCommand) -> anyhow::Result<i32> {
    match command {
        PluginCommand::New(args) => crate::scaffold::run(args),
        PluginCommand::Test(args) => test(args).await,
        PluginCommand::Run(args) => run_input(args).await,
    }
}

async fn test(args: TestArgs) -> anyhow::Result<i32> {
    let options = Options {
        fixtures: args.fixtures,
        config: args.config.into_iter().collect(),
        secrets: args.secrets.into_iter().collect(),
        scheme: args.scheme,
        profile: args.profile,
        cache_dir: Some(args.cache.dir),
        skip: args.skip,
        list: args.list,
        ..Options::default()
    };
    let report = Harness::from_file(&args.file)?
        .options(options)
        .run()
        .await?;
    if args.list {
        let width = report.cases.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for case in &report.cases {
            println!("{:<width$}  {:<9}  {}", case.name, case.group(), case.about);
        }
        return Ok(i32::from(report.cases.iter().any(CaseResult::failed)));
    }
    print!("{}", report.text());
    if let Some(path) = &args.junit {
        std::fs::write(path, report.junit())
            .with_context(|| format!("writing --junit {}", path.display()))?;
    }
    Ok(if report.passed() { 0 } else { 1 })
}

async fn run_input(args: RunArgs) -> anyhow::Result<i32> {
    let text = if args.input.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading --input from stdin")?
    } else {
        std::fs::read_to_string(&args.input)
            .with_context(|| format!("reading --input {}", args.input.display()))?
    };
    let mut input: RunInput = serde_json::from_str(&text)
        .with_context(|| format!("--input {} is not a valid call", args.input.display()))?;
    let mut allowed_hosts = args.allow_hosts;
    if let Some(path) = &args.spec {
        let spec = std::fs::read_to_string(path)
            .with_context(|| format!("reading --spec {}", path.display()))?;
        let spec = paygate_plugin_registry::PluginSpec::from_toml(&spec)
            .with_context(|| format!("--spec {}", path.display()))?;
        allowed_hosts.extend(spec.allowed_hosts);
        for (key, value) in spec.config {
            input.config.entry(key).or_insert(value);
        }
        for (key, reference) in &spec.secrets {
            if !input.secrets.contains_key(key) {
                eprintln!(
                    "note: the spec's secret {key} ({reference}) is not read here; the plugin gets \
                     the harness's test value, if any: give the real one in the input's `secrets`"
                );
            }
        }
    }
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let name = args
        .file
        .file_name()
        .map_or_else(|| "plugin".into(), |n| n.to_string_lossy().into_owned());
    let output = run_once_with(&name, &bytes, input, Some(args.cache.dir), allowed_hosts).await?;
    println!("{}", serde_json::to_string_pretty(&output.json)?);
    Ok(if output.completed { 0 } else { 1 })
}
