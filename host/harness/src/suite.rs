//! [`Harness`]: a component, its settings and fixtures, run as its world's
//! conformance suite.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use paygate_plugin_registry::PluginKind;

use crate::case::{CaseResult, Subject};
use crate::fixtures::FixtureError;
use crate::host::{MockHost, Settings};
use crate::profile::Profile;
use crate::report::Report;
use crate::verifier::Scheme;
use crate::{fixtures, policy, provider, verifier};

/// How long the harness lets a plugin wait for the mock provider. Short, so
/// the slow-provider case costs well under a second.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_millis(500);

/// Secrets every plugin under test is given unless overridden, under the
/// names the shipped plugins use; a plugin asking for another name gets it
/// from `--secret NAME=VALUE`.
pub const DEFAULT_SECRETS: [(&str, &str); 4] = [
    ("secret-key", "sk_test_paygate_harness"),
    ("webhook-secret", "whsec_paygate_harness"),
    ("api-key", "paygate_harness_api_key"),
    // An HMAC key as Adyen shows one: 32 bytes in hex.
    (
        "hmac-key",
        "A5227CB32542D13AC0F9304E073A3D207C17EEF706B2BF6FFBA4184C691112F1",
    ),
];

/// What a harness run may be told besides the component.
#[derive(Clone, Debug)]
pub struct Options {
    /// A folder of user fixtures (`*.json`, `*.toml`), run after the built-ins.
    pub fixtures: Option<PathBuf>,
    /// Settings; `{mock}` in a value becomes the mock provider's URL.
    /// `base-url` defaults to the mock provider.
    pub config: BTreeMap<String, String>,
    /// Secrets, over [`DEFAULT_SECRETS`].
    pub secrets: BTreeMap<String, String>,
    /// A verifier's signature scheme; `None`: the profile's, else each
    /// built-in one is tried.
    pub scheme: Option<Scheme>,
    /// Whose answers the built-in provider cases give, and a verifier's
    /// scheme when `scheme` is `None`.
    pub profile: Profile,
    /// Where compiled code is cached between runs; `None` compiles each time.
    pub cache_dir: Option<PathBuf>,
    /// The plugin's HTTP timeout.
    pub http_timeout: Duration,
    /// Built-in cases not to run, by name; a name that is no case of the
    /// component's world fails the run, so a typo cannot hide a case.
    pub skip: Vec<String>,
    /// Only list the cases, running none.
    pub list: bool,
    /// Hosts the plugin may reach besides the mock provider (`plugin run
    /// --allow-host`), to point it at a real or local provider.
    pub allowed_hosts: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            fixtures: None,
            config: BTreeMap::new(),
            secrets: BTreeMap::new(),
            scheme: None,
            profile: Profile::default(),
            cache_dir: None,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            skip: Vec::new(),
            list: false,
            allowed_hosts: Vec::new(),
        }
    }
}

/// Why the harness could not run at all (a failing plugin is a [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Fixture(#[from] FixtureError),
    #[error("cannot start the mock host: {0}")]
    Host(String),
    #[error("bad input: {0}")]
    Input(String),
}

/// A component and what to run it with.
pub struct Harness {
    name: String,
    bytes: Vec<u8>,
    options: Options,
}

impl Harness {
    /// A harness for `bytes`, named `name` in reports.
    pub fn new(name: impl Into<String>, bytes: Vec<u8>) -> Self {
        Self {
            name: name.into(),
            bytes,
            options: Options::default(),
        }
    }

    /// A harness for the component in `path`, named by its file name.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, HarnessError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| HarnessError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self::new(file_name(path), bytes))
    }

    /// Replaces all options at once.
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// Adds the fixtures in `dir`.
    pub fn fixtures(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options.fixtures = Some(dir.into());
        self
    }

    /// Sets a setting the plugin reads with `config.get`.
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.options.config.insert(key.into(), value.into());
        self
    }

    /// Sets a secret the plugin reads with `config.secret`.
    pub fn secret(mut self, key: &str, value: &str) -> Self {
        self.options.secrets.insert(key.into(), value.into());
        self
    }

    /// Names a verifier's signature scheme instead of detecting it.
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.options.scheme = Some(scheme);
        self
    }

    /// Speaks `profile`'s provider in the built-in cases.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.options.profile = profile;
        self
    }

    /// Caches compiled code in `dir` between runs.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options.cache_dir = Some(dir.into());
        self
    }

    /// Loads the component, detects its world and runs that world's suite.
    /// A component that does not load gives a report with one failed `load`
    /// case; only problems outside the component are errors.
    pub async fn run(&self) -> Result<Report, HarnessError> {
        let started = Instant::now();
        let fixtures = match &self.options.fixtures {
            Some(dir) => fixtures::load_dir(dir)?,
            None => Vec::new(),
        };
        let host = MockHost::start(&self.options).await?;
        let mut report = Report::new(&self.name, &self.bytes);
        let compiling = Instant::now();
        let loaded = host
            .loader
            .compile(&self.name, &self.bytes)
            .and_then(|(compiled, source)| {
                report.compiled(compiling.elapsed(), source);
                let plugin = host.bind(&self.name, &compiled, Settings::Full)?;
                Ok((compiled, plugin))
            });
        let (compiled, plugin) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                report.cases.push(CaseResult::load_failed(&e));
                report.elapsed = started.elapsed();
                return Ok(report);
            }
        };
        let kind = plugin.ctx.kind;
        report.world = Some(kind);
        let subject = Subject {
            name: &self.name,
            host: &host,
            compiled: &compiled,
            plugin: &plugin,
            skip: &self.options.skip,
            list: self.options.list,
        };
        report.cases = match kind {
            PluginKind::ProviderAdapter => {
                report.profile = Some(self.options.profile);
                provider::run(&subject, &fixtures, self.options.profile).await
            }
            PluginKind::WebhookVerifier => {
                let scheme = self.options.scheme.or(self.options.profile.scheme());
                verifier::run(&subject, &fixtures, scheme).await
            }
            PluginKind::RateLimitPolicy => policy::run(&subject, &fixtures).await,
        };
        for name in &self.options.skip {
            if !report
                .cases
                .iter()
                .any(|c| &c.name == name || c.group() == name)
            {
                let why = format!(
                    "--skip {name}: no case or group of the {} suite has this name (--list shows them)",
                    kind.world()
                );
                let label = crate::case::Label::built_in("skip", "the cases --skip names exist");
                report
                    .cases
                    .push(label.without_calls(crate::Verdict::Fail(why)));
            }
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }
}

/// The last component of `path`, for reports.
fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
