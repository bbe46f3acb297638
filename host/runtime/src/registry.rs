//! Serving the active versions of a plugin registry
//! ([`paygate_plugin_registry::Registry`]) and following it: operators
//! publish, activate and roll back with `paygate plugins ...` or the admin
//! API, every host sharing the directory sees the manifest's revision move
//! and swaps in the new active versions within a poll interval. A version
//! that fails to load (bad bytes, wrong world, unsigned where keys are
//! trusted) is refused and the old one keeps serving.

use std::sync::Arc;
use std::time::Duration;

use paygate_plugin_registry::{Registry, RegistryError};
use tokio_util::sync::CancellationToken;

use super::error::LoadError;
use super::set::PluginSet;

/// How often the manifest's revision is read. Reading is cheap (one small
/// file); polling works the same on every filesystem and across hosts.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// A registry whose active versions a [`PluginSet`] serves.
#[derive(Clone, Debug)]
pub struct RegistrySource {
    registry: Registry,
}

impl RegistrySource {
    pub fn open(root: impl Into<std::path::PathBuf>) -> Result<Self, RegistryError> {
        Ok(Self {
            registry: Registry::open(root)?,
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Installs every plugin whose active version is not the one serving;
    /// returns the refusals (also recorded in the set). Blocking: compiles.
    pub fn sync(&self, set: &PluginSet) -> Result<Vec<LoadError>, RegistryError> {
        let mut refused = Vec::new();
        for summary in self.registry.list()? {
            let (Some(version), Some(digest)) = (&summary.active, &summary.digest) else {
                continue;
            };
            let serving = set.get(&summary.name);
            if serving.is_some_and(|p| p.ctx.digest == *digest && p.ctx.version == *version) {
                continue;
            }
            let installed = match self.registry.active_component(&summary.name) {
                Ok(release) => set.install(&release.name, &release.bytes, &release.spec),
                Err(e) => {
                    let error = LoadError::Spec {
                        name: summary.name.clone(),
                        reason: e.to_string(),
                    };
                    set.reject(&summary.name, &error);
                    Err(error)
                }
            };
            if let Err(e) = installed {
                refused.push(e);
            }
        }
        Ok(refused)
    }

    /// Follows the registry until `shutdown`: whenever the manifest's
    /// revision changes, syncs on a blocking thread.
    pub fn follow(
        self,
        set: Arc<PluginSet>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut seen = self.registry.revision().ok();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(POLL_INTERVAL) => {}
                }
                let revision = match self.registry.revision() {
                    Ok(r) => Some(r),
                    Err(e) => {
                        // An operator's hand edit gone wrong: keep serving.
                        tracing::error!(error = %e, "cannot read the plugin registry's manifest");
                        continue;
                    }
                };
                if revision == seen {
                    continue;
                }
                seen = revision;
                let (source, set) = (self.clone(), set.clone());
                match tokio::task::spawn_blocking(move || source.sync(&set)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot sync from the plugin registry")
                    }
                    Err(e) => tracing::error!(error = %e, "registry sync panicked"),
                }
            }
        })
    }
}
