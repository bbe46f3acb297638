//! The plugins currently serving, swapped atomically.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use paygate_plugin_registry::{Digest, PluginKind, PluginSpec};
use serde::Serialize;

use super::error::{LoadError, PluginError};
use super::loaded::LoadedPlugin;
use super::loader::{CodeSource, Loader};

/// Name → serving version. Readers take one atomic load; a swap publishes a
/// new map, and calls in flight keep the `Arc` of the version they started on.
pub struct PluginSet {
    serving: ArcSwap<HashMap<String, Arc<LoadedPlugin>>>,
    /// The last refused load of each plugin, cleared by the next success.
    rejected: Mutex<HashMap<String, String>>,
    /// Serializes swaps so two reloads cannot lose each other's update.
    swap_lock: Mutex<()>,
    loader: Loader,
}

/// One line of `plugins list`.
#[derive(Clone, Debug, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub kind: Option<PluginKind>,
    pub version: Option<String>,
    pub digest: Option<String>,
    /// The `paygate:plugins` version of the world it implements.
    pub wit: Option<&'static str>,
    pub calls: u64,
    pub errors: u64,
    /// Failed calls by kind (`trap`, `timeout`, `fuel`, ...).
    pub errors_by_kind: BTreeMap<&'static str, u64>,
    /// Call latency quantiles, as the upper bounds of their histogram
    /// buckets; null before the first call.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Fuel its calls burned, in all.
    pub fuel_used: u64,
    /// Why the most recent load of this plugin was refused, if it was.
    pub last_rejection: Option<String>,
}

impl PluginSet {
    pub fn new(loader: Loader) -> Self {
        Self {
            serving: ArcSwap::from_pointee(HashMap::new()),
            rejected: Mutex::default(),
            swap_lock: Mutex::default(),
            loader,
        }
    }

    pub fn loader(&self) -> &Loader {
        &self.loader
    }

    /// The version of `name` serving now.
    /// Names of the plugins serving, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.serving.load().keys().cloned().collect();
        names.sort();
        names
    }

    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.serving.load().get(name).cloned()
    }

    /// Like [`PluginSet::get`], but an error naming the missing plugin.
    pub fn require(&self, name: &str) -> Result<Arc<LoadedPlugin>, PluginError> {
        self.get(name)
            .ok_or_else(|| PluginError::NotLoaded(name.to_owned()))
    }

    /// Loads `bytes` as the new version of `name` and swaps it in. A
    /// replacement must implement the same world as the version it replaces;
    /// on any failure the old version keeps serving and the refusal is kept.
    pub fn install(
        &self,
        name: &str,
        bytes: &[u8],
        spec: &PluginSpec,
    ) -> Result<Arc<LoadedPlugin>, LoadError> {
        let previous = self.get(name);
        if previous
            .as_ref()
            .is_some_and(|p| p.ctx.digest == Digest::of(bytes) && p.ctx.version == spec.version)
        {
            // Same bytes and version (e.g. a touch of the file, or a good file
            // back after a bad one): nothing to swap, and nothing refused.
            self.lock_rejected().remove(name);
            return Ok(previous.expect("checked above"));
        }
        let expected = previous.as_ref().map(|p| p.ctx.kind);
        match self.loader.load(name, bytes, spec, expected) {
            Ok((plugin, source)) => {
                let plugin = Arc::new(plugin);
                self.swap_in(name, plugin.clone());
                let from = previous.map(|p| format!("{}@{}", p.ctx.version, p.ctx.digest.short()));
                tracing::info!(
                    plugin = name,
                    version = %plugin.ctx.version,
                    digest = %plugin.ctx.digest,
                    kind = %plugin.ctx.kind,
                    cached = source == CodeSource::Cached,
                    replaced = from.as_deref().unwrap_or("nothing"),
                    "plugin loaded and serving"
                );
                Ok(plugin)
            }
            Err(e) => {
                tracing::error!(plugin = name, version = %spec.version, digest = %Digest::of(bytes), "refusing component");
                self.reject(name, &e);
                Err(e)
            }
        }
    }

    /// Records a refused load of `name`; the serving version is untouched.
    pub fn reject(&self, name: &str, error: &LoadError) {
        let still_serving = self.get(name).map(|p| p.ctx.version.clone());
        tracing::error!(
            plugin = name,
            %error,
            still_serving = still_serving.as_deref().unwrap_or("nothing"),
            "plugin load rejected"
        );
        self.lock_rejected()
            .insert(name.to_owned(), error.to_string());
    }

    fn swap_in(&self, name: &str, plugin: Arc<LoadedPlugin>) {
        let _guard = self.swap_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = HashMap::clone(&self.serving.load());
        next.insert(name.to_owned(), plugin);
        self.serving.store(Arc::new(next));
        self.lock_rejected().remove(name);
    }

    fn lock_rejected(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.rejected.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every plugin serving or refused, sorted by name.
    pub fn list(&self) -> Vec<PluginInfo> {
        use std::sync::atomic::Ordering::Relaxed;
        let serving = self.serving.load();
        let rejected = self.lock_rejected().clone();
        let mut names: Vec<&String> = serving.keys().chain(rejected.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let p = serving.get(name);
                PluginInfo {
                    name: name.clone(),
                    kind: p.map(|p| p.ctx.kind),
                    version: p.map(|p| p.ctx.version.clone()),
                    digest: p.map(|p| p.ctx.digest.to_string()),
                    wit: p.map(|p| p.wit_version()),
                    calls: p.map_or(0, |p| p.stats.calls.load(Relaxed)),
                    errors: p.map_or(0, |p| p.stats.errors.load(Relaxed)),
                    errors_by_kind: p
                        .map(|p| p.stats.errors_by_kind().into_iter().collect())
                        .unwrap_or_default(),
                    p50_ms: p.and_then(|p| p.stats.latency.quantile(0.5)).map(millis),
                    p99_ms: p.and_then(|p| p.stats.latency.quantile(0.99)).map(millis),
                    fuel_used: p.map_or(0, |p| p.stats.fuel_used.load(Relaxed)),
                    last_rejection: rejected.get(name).cloned(),
                }
            })
            .collect()
    }
}

fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
