//! `paygate plugin new`: a plugin project that builds with one command and
//! passes `paygate plugin test` as written, with the host's WIT vendored
//! into it.
//!
//! The templates are in `host/harness/templates/`; the WIT is this
//! checkout's `wit/`, so a project always gets the contract of the host
//! that made it.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

/// The longest plugin name taken: names become file, crate and counter
/// key prefixes.
const MAX_NAME: usize = 40;

/// Arguments of `paygate plugin new`.
#[derive(Args)]
pub struct NewArgs {
    /// The plugin's name: lower-case letters, digits and `-`, starting with a
    /// letter (it names the folder, the component and the spec).
    pub name: String,
    /// What the plugin is.
    #[arg(long, value_enum)]
    pub world: World,
    /// The language of the project.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    pub lang: Lang,
    /// The folder to create (default: `./<name>`); it must not exist, or be empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The world a new plugin implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum World {
    ProviderAdapter,
    WebhookVerifier,
    RateLimitPolicy,
}

impl World {
    /// Every world, in the order the documentation lists them.
    pub const ALL: [World; 3] = [
        World::ProviderAdapter,
        World::WebhookVerifier,
        World::RateLimitPolicy,
    ];

    /// The world's name in the WIT and in a spec's `kind`.
    pub fn name(self) -> &'static str {
        match self {
            World::ProviderAdapter => "provider-adapter",
            World::WebhookVerifier => "webhook-verifier",
            World::RateLimitPolicy => "rate-limit-policy",
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The language of a new plugin project.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        })
    }
}

/// The host's WIT, as the project gets it under `wit/`.
const WIT: [(&str, &str); 10] = [
    ("worlds.wit", include_str!("../../../wit/worlds.wit")),
    ("counters.wit", include_str!("../../../wit/counters.wit")),
    (
        "deps/paygate-plugins-0.2.0/provider.wit",
        include_str!("../../../wit/deps/paygate-plugins-0.2.0/provider.wit"),
    ),
    (
        "deps/paygate-plugins-0.2.0/verifier.wit",
        include_str!("../../../wit/deps/paygate-plugins-0.2.0/verifier.wit"),
    ),
    (
        "deps/paygate-plugins-0.2.0/worlds.wit",
        include_str!("../../../wit/deps/paygate-plugins-0.2.0/worlds.wit"),
    ),
    (
        "deps/paygate-plugins-0.1.0/host.wit",
        include_str!("../../../wit/deps/paygate-plugins-0.1.0/host.wit"),
    ),
    (
        "deps/paygate-plugins-0.1.0/policy.wit",
        include_str!("../../../wit/deps/paygate-plugins-0.1.0/policy.wit"),
    ),
    (
        "deps/paygate-plugins-0.1.0/provider.wit",
        include_str!("../../../wit/deps/paygate-plugins-0.1.0/provider.wit"),
    ),
    (
        "deps/paygate-plugins-0.1.0/verifier.wit",
        include_str!("../../../wit/deps/paygate-plugins-0.1.0/verifier.wit"),
    ),
    (
        "deps/paygate-plugins-0.1.0/worlds.wit",
        include_str!("../../../wit/deps/paygate-plugins-0.1.0/worlds.wit"),
    ),
];

// GUEST_SDK_SOURCES and GUEST_SDK_MANIFEST: plugins/guest-common, as
// build.rs vendors it.
include!(concat!(env!("OUT_DIR"), "/guest_sdk.rs"));

/// Where a Rust project keeps its copy of the guest SDK.
const GUEST_SDK_DIR: &str = "guest-common";

/// One file of a new project: its path in the folder and its text.
struct File {
    path: String,
    text: String,
    executable: bool,
}

impl File {
    fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            text: text.into(),
            executable: false,
        }
    }
}

/// Runs `paygate plugin new`: writes the project and says what to run next.
pub fn run(args: NewArgs) -> anyhow::Result<i32> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let written = create(&args.name, args.world, args.lang, &dir)?;
    println!(
        "created {} ({} {} plugin, {} files); next:",
        dir.display(),
        args.lang,
        args.world,
        written
    );
    println!("  cd {}", dir.display());
    println!("  ./build.sh");
    println!("  paygate plugin test {}.wasm", args.name);
    Ok(0)
}

/// Writes the project of plugin `name` into `dir`; returns how many files.
pub fn create(name: &str, world: World, lang: Lang, dir: &Path) -> anyhow::Result<usize> {
    check_name(name)?;
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir)
            .with_context(|| format!("{} exists and is not a readable folder", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} exists and is not empty; pick another --dir",
                dir.display()
            );
        }
    }
    let files = project(name, world, lang);
    for file in &files {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, &file.text).with_context(|| format!("writing {}", path.display()))?;
        if file.executable {
            make_executable(&path)?;
        }
    }
    Ok(files.len())
}

/// A name is safe as a folder, a file, a crate and a key prefix.
fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !starts_with_letter || !rest_ok || name.len() > MAX_NAME || name.ends_with('-') {
        bail!(
            "plugin name {name:?}: use lower-case letters, digits and `-`, starting with a letter, \
             at most {MAX_NAME} characters (e.g. acmepay)"
        );
    }
    Ok(())
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// Every file of the project.
fn project(name: &str, world: World, lang: Lang) -> Vec<File> {
    let mut files: Vec<File> = WIT
        .iter()
        .map(|(path, text)| File::new(format!("wit/{path}"), *text))
        .collect();
    files.push(File::new(format!("{name}.toml"), spec(name, world)));
    files.push(File::new("README.md", readme(name, world, lang)));
    files.push(File::new("fixtures/README.md", fixtures_readme(world)));
    files.push(File {
        executable: true,
        ..File::new(
            "ci.sh",
            fill(include_str!("../templates/ci.sh"), name, world),
        )
    });
    files.extend(match lang {
        Lang::Rust => rust(name, world),
        Lang::Python => python(name, world),
        Lang::Js => js(name, world),
    });
    files
}

/// `{{name}}`, `{{crate}}` and `{{world}}` filled in.
fn fill(template: &str, name: &str, world: World) -> String {
    template
        .replace("{{name}}", name)
        .replace("{{crate}}", &name.replace('-', "_"))
        .replace("{{world}}", world.name())
}

/// The one-command build, `build.sh`.
fn build_script(template: &str, name: &str, world: World) -> File {
    File {
        executable: true,
        ..File::new("build.sh", fill(template, name, world))
    }
}

fn rust(name: &str, world: World) -> Vec<File> {
    // Adapters and verifiers use the guest SDK paygate's own plugins use,
    // vendored at the host's version (the SDK is not on crates.io).
    let sdk = format!("guest-common = {{ path = \"{GUEST_SDK_DIR}\" }}\n");
    let (source, dependencies) = match world {
        World::ProviderAdapter => (
            include_str!("../templates/rust/provider-adapter.rs"),
            format!("{sdk}serde_json = \"1\"\n"),
        ),
        World::WebhookVerifier => (
            include_str!("../templates/rust/webhook-verifier.rs"),
            format!("{sdk}serde_json = \"1\"\n"),
        ),
        World::RateLimitPolicy => (
            include_str!("../templates/rust/rate-limit-policy.rs"),
            String::new(),
        ),
    };
    let manifest = fill(include_str!("../templates/rust/Cargo.toml"), name, world)
        .replace("{{dependencies}}", &dependencies);
    let mut files = Vec::new();
    if !dependencies.is_empty() {
        files.push(File::new(
            format!("{GUEST_SDK_DIR}/Cargo.toml"),
            GUEST_SDK_MANIFEST,
        ));
        files.extend(
            GUEST_SDK_SOURCES
                .iter()
                .map(|(path, text)| File::new(format!("{GUEST_SDK_DIR}/{path}"), *text)),
        );
    }
    files.extend([
        File::new("Cargo.toml", manifest),
        // The versions paygate's own plugins build with, so a warm cargo
        // cache builds the project without fetching.
        File::new("Cargo.lock", include_str!("../../../plugins/Cargo.lock")),
        File::new("src/lib.rs", fill(source, name, world)),
        build_script(include_str!("../templates/rust/build.sh"), name, world),
        File::new(".gitignore", "/target\n*.wasm\n"),
    ]);
    files
}

fn python(name: &str, world: World) -> Vec<File> {
    let source = match world {
        World::ProviderAdapter => include_str!("../templates/python/provider-adapter.py"),
        World::WebhookVerifier => include_str!("../templates/python/webhook-verifier.py"),
        World::RateLimitPolicy => include_str!("../templates/python/rate-limit-policy.py"),
    };
    vec![
        File::new("app.py", fill(source, name, world)),
        // The componentize-py paygate's own Python example builds with.
        File::new(
            "build-requirements.txt",
            include_str!("../../../plugins/examples/paypal-python/build-requirements.txt"),
        ),
        build_script(include_str!("../templates/python/build.sh"), name, world),
        File::new(".gitignore", "/.venv\n__pycache__/\n*.wasm\n"),
    ]
}

fn js(name: &str, world: World) -> Vec<File> {
    let source = match world {
        World::ProviderAdapter => include_str!("../templates/js/provider-adapter.js"),
        World::WebhookVerifier => include_str!("../templates/js/webhook-verifier.js"),
        World::RateLimitPolicy => include_str!("../templates/js/rate-limit-policy.js"),
    };
    // The componentize-js paygate's own JavaScript example builds with,
    // locked to the same packages.
    let lock = include_str!("../../../plugins/examples/paypal-js/package-lock.json")
        .replace("\"paygate-paypal-js\"", &format!("\"{name}\""));
    vec![
        File::new("app.js", fill(source, name, world)),
        File::new(
            "package.json",
            fill(include_str!("../templates/js/package.json"), name, world),
        ),
        File::new("package-lock.json", lock),
        build_script(include_str!("../templates/js/build.sh"), name, world),
        File::new(".gitignore", "/node_modules\n*.wasm\n"),
    ]
}

/// The plugin spec `plugins publish --spec` reads, and a plugin directory
/// beside `<name>.wasm`.
fn spec(name: &str, world: World) -> String {
    let head = format!(
        "# {name}'s spec: `paygate plugins publish {name}.wasm --name {name} --spec {name}.toml`\n\
         # reads it, and a plugin directory reads it beside {name}.wasm.\n\
         version = \"0.1.0\"\n\
         kind = \"{world}\"\n"
    );
    let secret_var = format!(
        "PAYGATE_PLUGIN_SECRET_{}",
        name.to_ascii_uppercase().replace('-', "_")
    );
    let body = match world {
        World::ProviderAdapter => format!(
            "# The only hosts the plugin may call.\n\
             allowed_hosts = [\"api.{name}.example\"]\n\
             \n\
             [config]\n\
             base-url = \"https://api.{name}.example/v1\"\n\
             \n\
             [secrets]\n\
             # Resolved by the host from its environment (or {secret_var}_KEY_FILE),\n\
             # or \"file:{name}/secret-key\" under PAYGATE_PLUGIN_SECRETS_DIR, read at each load.\n\
             secret-key = \"env:{secret_var}_KEY\"\n"
        ),
        World::WebhookVerifier => format!(
            "\n[secrets]\n\
             # Resolved by the host from its environment (or {secret_var}_WEBHOOK_FILE),\n\
             # or \"file:{name}/webhook-secret\" under PAYGATE_PLUGIN_SECRETS_DIR, read at each load.\n\
             webhook-secret = \"env:{secret_var}_WEBHOOK\"\n"
        ),
        World::RateLimitPolicy => "\n\
             [limits]\n\
             # It runs before authentication on every request: keep it quick.\n\
             timeout_ms = 250\n\
             \n\
             [config]\n\
             limit = \"100\"\n\
             window-ms = \"1000\"\n\
             fail-open = \"true\"\n"
            .to_owned(),
    };
    head + &body
}

/// What `fixtures/` is for; `ci.sh` runs every `*.json` and `*.toml` in it.
fn fixtures_readme(world: World) -> String {
    let example = match world {
        World::ProviderAdapter => {
            "A recorded exchange with your provider: what the adapter must send, what the \
             provider answered, and the outcome. A fixture named like a built-in case \
             (`decline`, `refund-success`, … : `paygate plugin test --list`) replaces it.\n\
             \n\
             ```json\n\
             {\n\
             \x20 \"name\": \"decline\",\n\
             \x20 \"request\": { \"method\": \"POST\", \"path\": \"/payments\",\n\
             \x20              \"json\": { \"amount\": \"10.00\", \"currency\": \"EUR\" } },\n\
             \x20 \"response\": { \"status\": 402, \"body\": { \"error\": { \"message\": \"card declined\" } } },\n\
             \x20 \"expect\": \"declined\"\n\
             }\n\
             ```\n"
        }
        World::WebhookVerifier => {
            "A webhook your provider really sent, signed, with the verdict it must get; run \
             with the secret it was signed with (`--secret webhook-secret=...`).\n\
             \n\
             ```json\n\
             {\n\
             \x20 \"name\": \"payment finished (recorded)\",\n\
             \x20 \"webhook\": { \"headers\": { \"x-internal-signature\": \"<hex>\" },\n\
             \x20              \"body\": \"{\\\"payment_id\\\": 42, \\\"status\\\": \\\"finished\\\"}\" },\n\
             \x20 \"expect\": \"ok\",\n\
             \x20 \"events\": 1\n\
             }\n\
             ```\n"
        }
        World::RateLimitPolicy => {
            "Rate-limit policies take no fixtures: their suite is built in.\n"
        }
    };
    format!(
        "# Fixtures\n\
         \n\
         `./ci.sh` runs every `*.json` and `*.toml` file here as one more case of \
         `paygate plugin test` (paygate's docs/harness.md, \"Fixtures\").\n\
         \n\
         {example}"
    )
}

fn readme(name: &str, world: World, lang: Lang) -> String {
    let source = match lang {
        Lang::Rust => "src/lib.rs",
        Lang::Python => "app.py",
        Lang::Js => "app.js",
    };
    let what = match world {
        World::ProviderAdapter => {
            "It opens payments and refunds through a small JSON API under the `base-url` \
             setting, with the `secret-key` secret as a bearer token. Change the paths and \
             fields to your provider's; keep the mapping of failures to `provider-error`."
        }
        World::WebhookVerifier => {
            "It checks `x-internal-signature`, a hex HMAC-SHA256 of the raw body under the \
             `webhook-secret` secret, the scheme the harness signs its built-in cases with. \
             Once it checks your provider's scheme instead, test it with fixtures: your \
             provider's real webhooks, signed, with the verdict each must get."
        }
        World::RateLimitPolicy => {
            "It allows `limit` requests per `window-ms` per API key (per client IP without \
             one), counting in the host's shared counters."
        }
    };
    let sdk = if lang == Lang::Rust && world != World::RateLimitPolicy {
        format!(
            "\n`{GUEST_SDK_DIR}/` is paygate's guest SDK, the crate its own plugins use (status to \
             `provider-error`, JSON answers, minor units, HMAC checked in constant time, header \
             lookup), copied at the host's version; `paygate plugin new` in a newer paygate \
             brings a newer one.\n"
        )
    } else {
        String::new()
    };
    let profile = match world {
        World::ProviderAdapter => {
            "\nThe suite's mock provider speaks a plain JSON API (`--profile generic`); if your \
             provider answers like Stripe or Adyen, `--profile stripe` or `--profile adyen` puts \
             the built-in cases in its words.\n"
        }
        _ => "",
    };
    format!(
        "# {name}\n\
         \n\
         A paygate `{world}` plugin in {lang}, made by `paygate plugin new`. {what}\n\
         \n\
         ```sh\n\
         ./build.sh                                   # builds {name}.wasm\n\
         paygate plugin test {name}.wasm              # the conformance suite of its world\n\
         ./ci.sh                                      # both, with fixtures/ and JUnit XML, for CI\n\
         paygate plugins publish {name}.wasm --name {name} --spec {name}.toml\n\
         paygate plugins activate {name}@0.1.0\n\
         ```\n\
         \n\
         The code is in `{source}`; the contract it implements is `wit/`, paygate's WIT at the \
         version of the host that made this project. `{name}.toml` is its spec (allowed hosts, \
         limits, settings, secret references). `paygate plugin test --fixtures DIR` adds your \
         own recorded cases, `--junit FILE` writes JUnit XML for CI; the standalone \
         `paygate-plugin test` does the same without the gateway.\n\
         {profile}{sdk}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_leave_the_folder_or_break_a_crate_are_refused() {
        for bad in [
            "", "../x", "a/b", "Acme", "1pay", "pay-", "pay_x", "pay.x", "pay x",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} was taken");
        }
        assert!(check_name(&"a".repeat(MAX_NAME + 1)).is_err());
        for good in ["acmepay", "acme-pay2", "a"] {
            check_name(good).unwrap();
        }
    }

    #[test]
    fn a_project_refuses_a_folder_with_files_and_fills_every_placeholder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let error = create("acme-pay", World::ProviderAdapter, Lang::Rust, dir.path())
            .unwrap_err()
            .to_string();
        assert!(error.contains("not empty"), "{error}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(),
            "mine"
        );

        for (world, lang) in World::ALL
            .into_iter()
            .flat_map(|w| [Lang::Rust, Lang::Python, Lang::Js].map(|l| (w, l)))
        {
            let files = project("acme-pay", world, lang);
            // The vendored SDK is copied as it is, not filled in.
            let ours = files.iter().filter(|f| !f.path.starts_with(GUEST_SDK_DIR));
            for file in ours {
                assert!(
                    !file.text.contains("{{"),
                    "{lang} {world}: {} keeps a placeholder",
                    file.path
                );
            }
            let spec = &files
                .iter()
                .find(|f| f.path == "acme-pay.toml")
                .unwrap()
                .text;
            let parsed: toml::Table = toml::from_str(spec).unwrap();
            assert_eq!(parsed["kind"].as_str(), Some(world.name()));
            let build = &files.iter().find(|f| f.path == "build.sh").unwrap();
            assert!(build.executable && build.text.contains("acme-pay.wasm"));
        }
    }

    #[test]
    fn rust_adapters_and_verifiers_get_the_guest_sdk_as_a_crate_of_their_own() {
        for world in [World::ProviderAdapter, World::WebhookVerifier] {
            let files = project("acme", world, Lang::Rust);
            let text = |path: &str| {
                let file = files.iter().find(|f| f.path == path);
                file.unwrap_or_else(|| panic!("{world}: no {path}"))
                    .text
                    .clone()
            };
            let sdk: toml::Table = toml::from_str(&text("guest-common/Cargo.toml")).unwrap();
            assert_eq!(sdk["package"]["name"].as_str(), Some("guest-common"));
            // Outside paygate's plugins workspace nothing can be inherited.
            assert!(!text("guest-common/Cargo.toml").contains("workspace"));
            for dependency in ["hmac", "serde_json", "sha2"] {
                assert!(
                    sdk["dependencies"].get(dependency).is_some(),
                    "{dependency}"
                );
            }
            let lib = text("guest-common/src/lib.rs");
            let modules = lib.lines().filter_map(|l| l.strip_prefix("pub mod "));
            for module in modules {
                text(&format!(
                    "guest-common/src/{}.rs",
                    module.trim_end_matches(';')
                ));
            }
            let project: toml::Table = toml::from_str(&text("Cargo.toml")).unwrap();
            assert_eq!(
                project["dependencies"]["guest-common"]["path"].as_str(),
                Some(GUEST_SDK_DIR)
            );
        }
        let policy = project("acme", World::RateLimitPolicy, Lang::Rust);
        assert!(!policy.iter().any(|f| f.path.starts_with(GUEST_SDK_DIR)));
    }
}
