//! What operators do to a plugin registry, for the CLI (`paygate plugins
//! ...`) and the admin API alike. Publishing first loads the component into
//! a real engine: a file that is not a component, or not of the world its
//! spec names, never reaches the registry, and its compiled code lands in
//! the hosts' cache so they swap it in without compiling. Secret references
//! are checked by each host when it loads the version: only a host knows
//! which secrets it hands to plugins.

use std::path::PathBuf;
use std::sync::Arc;

use paygate_plugin_registry::{
    ComponentSignature, PluginSpec, Publish, Published, Registry, SecretKey, sign,
};

use super::{CacheLocation, Counters, EngineSettings, HostServices, Loader, PluginEngine};

/// What `plugins publish` takes.
pub struct PublishRequest {
    pub name: String,
    pub version: String,
    pub bytes: Vec<u8>,
    pub spec: PluginSpec,
    pub sign_key: Option<PathBuf>,
    pub activate: bool,
}

/// Checks the component by loading it, then publishes it.
pub fn publish(
    registry: &Registry,
    cache: Option<CacheLocation>,
    request: PublishRequest,
) -> anyhow::Result<Published> {
    let engine = PluginEngine::new(&EngineSettings::default())
        .map_err(|e| anyhow::anyhow!("creating the WebAssembly engine: {e:#}"))?;
    let (cache_dir, key_file) = cache.map_or((None, None), |c| (Some(c.dir), c.key_file));
    let loader = Loader::new(
        Arc::new(engine),
        HostServices::new(Counters::memory(), Default::default()),
        cache_dir,
    )
    .cache_key_file(key_file);
    let mut spec = request.spec;
    spec.version = request.version.clone();
    let kind = loader
        .check(&request.name, &request.bytes, spec.kind)
        .map_err(|e| anyhow::anyhow!("refused: {e}"))?;
    spec.kind = Some(kind);
    let signature: Option<ComponentSignature> = match &request.sign_key {
        // Covers the spec exactly as the registry will serve it: this
        // version, the detected world.
        Some(path) => Some(sign(
            &SecretKey::load(path)?,
            &request.name,
            &request.bytes,
            &spec,
        )),
        None => None,
    };
    Ok(registry.publish(&Publish {
        name: &request.name,
        version: &request.version,
        bytes: &request.bytes,
        kind,
        spec: &spec,
        signature: signature.as_ref(),
        activate: request.activate,
    })?)
}
