//! Hot reload from a watched directory under a steady call loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use paygate::plugins::PluginDir;
use paygate_plugin_registry::Digest;
use tokio_util::sync::CancellationToken;

use crate::helpers::{FakeServer, Runtime, payment, wasm};

/// Writes like an operator should: a temporary file, then a rename.
fn publish(dir: &std::path::Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.wasm.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{name}.wasm"))).unwrap();
}

/// Waits until `check` holds, up to 10 s; returns how long it took.
async fn until(check: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting for reload"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_under_load_lose_no_call_and_corrupt_versions_are_refused() {
    let fake = FakeServer::start(Router::new().route(
        "/payment-links",
        post(|| async {
            (
                axum::http::StatusCode::CREATED,
                r#"{"id":"pl_1","payment_url":"http://pay.invalid/pl_1"}"#,
            )
        }),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pay.toml"),
        format!(
            "allowed_hosts = [\"127.0.0.1:{}\"]\n[config]\nbase-url = \"{}\"\n",
            fake.addr.port(),
            fake.url()
        ),
    )
    .unwrap();
    let versions = [wasm("chaos"), wasm("sandbox_adapter")];
    publish(dir.path(), "pay", &versions[0]);

    let rt = Runtime::new();
    let plugin_dir = PluginDir::new(dir.path());
    assert!(plugin_dir.load_all(&rt.set).unwrap().is_empty());
    let shutdown = CancellationToken::new();
    let watcher = plugin_dir.watch(rt.set.clone(), shutdown.clone()).unwrap();

    // A steady call loop: every call must succeed on whichever version serves.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let loops: Vec<_> = (0..4)
        .map(|_| {
            let (set, stop, ok, failed) =
                (rt.set.clone(), stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let plugin = set.require("pay").unwrap();
                    match plugin.create_payment("loop", &payment(1, &[])).await {
                        Ok(Ok(_)) => ok.fetch_add(1, Ordering::Relaxed),
                        other => {
                            eprintln!("failed call: {other:?}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    // A call that does no I/O never yields; let the watcher run.
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();

    let digest_now = || rt.set.get("pay").map(|p| p.ctx.digest);
    let mut reloads = Vec::new();
    for i in 1..=20 {
        let bytes = &versions[i % 2];
        publish(dir.path(), "pay", bytes);
        let want = Digest::of(bytes);
        reloads.push(until(|| digest_now() == Some(want)).await);
    }
    let serving = digest_now();

    // A corrupt component is refused; the serving version stays.
    publish(
        dir.path(),
        "pay",
        b"\0asm\x0d\0\x01\0 this is not a valid component",
    );
    until(|| {
        rt.set
            .list()
            .iter()
            .any(|p| p.name == "pay" && p.last_rejection.is_some())
    })
    .await;
    assert_eq!(digest_now(), serving);
    tokio::time::sleep(Duration::from_millis(100)).await;

    // And a good version after it is taken again.
    assert_eq!(serving, Some(Digest::of(&versions[0])));
    publish(dir.path(), "pay", &versions[1]);
    until(|| digest_now() == Some(Digest::of(&versions[1]))).await;

    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    shutdown.cancel();
    watcher.await.unwrap();

    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!(
        "{ok} calls, {failed} failed, slowest reload {:?}",
        reloads.iter().max().unwrap()
    );
    assert_eq!(failed, 0);
    assert!(ok > 100, "the loop made only {ok} calls");
    assert!(
        rt.set.list().iter().all(|p| p.last_rejection.is_none()),
        "success clears the rejection"
    );
}

#[tokio::test]
async fn a_bad_spec_is_refused_like_a_bad_component() {
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), "policy", &wasm("token_bucket"));
    std::fs::write(dir.path().join("policy.toml"), "limits = \"lots\"").unwrap();
    let rt = Runtime::new();
    let failures = PluginDir::new(dir.path()).load_all(&rt.set).unwrap();
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].to_string().contains("invalid plugin spec"),
        "{}",
        failures[0]
    );
    assert!(rt.set.get("policy").is_none());
}

/// Adds a signature by `key` of the plugin `name` in `dir` as it is there
/// now (its component and its spec).
fn sign_in(dir: &std::path::Path, name: &str, key: &paygate_plugin_registry::SecretKey) {
    let bytes = std::fs::read(dir.join(format!("{name}.wasm"))).unwrap();
    let spec = match std::fs::read_to_string(dir.join(format!("{name}.toml"))) {
        Ok(text) => paygate_plugin_registry::PluginSpec::from_toml(&text).unwrap(),
        Err(_) => paygate_plugin_registry::PluginSpec::default(),
    };
    let signature = paygate_plugin_registry::sign(key, name, &bytes, &spec);
    paygate_plugin_registry::signing::add_to_signature_file(
        &dir.join(format!("{name}.sig")),
        &signature,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_following_a_trusting_registry_loads_only_what_a_trusted_key_signed() {
    let work = tempfile::tempdir().unwrap();
    let registry = paygate_plugin_registry::Registry::open(work.path().join("registry")).unwrap();
    let (key, public) = paygate_plugin_registry::keygen().unwrap();
    let (stranger, _) = paygate_plugin_registry::keygen().unwrap();
    let dir = work.path().join("plugins");
    std::fs::create_dir(&dir).unwrap();
    let spec = "version = \"1\"\n[config]\nip-rate = \"5\"\n";
    std::fs::write(dir.join("policy.toml"), spec).unwrap();
    publish(&dir, "policy", &wasm("token_bucket"));
    let rt = Runtime::new();
    let plugin_dir = PluginDir::new(&dir).requiring_signatures_of(registry.clone());

    // Trusting no key, the registry asks for no signature.
    assert!(plugin_dir.load_all(&rt.set).unwrap().is_empty());
    let rt = Runtime::new();
    registry.trust(&public).unwrap();
    let failures = plugin_dir.load_all(&rt.set).unwrap();
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].to_string().contains("unsigned"),
        "{}",
        failures[0]
    );
    sign_in(&dir, "policy", &stranger);
    let failures = plugin_dir.load_all(&rt.set).unwrap();
    assert!(
        failures[0].to_string().contains("does not trust"),
        "{}",
        failures[0]
    );
    assert!(rt.set.get("policy").is_none());

    // Signing it (the signature file changes) loads it, watched.
    let shutdown = CancellationToken::new();
    let watcher = plugin_dir.watch(rt.set.clone(), shutdown.clone()).unwrap();
    sign_in(&dir, "policy", &key);
    until(|| rt.set.get("policy").is_some()).await;

    // A spec changed after signing (more capacity, a new version) is
    // refused; the signed version keeps serving.
    let tmp = dir.join(".policy.toml.tmp");
    std::fs::write(&tmp, "version = \"2\"\n[config]\nip-rate = \"5000\"\n").unwrap();
    std::fs::rename(&tmp, dir.join("policy.toml")).unwrap();
    until(|| {
        rt.set
            .list()
            .iter()
            .any(|p| p.name == "policy" && p.last_rejection.is_some())
    })
    .await;
    let info = rt
        .set
        .list()
        .into_iter()
        .find(|p| p.name == "policy")
        .unwrap();
    assert_eq!(info.version.as_deref(), Some("1"));
    let refusal = info.last_rejection.unwrap();
    assert!(
        refusal.contains("does not match the component and its spec"),
        "{refusal}"
    );

    // Signed again as it now is, it serves.
    sign_in(&dir, "policy", &key);
    until(|| rt.set.get("policy").is_some_and(|p| p.ctx.version == "2")).await;

    // The same component, spec and signature copied under another name
    // are not signed as that plugin: a signature binds the name too.
    // The component comes last, so the first load sees all three.
    for ext in ["sig", "toml", "wasm"] {
        let tmp = dir.join(format!(".renamed.{ext}.tmp"));
        std::fs::copy(dir.join(format!("policy.{ext}")), &tmp).unwrap();
        std::fs::rename(&tmp, dir.join(format!("renamed.{ext}"))).unwrap();
    }
    let refused = |p: &paygate::plugins::PluginInfo| {
        p.name == "renamed"
            && p.last_rejection
                .as_deref()
                .is_some_and(|r| r.contains("does not match the component"))
    };
    until(|| rt.set.list().iter().any(refused)).await;
    assert!(rt.set.get("renamed").is_none());
    shutdown.cancel();
    watcher.await.unwrap();
}

/// The `Authorization` header of the last request `fake` received.
fn last_authorization(fake: &FakeServer) -> String {
    let requests = fake.requests();
    let last = requests.last().expect("a request reached the provider");
    (last.headers.iter())
        .find(|(name, _)| *name == "authorization")
        .map(|(_, value)| value.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_secret_is_read_again_when_its_plugin_reloads() {
    let fake = FakeServer::start(Router::new().route(
        "/v1/checkout/sessions",
        post(|| async { r#"{"id":"cs_1","url":"https://pay.invalid/cs_1"}"# }),
    ))
    .await;
    let secrets = tempfile::tempdir().unwrap();
    std::fs::create_dir(secrets.path().join("acme")).unwrap();
    std::fs::write(secrets.path().join("acme/key"), "sk_test_first\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = |version: &str| {
        format!(
            "version = \"{version}\"\nallowed_hosts = [\"127.0.0.1:{}\"]\n[config]\n\
             base-url = \"{}\"\n[secrets]\nsecret-key = \"file:acme/key\"\n",
            fake.addr.port(),
            fake.url()
        )
    };
    std::fs::write(dir.path().join("acme.toml"), spec("1")).unwrap();
    publish(dir.path(), "acme", &wasm("stripe_adapter"));

    let rt = Runtime::with_secrets_dir(secrets.path());
    let plugin_dir = PluginDir::new(dir.path());
    assert!(plugin_dir.load_all(&rt.set).unwrap().is_empty());
    let shutdown = CancellationToken::new();
    let _watcher = plugin_dir.watch(rt.set.clone(), shutdown.clone()).unwrap();
    let answer = rt
        .set
        .require("acme")
        .unwrap()
        .create_payment("t", &payment(1, &[]))
        .await;
    assert!(matches!(answer, Ok(Ok(_))), "{answer:?}");
    assert_eq!(last_authorization(&fake), "Bearer sk_test_first");

    // The operator writes the new key, then publishes the plugin again: the
    // reload reads the file, with no restart.
    std::fs::write(secrets.path().join("acme/key"), "sk_test_second\n").unwrap();
    std::fs::write(dir.path().join("acme.toml"), spec("2")).unwrap();
    until(|| rt.set.get("acme").is_some_and(|p| p.ctx.version == "2")).await;
    let answer = rt
        .set
        .require("acme")
        .unwrap()
        .create_payment("t", &payment(2, &[]))
        .await;
    assert!(matches!(answer, Ok(Ok(_))), "{answer:?}");
    assert_eq!(last_authorization(&fake), "Bearer sk_test_second");

    // A spec whose file secret leads out of the directory is refused, and
    // the version before it keeps serving.
    std::os::unix::fs::symlink(
        dir.path().join("acme.toml"),
        secrets.path().join("acme/leak"),
    )
    .unwrap();
    let leaking = spec("3").replace("file:acme/key", "file:acme/leak");
    std::fs::write(dir.path().join("acme.toml"), leaking).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let serving = rt.set.get("acme").unwrap();
    assert_eq!(serving.ctx.version, "2");
    shutdown.cancel();
}
