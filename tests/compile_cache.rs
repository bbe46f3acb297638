//! The compile cache: compiled code found in the cache directory runs only
//! if this host wrote it for exactly these component bytes and this engine.
//! Whoever can write the cache directory must not be able to swap in other
//! native code.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use paygate::plugins::{CodeSource, Counters, EngineSettings, HostServices, Loader, PluginEngine};
use paygate_plugin_registry::{Digest, PluginKind, PluginSpec};

use crate::helpers::wasm;

/// A loader as a host builds it at start, over the cache directory `cache`.
fn loader(cache: &Path) -> Loader {
    let engine = PluginEngine::new(&EngineSettings {
        max_concurrent_calls: 10,
        fuel: true,
    })
    .expect("engine");
    Loader::new(
        Arc::new(engine),
        HostServices::new(Counters::memory(), Default::default()),
        Some(cache.to_owned()),
    )
}

/// The cached artifact of the component `bytes`.
fn artifact(cache: &Path, bytes: &[u8]) -> PathBuf {
    let digest = Digest::of(bytes).hex();
    let found: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(&digest) && name.ends_with(".cwasm")
        })
        .collect();
    assert_eq!(found.len(), 1, "one artifact for {digest}: {found:?}");
    found.into_iter().next().unwrap()
}

/// The world `bytes` load as, and where their code came from.
fn load(loader: &Loader, bytes: &[u8]) -> (PluginKind, CodeSource) {
    let (compiled, source) = loader.compile("policy", bytes).unwrap();
    let plugin = loader
        .load_compiled("policy", &compiled, &PluginSpec::default(), None)
        .unwrap();
    (plugin.ctx.kind, source)
}

#[test]
fn a_cache_entry_this_host_did_not_write_for_these_bytes_is_refused_and_recompiled() {
    crate::logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (policy, adapter) = (wasm("token_bucket"), wasm("sandbox_adapter"));

    let first = loader(&cache);
    assert_eq!(
        load(&first, &policy),
        (PluginKind::RateLimitPolicy, CodeSource::Compiled)
    );
    assert_eq!(load(&first, &adapter).1, CodeSource::Compiled);
    // A restart finds its own artifacts and uses them.
    assert_eq!(
        load(&loader(&cache), &policy),
        (PluginKind::RateLimitPolicy, CodeSource::Cached)
    );

    // Whoever can write the cache directory puts other compiled code (a
    // valid artifact for this very engine) where the policy's belongs.
    let target = artifact(&cache, &policy);
    std::fs::copy(artifact(&cache, &adapter), &target).unwrap();
    let restarted = loader(&cache);
    assert_eq!(
        load(&restarted, &policy),
        (PluginKind::RateLimitPolicy, CodeSource::Compiled),
        "the swapped artifact must not run"
    );
    assert_eq!(restarted.cache_stats().rejected.load(Relaxed), 1);
    assert!(
        crate::logs::captured().contains("refusing a cached artifact"),
        "the refusal is logged"
    );
    // It was replaced by a good one, which the next start uses.
    assert_eq!(
        load(&loader(&cache), &policy),
        (PluginKind::RateLimitPolicy, CodeSource::Cached)
    );

    // Bytes that are no artifact at all are refused the same way.
    std::fs::write(artifact(&cache, &policy), b"not compiled code").unwrap();
    assert_eq!(
        load(&restarted, &policy),
        (PluginKind::RateLimitPolicy, CodeSource::Compiled)
    );
    assert_eq!(restarted.cache_stats().rejected.load(Relaxed), 2);

    // The key lives beside the cache directory, not in it, readable by
    // its owner only.
    let key = dir.path().join("cache.key");
    assert!(key.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn artifacts_written_under_another_key_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let policy = wasm("token_bucket");
    assert_eq!(load(&loader(&cache), &policy).1, CodeSource::Compiled);

    // Another host (or an attacker) with its own key wrote the cache.
    std::fs::remove_file(dir.path().join("cache.key")).unwrap();
    let other = loader(&cache);
    assert_eq!(load(&other, &policy).1, CodeSource::Compiled);
    assert_eq!(other.cache_stats().rejected.load(Relaxed), 1);
    assert_eq!(load(&loader(&cache), &policy).1, CodeSource::Cached);
}
