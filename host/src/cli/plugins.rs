//! `paygate plugins`: the plugin registry (publish, list, activate, roll
//! back, verify, keys).

use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum PluginsCommand {
    /// Check a component (it must load, in the world its spec names) and
    /// store it as a version of a plugin.
    Publish {
        file: std::path::PathBuf,
        #[arg(long)]
        name: String,
        /// The version to publish as; the spec's `version` when not given.
        /// Both given must agree.
        #[arg(long)]
        version: Option<String>,
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
        /// The hosts' compile cache key (default: `<cache dir>.key`), so
        /// they accept the code compiled here.
        #[arg(long, env = "PAYGATE_PLUGIN_CACHE_KEY_FILE")]
        cache_key_file: Option<std::path::PathBuf>,
    },
    /// Sign a plugin of a plugin directory as hosts load it: the component
    /// `FILE` (`<name>.wasm`) with the spec beside it (`<name>.toml`, or
    /// none). The signature is added to `<name>.sig` beside them; a host
    /// whose registry trusts keys loads the plugin only with it.
    Sign {
        file: std::path::PathBuf,
        /// The secret key (from `plugins keygen`).
        #[arg(long)]
        sign_key: std::path::PathBuf,
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
        admin_token: Option<crate::plugins::Secret>,
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

/// Runs `paygate plugins ...` against the registry at `root`.
pub async fn run(root: &std::path::Path, command: PluginsCommand) -> anyhow::Result<()> {
    use paygate_plugin_registry::{PluginSpec, Registry, keygen};
    let print = |value: serde_json::Value| {
        println!("{}", serde_json::to_string_pretty(&value).expect("JSON"))
    };
    // Signing a plugin directory's file needs no registry.
    if let PluginsCommand::Sign { file, sign_key } = &command {
        print(sign_in_place(file, sign_key)?);
        return Ok(());
    }
    let registry = Registry::open(root)?;
    match command {
        PluginsCommand::Publish {
            file,
            name,
            version,
            spec,
            sign_key,
            activate,
            cache_dir,
            cache_key_file,
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
            let version = publish_version(version, &spec.version)?;
            let published = crate::plugins::publish(
                &registry,
                Some(crate::plugins::CacheLocation {
                    dir: cache_dir,
                    key_file: cache_key_file,
                }),
                crate::plugins::PublishRequest {
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
                None => {
                    eprintln!(
                        "no admin token (--admin-token, PAYGATE_ADMIN_TOKEN): what hosts serve \
                         is not asked, its columns show -"
                    );
                    Vec::new()
                }
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
        // Handled above, before a registry is opened.
        PluginsCommand::Sign { .. } => {}
    }
    Ok(())
}

/// Signs `<name>.wasm` with the spec a plugin directory loads beside it and
/// adds the signature to `<name>.sig`.
fn sign_in_place(
    file: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<serde_json::Value> {
    use paygate_plugin_registry::signing::add_to_signature_file;
    use paygate_plugin_registry::{PluginSpec, SecretKey, sign};
    anyhow::ensure!(
        file.extension().is_some_and(|e| e == "wasm"),
        "{} is not a plugin directory's component (<name>.wasm)",
        file.display()
    );
    // The directory serves `<name>.wasm` as `name`, and the signature binds it.
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .with_context(|| format!("{} has no UTF-8 plugin name", file.display()))?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let spec_path = file.with_extension("toml");
    let spec = match std::fs::read_to_string(&spec_path) {
        Ok(text) => {
            PluginSpec::from_toml(&text).with_context(|| format!("in {}", spec_path.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => PluginSpec::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", spec_path.display())),
    };
    let signature = sign(&SecretKey::load(key)?, name, &bytes, &spec);
    let sig_path = file.with_extension("sig");
    add_to_signature_file(&sig_path, &signature)?;
    Ok(serde_json::json!({
        "component": file.display().to_string(),
        "spec": spec_path.exists().then(|| spec_path.display().to_string()),
        "signature_file": sig_path.display().to_string(),
        "signed_by": signature.signer().id().to_string(),
    }))
}

/// The version `publish` stores: `--version`, else the spec's; refused
/// when they differ, or when neither names one.
fn publish_version(flag: Option<String>, spec: &str) -> anyhow::Result<String> {
    let in_spec = (spec != "unversioned").then_some(spec);
    match (flag, in_spec) {
        (Some(flag), Some(spec)) if flag != spec => anyhow::bail!(
            "--version {flag} but the spec says version = \"{spec}\": make them agree"
        ),
        (Some(flag), _) => Ok(flag),
        (None, Some(spec)) => Ok(spec.to_owned()),
        (None, None) => anyhow::bail!("no version: pass --version or set one in the spec"),
    }
}

/// What a running host serves, from its admin API; nothing when it cannot
/// be reached (the registry columns still print).
async fn serving_plugins(
    admin_url: &str,
    token: &crate::plugins::Secret,
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
