//! Hot reload from a plugin directory: `<name>.wasm` is the component, the
//! optional `<name>.toml` its [`PluginSpec`] and the optional `<name>.sig`
//! its signatures (`paygate plugins sign`). A change to any of them reloads
//! that plugin off the request path.
//!
//! When the directory follows a registry's trust
//! ([`PluginDir::requiring_signatures_of`]) and that registry trusts any
//! key, a plugin loads only if a trusted key signed its component and its
//! spec, as for the registry's own versions: nothing unsigned runs, from
//! either source.
//!
//! Write files atomically (write elsewhere, then rename); a half-written
//! file is simply refused and the next event loads the finished one.

#[cfg(feature = "watch")]
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
#[cfg(feature = "watch")]
use std::time::Duration;

#[cfg(feature = "watch")]
use notify::{RecursiveMode, Watcher};
use paygate_plugin_registry::signing::{read_signature_file, trusted_signer};
use paygate_plugin_registry::{Covered, Digest, PluginSpec, Registry};
#[cfg(feature = "watch")]
use tokio::sync::mpsc;
#[cfg(feature = "watch")]
use tokio_util::sync::CancellationToken;

use super::error::LoadError;
use super::loaded::LoadedPlugin;
use super::set::PluginSet;

/// Events on one plugin closer together than this are handled once.
#[cfg(feature = "watch")]
const DEBOUNCE: Duration = Duration::from_millis(50);

/// A directory of plugins.
#[derive(Clone, Debug)]
pub struct PluginDir {
    dir: PathBuf,
    /// Whose trusted keys must have signed each plugin, if anyone's.
    trust: Option<Registry>,
}

impl PluginDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            trust: None,
        }
    }

    /// Requires, whenever `registry` trusts any key, a signature by one of
    /// its trusted keys on every plugin loaded from this directory. The keys
    /// are read at each load, so trusting or revoking a key takes effect at
    /// the next change.
    pub fn requiring_signatures_of(mut self, registry: Registry) -> Self {
        self.trust = Some(registry);
        self
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Names of the plugins in the directory (every `*.wasm`), sorted.
    pub fn names(&self) -> std::io::Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| plugin_name(&e.path()))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Reads `name`'s component and spec and installs them into `set`. A
    /// file that cannot be read or parsed is refused like a bad component.
    pub fn load(&self, set: &PluginSet, name: &str) -> Result<Arc<LoadedPlugin>, LoadError> {
        let (bytes, spec) = self.read(name).inspect_err(|e| set.reject(name, e))?;
        set.install(name, &bytes, &spec)
    }

    fn read(&self, name: &str) -> Result<(Vec<u8>, PluginSpec), LoadError> {
        let wasm = self.dir.join(format!("{name}.wasm"));
        let io = |path: &Path, source| LoadError::Io {
            name: name.into(),
            path: path.display().to_string(),
            source,
        };
        let bytes = std::fs::read(&wasm).map_err(|e| io(&wasm, e))?;
        let toml = self.dir.join(format!("{name}.toml"));
        let spec = match std::fs::read_to_string(&toml) {
            Ok(text) => PluginSpec::from_toml(&text).map_err(|e| LoadError::Spec {
                name: name.into(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => PluginSpec::default(),
            Err(e) => return Err(io(&toml, e)),
        };
        self.check_signature(name, &bytes, &spec)?;
        Ok((bytes, spec))
    }

    /// Refuses `name` unless a trusted key signed these bytes with this
    /// spec, when the registry it follows trusts any key.
    fn check_signature(
        &self,
        name: &str,
        bytes: &[u8],
        spec: &PluginSpec,
    ) -> Result<(), LoadError> {
        let Some(registry) = &self.trust else {
            return Ok(());
        };
        let refused = |source| LoadError::Signature {
            name: name.into(),
            source: Box::new(source),
        };
        let trusted = registry.trusted_keys().map_err(refused)?;
        if trusted.is_empty() {
            return Ok(());
        }
        let signatures =
            read_signature_file(&self.dir.join(format!("{name}.sig"))).map_err(refused)?;
        let component = format!("{name}@{} in {}", spec.version, self.dir.display());
        let covered = Covered::new(name, Digest::of(bytes), spec);
        trusted_signer(&component, &covered, &signatures, &trusted).map_err(refused)?;
        Ok(())
    }

    /// Loads every plugin in the directory; returns the failures.
    pub fn load_all(&self, set: &PluginSet) -> std::io::Result<Vec<LoadError>> {
        Ok(self
            .names()?
            .into_iter()
            .filter_map(|n| self.load(set, &n).err())
            .collect())
    }

    /// Watches the directory until `shutdown`, reloading changed plugins on
    /// a blocking thread so compilation never stalls request handling.
    #[cfg(feature = "watch")]
    pub fn watch(
        self,
        set: Arc<PluginSet>,
        shutdown: CancellationToken,
    ) -> notify::Result<tokio::task::JoinHandle<()>> {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event {
                    for name in event.paths.iter().filter_map(|p| changed_plugin(p)) {
                        let _ = tx.send(name);
                    }
                }
            })?;
        watcher.watch(&self.dir, RecursiveMode::NonRecursive)?;
        tracing::info!(dir = %self.dir.display(), "watching plugin directory");

        Ok(tokio::spawn(async move {
            let _watcher = watcher; // dropped, and so stopped, with this task
            loop {
                let first = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    name = rx.recv() => match name { Some(n) => n, None => return },
                };
                let mut batch = HashSet::from([first]);
                tokio::time::sleep(DEBOUNCE).await;
                while let Ok(n) = rx.try_recv() {
                    batch.insert(n);
                }
                for name in batch {
                    if !self.dir.join(format!("{name}.wasm")).exists() {
                        tracing::warn!(plugin = %name, "component file removed; the loaded version keeps serving");
                        continue;
                    }
                    let (dir, set) = (self.clone(), set.clone());
                    // Errors are logged and recorded by the set.
                    let _ = tokio::task::spawn_blocking(move || dir.load(&set, &name)).await;
                }
            }
        }))
    }
}

fn plugin_name(path: &Path) -> Option<String> {
    (path.extension()? == "wasm").then(|| path.file_stem()?.to_str().map(str::to_owned))?
}

/// The plugin a changed path belongs to, ignoring temporary files.
#[cfg(feature = "watch")]
fn changed_plugin(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_str()?;
    if !matches!(ext, "wasm" | "toml" | "sig") {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    (!stem.starts_with('.')).then(|| stem.to_owned())
}
