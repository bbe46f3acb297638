//! The mock host a component runs in under the harness: the real engine and
//! host imports, with a loopback provider, in-memory counters, a fixed
//! clock and test secrets.

use std::collections::BTreeMap;
use std::sync::Arc;

use paygate_plugin_registry::{LimitsSpec, PluginSpec, SecretRef};

use crate::mock::MockProvider;
use crate::{DEFAULT_SECRETS, HarnessError, Options};
use paygate_runtime::CompiledComponent;
use paygate_runtime::Secret;
use paygate_runtime::{
    Clock, Counters, EngineSettings, HostServices, LoadError, LoadedPlugin, Loader, PluginEngine,
};

/// The time the plugin sees until a case moves it: 2027-01-15, fixed so
/// runs are repeatable.
pub const START_MS: u64 = 1_800_000_000_000;

/// Calls that may run at once; the harness runs one case at a time.
const MAX_CONCURRENT_CALLS: u32 = 8;

/// Which settings a case loads the plugin with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settings {
    /// `base-url` at the mock provider, the test secrets, the user's options.
    Full,
    /// No settings and no secrets: the missing-config cases.
    Bare,
}

/// Engine, services and mock provider of one harness run.
pub struct MockHost {
    /// Compiles and binds the component under test.
    pub loader: Loader,
    /// What the plugin's imports reach: its clock is the one cases move.
    pub services: Arc<HostServices>,
    /// The loopback server playing the payment provider.
    pub provider: MockProvider,
    config: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
    http_timeout_ms: u32,
    /// Hosts allowed besides the mock provider.
    allowed_hosts: Vec<String>,
}

impl MockHost {
    /// Starts the mock provider and an engine with fuel metering on.
    pub async fn start(options: &Options) -> Result<Self, HarnessError> {
        let provider = MockProvider::start()
            .await
            .map_err(|e| HarnessError::Host(format!("binding the mock provider: {e}")))?;
        let mut config = BTreeMap::from([("base-url".to_owned(), provider.url())]);
        for (key, value) in &options.config {
            config.insert(key.clone(), value.replace("{mock}", &provider.url()));
        }
        let mut secrets: BTreeMap<String, String> = DEFAULT_SECRETS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        secrets.extend(options.secrets.clone());

        let engine = PluginEngine::new(&EngineSettings {
            max_concurrent_calls: MAX_CONCURRENT_CALLS,
            fuel: true,
        })
        .map_err(|e| HarnessError::Host(format!("creating the engine: {e:#}")))?;
        // The counters' windows follow the clock the plugin sees, so a case
        // can move it past a window instead of waiting.
        let clock = Clock::fixed(START_MS);
        let services = Arc::new(HostServices {
            http: paygate_runtime::http_client(),
            counters: Counters::memory_on(clock.clone()),
            clock,
            named_secrets: secrets
                .iter()
                .map(|(k, v)| (secret_name(k), Secret::new(v.clone())))
                .collect(),
            outgoing_headers: paygate_runtime::no_outgoing_headers,
            secrets_dir: None,
        });
        let loader = Loader::new(
            Arc::new(engine),
            services.clone(),
            options.cache_dir.clone(),
        );
        Ok(Self {
            loader,
            services,
            provider,
            config,
            secrets,
            http_timeout_ms: options
                .http_timeout
                .as_millis()
                .try_into()
                .unwrap_or(u32::MAX),
            allowed_hosts: options.allowed_hosts.clone(),
        })
    }

    /// The plugin's HTTP timeout in milliseconds.
    pub fn http_timeout_ms(&self) -> u32 {
        self.http_timeout_ms
    }

    /// The secret the plugin is given under `key`, if any.
    pub fn secret(&self, key: &str) -> Option<&str> {
        self.secrets.get(key).map(String::as_str)
    }

    /// Binds the compiled component to the spec of `settings`.
    pub fn bind(
        &self,
        name: &str,
        compiled: &CompiledComponent,
        settings: Settings,
    ) -> Result<LoadedPlugin, LoadError> {
        self.loader
            .load_compiled(name, compiled, &self.spec(settings), None)
    }

    /// The spec a plugin is loaded with. The mock provider stays reachable
    /// even with [`Settings::Bare`], so a request sent without settings is
    /// seen (and fails the case) rather than refused by the allow-list.
    fn spec(&self, settings: Settings) -> PluginSpec {
        let mut spec = PluginSpec {
            version: "harness".into(),
            allowed_hosts: std::iter::once(self.provider.host())
                .chain(self.allowed_hosts.iter().cloned())
                .collect(),
            limits: LimitsSpec {
                http_timeout_ms: Some(self.http_timeout_ms),
                ..LimitsSpec::default()
            },
            ..PluginSpec::default()
        };
        if settings == Settings::Full {
            spec.config = self.config.clone();
            spec.secrets = self
                .secrets
                .keys()
                .map(|k| (k.clone(), SecretRef::Env(secret_name(k))))
                .collect();
        }
        spec
    }
}

/// The name a secret is handed to the loader under; not a valid environment
/// variable name, so the process environment can never supply it.
fn secret_name(key: &str) -> String {
    format!("harness/{key}")
}
