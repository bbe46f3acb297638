//! Turning component bytes and a spec into a [`LoadedPlugin`]: compile (or
//! load the compiled artifact from the cache), detect and check the world,
//! pre-instantiate, resolve secrets.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use paygate_plugin_registry::{Digest, PluginKind, PluginSpec, SecretRef};
use wasmtime::component::Component;

use super::allow::AllowList;
use super::bindings::policy::RateLimitPolicyPre;
use super::bindings::provider::ProviderAdapterPre;
use super::bindings::provider_v0_1::ProviderAdapterPre as ProviderAdapterV0_1Pre;
use super::bindings::verifier::WebhookVerifierPre;
use super::bindings::verifier_v0_1::WebhookVerifierPre as WebhookVerifierV0_1Pre;
use super::cache::{CacheStats, CompileCache, Opened};
use super::engine::PluginEngine;
use super::error::LoadError;
use super::limits::Limits;
use super::loaded::{LoadedPlugin, PluginStats, WorldPre};
use super::services::HostServices;
use super::state::PluginContext;
use crate::secret::Secret;

/// What the name of every process variable a plugin spec may read starts
/// with (`env:PAYGATE_PLUGIN_SECRET_...`).
pub const SECRET_ENV_PREFIX: &str = "PAYGATE_PLUGIN_SECRET_";

/// How a component's machine code was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeSource {
    Compiled,
    Cached,
}

/// A component compiled for the loader's engine, not yet bound to a spec.
#[derive(Clone)]
pub struct CompiledComponent {
    component: Component,
    digest: Digest,
    size_bytes: usize,
}

impl CompiledComponent {
    /// The SHA-256 of the component's bytes.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The size of the component's bytes.
    pub fn size_bytes(&self) -> usize {
        self.size_bytes
    }
}

/// Loads plugins into one engine, caching compiled code on disk (see
/// `cache` for how a cached artifact is authenticated).
#[derive(Clone)]
pub struct Loader {
    pub engine: Arc<PluginEngine>,
    pub services: Arc<HostServices>,
    cache: Option<Arc<CompileCache>>,
    /// The engine's compatibility key, part of every artifact's name and tag.
    compat: Arc<str>,
    stats: Arc<CacheStats>,
}

impl Loader {
    /// A loader caching compiled code in `cache_dir`, its key beside it
    /// (`<cache_dir>.key`); see [`Loader::cache_key_file`].
    pub fn new(
        engine: Arc<PluginEngine>,
        services: Arc<HostServices>,
        cache_dir: Option<PathBuf>,
    ) -> Self {
        Self {
            compat: engine.compatibility_key().into(),
            engine,
            services,
            cache: cache_dir.map(|dir| Arc::new(CompileCache::new(dir, None))),
            stats: Arc::default(),
        }
    }

    /// Keeps the key that authenticates cached artifacts in `key_file`
    /// instead of beside the cache directory. It must not be inside it.
    pub fn cache_key_file(mut self, key_file: Option<PathBuf>) -> Self {
        if let (Some(cache), Some(key_file)) = (&self.cache, key_file) {
            self.cache = Some(Arc::new(CompileCache::new(
                cache.dir().to_owned(),
                Some(key_file),
            )));
        }
        self
    }

    /// Cache hits, compiles and refused artifacts since this loader started.
    pub fn cache_stats(&self) -> &CacheStats {
        &self.stats
    }

    /// Loads `bytes` as plugin `name`. `expected` is the world the caller
    /// needs (e.g. the world of the version being replaced); the spec may
    /// name one too. Both must agree with what the component exports.
    pub fn load(
        &self,
        name: &str,
        bytes: &[u8],
        spec: &PluginSpec,
        expected: Option<PluginKind>,
    ) -> Result<(LoadedPlugin, CodeSource), LoadError> {
        let (compiled, source) = self.compile(name, bytes)?;
        Ok((self.load_compiled(name, &compiled, spec, expected)?, source))
    }

    /// Compiles `bytes` (or takes the cached artifact) without a spec, for
    /// callers that load one component under several specs, like the harness.
    pub fn compile(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<(CompiledComponent, CodeSource), LoadError> {
        let digest = Digest::of(bytes);
        let (component, source) = self.component(name, bytes, &digest)?;
        let compiled = CompiledComponent {
            component,
            digest,
            size_bytes: bytes.len(),
        };
        Ok((compiled, source))
    }

    /// Type-checks a compiled component against its world and binds it to
    /// `spec`: the second half of [`Loader::load`].
    pub fn load_compiled(
        &self,
        name: &str,
        compiled: &CompiledComponent,
        spec: &PluginSpec,
        expected: Option<PluginKind>,
    ) -> Result<LoadedPlugin, LoadError> {
        let (kind, pre) = self.pre(name, compiled, [expected, spec.kind])?;
        let secrets = resolve_secrets(name, &spec.secrets, &self.services)?;
        let missing_secrets = (spec.secrets.iter())
            .filter(|(key, _)| !secrets.contains_key(*key))
            .map(|(_, reference)| reference.to_string())
            .collect();
        let ctx = PluginContext {
            name: name.into(),
            version: spec.version.clone(),
            digest: compiled.digest,
            kind,
            limits: Limits::from_spec(&spec.limits),
            allowed_hosts: AllowList::new(&spec.allowed_hosts),
            config: spec.config.clone(),
            secrets,
            missing_secrets,
            services: self.services.clone(),
        };
        Ok(LoadedPlugin {
            ctx: Arc::new(ctx),
            pre,
            engine: self.engine.clone(),
            size_bytes: compiled.size_bytes,
            stats: PluginStats::default(),
        })
    }

    /// Compiles `bytes` (caching the code for hosts) and type-checks them
    /// against their world, which must be `kind` if given; returns the
    /// world. Binds no spec: secrets are the business of the host that
    /// loads the plugin, for `paygate plugins publish`.
    pub fn check(
        &self,
        name: &str,
        bytes: &[u8],
        kind: Option<PluginKind>,
    ) -> Result<PluginKind, LoadError> {
        let (compiled, _) = self.compile(name, bytes)?;
        Ok(self.pre(name, &compiled, [kind, None])?.0)
    }

    /// The world `compiled` exports, which must be each of `wanted` that
    /// is given, and its pre-instantiation.
    fn pre(
        &self,
        name: &str,
        compiled: &CompiledComponent,
        wanted: [Option<PluginKind>; 2],
    ) -> Result<(PluginKind, WorldPre), LoadError> {
        let component = &compiled.component;
        let kind = detect_kind(&self.engine, name, component)?;
        for wanted in wanted.into_iter().flatten() {
            if wanted != kind {
                return Err(LoadError::WrongWorld {
                    name: name.into(),
                    expected: wanted,
                    reason: format!("it exports the {kind} world"),
                });
            }
        }
        let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld {
            name: name.into(),
            expected: kind,
            reason: format!("{e:#}"),
        };
        let pre = self
            .engine
            .linker(kind)
            .instantiate_pre(component)
            .map_err(wrong_world)?;
        // The newest version the component exports decides the bindings.
        let newest = exports(component, &self.engine, kind.export());
        let pre = match kind {
            PluginKind::ProviderAdapter if newest => {
                WorldPre::Provider(ProviderAdapterPre::new(pre).map_err(wrong_world)?)
            }
            PluginKind::ProviderAdapter => {
                WorldPre::ProviderV0_1(ProviderAdapterV0_1Pre::new(pre).map_err(wrong_world)?)
            }
            PluginKind::WebhookVerifier if newest => {
                WorldPre::Verifier(WebhookVerifierPre::new(pre).map_err(wrong_world)?)
            }
            PluginKind::WebhookVerifier => {
                WorldPre::VerifierV0_1(WebhookVerifierV0_1Pre::new(pre).map_err(wrong_world)?)
            }
            PluginKind::RateLimitPolicy => {
                let takes = imports(component, &self.engine, COUNTERS_WITH_TAKE);
                let wit = if takes { "0.3.0" } else { "0.1.0" };
                WorldPre::Policy(RateLimitPolicyPre::new(pre).map_err(wrong_world)?, wit)
            }
        };
        Ok((kind, pre))
    }

    /// Compiles `bytes`, or loads the artifact this host cached for them.
    fn component(
        &self,
        name: &str,
        bytes: &[u8],
        digest: &Digest,
    ) -> Result<(Component, CodeSource), LoadError> {
        if let Some(component) = self.cached(name, digest) {
            CacheStats::count(&self.stats.hits);
            return Ok((component, CodeSource::Cached));
        }
        if !looks_like_component(bytes) {
            return Err(LoadError::NotAComponent {
                name: name.into(),
                reason: describe_non_component(bytes),
            });
        }
        let started = Instant::now();
        let engine = &self.engine.engine;
        let component = Component::new(engine, bytes).map_err(|e| LoadError::NotAComponent {
            name: name.into(),
            reason: format!("{e:#}"),
        })?;
        CacheStats::count(&self.stats.compiled);
        tracing::info!(plugin = name, %digest, ms = started.elapsed().as_millis() as u64, "compiled component");
        if let Some(cache) = &self.cache {
            let stored = component
                .serialize()
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|artifact| cache.store(digest, &self.compat, &artifact));
            if let Err(e) = stored {
                tracing::warn!(plugin = name, error = %e, "could not cache compiled component");
            }
        }
        Ok((component, CodeSource::Compiled))
    }

    /// The cached artifact of `digest`, if there is one and its tag proves
    /// this host wrote it for these bytes and this engine.
    fn cached(&self, name: &str, digest: &Digest) -> Option<Component> {
        let cache = self.cache.as_ref()?;
        let path = cache.path(digest, &self.compat);
        let file = match std::fs::read(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(plugin = name, path = %path.display(), error = %e, "cannot read cached artifact; compiling");
                return None;
            }
        };
        let artifact = match cache.open(digest, &self.compat, &file) {
            Opened::Authentic(artifact) => artifact,
            Opened::NoKey => return None,
            Opened::Forged => {
                CacheStats::count(&self.stats.rejected);
                tracing::warn!(
                    plugin = name,
                    %digest,
                    path = %path.display(),
                    "refusing a cached artifact this host did not write for this component \
                     (changed, replaced, or written without this host's cache key); compiling"
                );
                return None;
            }
        };
        // SAFETY: deserializing runs native code from `artifact`. Its HMAC
        // tag, under a key kept outside the cache directory, checked above
        // on these very bytes (read once, into memory, so the file cannot
        // change between check and use), proves that a holder of the key
        // serialized it for a component with this digest on an engine with
        // this compatibility key.
        match unsafe { Component::deserialize(&self.engine.engine, artifact) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(plugin = name, error = %e, "discarding unusable cached artifact");
                None
            }
        }
    }
}

/// The preamble of a component: `\0asm`, version 0x0d, layer 1.
fn looks_like_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [0x0d, 0x00, 0x01, 0x00]
}

fn describe_non_component(bytes: &[u8]) -> String {
    if bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0] {
        "this is a core WebAssembly module; wrap it into a component (e.g. `wasm-tools component new`)".into()
    } else if bytes.is_empty() {
        "the file is empty".into()
    } else {
        "the file does not start with the WebAssembly component preamble".into()
    }
}

/// Whether `component` exports the interface named `export` (fully
/// qualified, with its version).
fn exports(component: &Component, engine: &PluginEngine, export: &str) -> bool {
    component
        .component_type()
        .exports(&engine.engine)
        .any(|(name, _)| name == export)
}

/// The `counters` of WIT 0.3.0, which a policy of that version imports.
const COUNTERS_WITH_TAKE: &str = "paygate:plugins/counters@0.3.0";

/// Whether `component` imports the interface named `import`.
fn imports(component: &Component, engine: &PluginEngine, import: &str) -> bool {
    component
        .component_type()
        .imports(&engine.engine)
        .any(|(name, _)| name == import)
}

/// Names the world by the interface the component exports.
fn detect_kind(
    engine: &PluginEngine,
    name: &str,
    component: &Component,
) -> Result<PluginKind, LoadError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(&engine.engine)
        .map(|(n, _)| n.to_owned())
        .collect();
    PluginKind::ALL
        .into_iter()
        .find(|k| exports.iter().any(|e| k.exports().contains(&e.as_str())))
        .ok_or_else(|| LoadError::WrongWorld {
            name: name.into(),
            expected: PluginKind::ProviderAdapter,
            reason: format!(
                "it exports none of the paygate interfaces (found: {}); expected one of {}",
                if exports.is_empty() {
                    "nothing".to_owned()
                } else {
                    exports.join(", ")
                },
                PluginKind::ALL.map(|k| k.exports().join(", ")).join(", ")
            ),
        })
}

/// Resolves secret references now, so a call never touches the environment
/// or the disk. An `env:` reference may name a secret the host was handed by
/// name (its plugin secret settings) or a process variable whose name starts
/// with [`SECRET_ENV_PREFIX`]; anything else (the database URL, the admin
/// token, `PATH`) is refused, so a spec cannot hand a plugin the host's own
/// secrets. A `file:` reference reads a file under the host's secrets
/// directory ([`read_secret_file`]).
fn resolve_secrets(
    name: &str,
    refs: &BTreeMap<String, SecretRef>,
    services: &HostServices,
) -> Result<BTreeMap<String, Secret>, LoadError> {
    let named = &services.named_secrets;
    let mut resolved = BTreeMap::new();
    for (key, reference) in refs {
        let value = match reference {
            SecretRef::Env(var) => match named.get(var) {
                Some(value) => Some(value.clone()),
                None if var.starts_with(SECRET_ENV_PREFIX) => {
                    std::env::var(var).ok().map(Secret::new)
                }
                None => {
                    return Err(LoadError::SecretNotAllowed {
                        name: name.into(),
                        key: key.clone(),
                        variable: var.clone(),
                        named: if named.is_empty() {
                            "none".to_owned()
                        } else {
                            named.keys().cloned().collect::<Vec<_>>().join(", ")
                        },
                    });
                }
            },
            SecretRef::File(path) => read_secret_file(services.secrets_dir.as_deref(), path)
                .map_err(|reason| LoadError::Spec {
                    name: name.into(),
                    reason: format!("secret {key} ({reference}): {reason}"),
                })?,
        };
        match value {
            Some(value) if !value.expose().is_empty() => {
                resolved.insert(key.clone(), value);
            }
            _ => {
                tracing::warn!(plugin = name, secret = %key, %reference, "secret reference resolves to nothing")
            }
        }
    }
    Ok(resolved)
}

/// The largest secret file read; a key or token is far smaller.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// The secret in `path` under `dir`, without its trailing line break;
/// `None` when the file does not exist (yet): the plugin then lacks the
/// secret, as with an unset variable. Refused: no directory configured, a
/// file that resolves outside the directory (a symlink leading out), one
/// that is not a regular file or is too large. The path itself was checked
/// when the spec was read (relative, no `..`).
fn read_secret_file(dir: Option<&std::path::Path>, path: &str) -> Result<Option<Secret>, String> {
    use std::io::Read;
    let dir = dir.ok_or("file: secrets need PAYGATE_PLUGIN_SECRETS_DIR, which is not set")?;
    let root = dir
        .canonicalize()
        .map_err(|e| format!("PAYGATE_PLUGIN_SECRETS_DIR {}: {e}", dir.display()))?;
    let file = match root.join(path).canonicalize() {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    if !file.starts_with(&root) {
        return Err("it leads outside PAYGATE_PLUGIN_SECRETS_DIR".into());
    }
    let opened = std::fs::File::open(&file).map_err(|e| format!("cannot read it: {e}"))?;
    // Where the opened file is, not only where the path led when checked:
    // a directory on it swapped for a symlink in between leads elsewhere.
    if !opened_within(&opened, &root)? {
        return Err("it leads outside PAYGATE_PLUGIN_SECRETS_DIR".into());
    }
    let metadata = opened
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?;
    if !metadata.is_file() {
        return Err("it is not a file".into());
    }
    let mut bytes = Vec::new();
    opened
        .take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(format!(
            "it is larger than {MAX_SECRET_FILE} bytes: not a secret"
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_owned())?;
    Ok(Some(Secret::new(text.trim_end_matches(['\n', '\r']))))
}

/// Whether `file`, as opened, is under `root` (canonical): the kernel's
/// own name for the open file, which no later rename changes into a
/// checked one.
#[cfg(target_os = "linux")]
fn opened_within(file: &std::fs::File, root: &std::path::Path) -> Result<bool, String> {
    use std::os::fd::AsRawFd;
    let opened = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|e| format!("cannot tell where it leads (/proc/self/fd: {e})"))?;
    Ok(opened.starts_with(root))
}

/// Elsewhere only the check before opening stands.
#[cfg(not(target_os = "linux"))]
fn opened_within(_file: &std::fs::File, _root: &std::path::Path) -> Result<bool, String> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &std::path::Path, path: &str) -> Result<Option<String>, String> {
        read_secret_file(Some(dir), path).map(|s| s.map(|s| s.expose().to_owned()))
    }

    #[test]
    fn file_secrets_are_read_afresh_and_never_from_outside_the_directory() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("secrets");
        std::fs::create_dir_all(dir.join("acme")).unwrap();
        std::fs::write(dir.join("acme/key"), "sk_1\n").unwrap();
        assert_eq!(read(&dir, "acme/key").unwrap().as_deref(), Some("sk_1"));
        // Each load reads the file again: a rotated key goes live on reload.
        std::fs::write(dir.join("acme/key"), "sk_2").unwrap();
        assert_eq!(read(&dir, "acme/key").unwrap().as_deref(), Some("sk_2"));
        // Not there yet: the plugin lacks the secret, as with an unset variable.
        assert_eq!(read(&dir, "acme/absent").unwrap(), None);

        // A symlink inside the directory is followed (Kubernetes mounts
        // secrets that way); one leading out is refused.
        std::os::unix::fs::symlink(dir.join("acme/key"), dir.join("acme/link")).unwrap();
        assert_eq!(read(&dir, "acme/link").unwrap().as_deref(), Some("sk_2"));
        std::fs::write(root.path().join("admin-token"), "host's own").unwrap();
        std::os::unix::fs::symlink(root.path().join("admin-token"), dir.join("acme/leak")).unwrap();
        let error = read(&dir, "acme/leak").unwrap_err();
        assert!(error.contains("outside"), "{error}");

        assert!(read(&dir, "acme").unwrap_err().contains("not a file"));
        std::fs::write(dir.join("big"), vec![b'x'; 64 * 1024 + 1]).unwrap();
        assert!(read(&dir, "big").unwrap_err().contains("larger"));
        let error = read_secret_file(None, "acme/key").unwrap_err();
        assert!(error.contains("PAYGATE_PLUGIN_SECRETS_DIR"), "{error}");
    }

    /// Whoever can write in the secrets directory swaps a directory on the
    /// path for a symlink leading out, again and again, while secrets are
    /// read: what is read is never the file outside, even when the swap
    /// falls between the path's check and the file's opening.
    #[test]
    fn a_directory_swapped_for_a_symlink_while_read_never_leaks_a_file_outside() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("secrets");
        std::fs::create_dir_all(dir.join("acme")).unwrap();
        std::fs::write(dir.join("acme/key"), "inside").unwrap();
        std::fs::create_dir_all(root.path().join("outside")).unwrap();
        std::fs::write(root.path().join("outside/key"), "outside").unwrap();
        std::os::unix::fs::symlink(root.path().join("outside"), dir.join("link")).unwrap();

        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (dir, stop) = (dir.clone(), stop.clone());
            std::thread::spawn(move || {
                let (acme, real, link) = (dir.join("acme"), dir.join("real"), dir.join("link"));
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::fs::rename(&acme, &real).unwrap();
                    std::fs::rename(&link, &acme).unwrap();
                    std::fs::rename(&acme, &link).unwrap();
                    std::fs::rename(&real, &acme).unwrap();
                }
            })
        };
        let mut read_inside = 0;
        for _ in 0..20_000 {
            match read(&dir, "acme/key") {
                Ok(Some(secret)) if secret == "inside" => read_inside += 1,
                Ok(Some(secret)) => panic!("read {secret:?} through a swapped symlink"),
                // Gone for a moment, or refused: neither leaks anything.
                Ok(None) | Err(_) => {}
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        swapper.join().unwrap();
        assert!(read_inside > 0, "the file inside was never read");
    }
}
