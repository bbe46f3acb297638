//! Operators and the plugin registry: publishing checks the component,
//! the admin API activates and rolls back behind its token, the host swaps
//! versions under load without failing a request, and a bad version is
//! refused while the old one keeps serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use paygate::plugins::{PublishRequest, publish};
use paygate_plugin_registry::{PluginKind, PluginSpec, Publish, Registry};
use serde_json::{Value, json};

use super::app::{LAX_RATE_LIMIT, TestApp, spawn_app_with};
use crate::helpers::wasm;

pub(super) const TOKEN: &str = "test-admin-token";

/// An app following its own registry directory.
async fn app_with_registry() -> (TestApp, tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let app = spawn_app_with(LAX_RATE_LIMIT, Vec::new(), move |mut c| {
        c.registry_dir = Some(root);
        c
    })
    .await;
    let registry = Registry::open(dir.path()).unwrap();
    (app, dir, registry)
}

/// The stripe adapter's spec, pointed at the app's sandbox provider.
pub(crate) fn stripe_spec(app: &TestApp) -> PluginSpec {
    let host = app.sandbox_url.trim_start_matches("http://");
    PluginSpec::from_toml(&super::app::provider_spec(host)).unwrap()
}

pub(crate) fn publish_stripe(
    registry: &Registry,
    app: &TestApp,
    version: &str,
    component: &str,
    activate: bool,
) {
    publish(
        registry,
        None,
        PublishRequest {
            name: "stripe".into(),
            version: version.into(),
            bytes: wasm(component),
            spec: stripe_spec(app),
            sign_key: None,
            activate,
        },
    )
    .unwrap();
}

pub(super) async fn admin(
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut request = app
        .client
        .request(method.parse().unwrap(), format!("{}{path}", app.admin_url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The version of `name` the app serves.
async fn serving(app: &TestApp, name: &str) -> Option<String> {
    let (_, listed) = admin(app, "GET", "/admin/v1/plugins", None, Some(TOKEN)).await;
    listed["plugins"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)?["version"]
        .as_str()
        .map(str::to_owned)
}

async fn wait_serving(app: &TestApp, name: &str, version: &str) -> Duration {
    let started = Instant::now();
    while serving(app, name).await.as_deref() != Some(version) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name}@{version} never served"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn publishing_refuses_what_would_not_load() {
    let (app, _dir, registry) = app_with_registry().await;
    let attempt = |bytes: Vec<u8>, spec: PluginSpec| {
        publish(
            &registry,
            None,
            PublishRequest {
                name: "stripe".into(),
                version: "9".into(),
                bytes,
                spec,
                sign_key: None,
                activate: true,
            },
        )
    };
    let garbage = attempt(b"not wasm at all".to_vec(), PluginSpec::default()).unwrap_err();
    assert!(
        garbage.to_string().contains("not a WebAssembly component"),
        "{garbage}"
    );
    let verifier_spec = PluginSpec {
        kind: Some(PluginKind::ProviderAdapter),
        ..PluginSpec::default()
    };
    let wrong = attempt(wasm("stripe_verifier"), verifier_spec).unwrap_err();
    assert!(wrong.to_string().contains("world"), "{wrong}");
    assert!(
        registry.list().unwrap().is_empty(),
        "nothing reached the registry"
    );
    drop(app);
}

#[tokio::test]
async fn the_admin_api_activates_and_rolls_back_behind_its_token() {
    let (app, dir, registry) = app_with_registry().await;
    publish_stripe(&registry, &app, "1.0.0", "stripe_adapter", true);
    publish_stripe(&registry, &app, "2.0.0", "stripe_adapter", false);
    wait_serving(&app, "stripe", "1.0.0").await;

    for token in [None, Some("wrong")] {
        let (status, body) = admin(&app, "GET", "/admin/v1/plugins", None, token).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("unauthorized"))
        );
        let (status, _) = admin(&app, "GET", "/metrics", None, token).await;
        assert_eq!(status, 401);
    }
    let (status, done) = admin(
        &app,
        "POST",
        "/admin/v1/plugins/stripe/activate",
        Some(json!({"version": "2.0.0"})),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        (
            done["from"].as_str(),
            done["to"].as_str(),
            done["serving"].as_str()
        ),
        (Some("1.0.0"), Some("2.0.0"), Some("2.0.0"))
    );
    let (status, done) = admin(
        &app,
        "POST",
        "/admin/v1/plugins/stripe/rollback",
        None,
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (status, done["serving"].as_str()),
        (200, Some("1.0.0")),
        "{done}"
    );

    let (status, body) = admin(
        &app,
        "POST",
        "/admin/v1/plugins/stripe/activate",
        Some(json!({"version": "7"})),
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = admin(
        &app,
        "POST",
        "/admin/v1/plugins/nope/rollback",
        None,
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = admin(
        &app,
        "POST",
        "/admin/v1/plugins/stripe/activate",
        Some(json!({})),
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );

    // A payment through the registry's stripe, then the metrics show it.
    let mut body = app.body(1);
    body["alias"] = json!("stripe");
    assert_eq!(app.create(&body).await.status, 200);
    let (status, metrics) = admin(&app, "GET", "/metrics", None, Some(TOKEN)).await;
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap().to_owned();
    // The CLI's list joins the registry with what the host serves.
    let root = dir.path().to_str().unwrap().to_owned();
    let admin_url = app.admin_url.clone();
    let (ok, listed, err) = tokio::task::spawn_blocking(move || {
        cli(&[
            "plugins",
            "--registry",
            &root,
            "list",
            "--admin-url",
            &admin_url,
            "--admin-token",
            TOKEN,
        ])
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    let row = listed
        .lines()
        .find(|l| l.starts_with("stripe"))
        .unwrap_or_default();
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &columns[..7]
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()[4..7],
        ["1.0.0", "1", "0"],
        "{listed}"
    );
    for line in [
        "paygate_plugin_calls_total{plugin=\"stripe\",version=\"1.0.0\",world=\"provider-adapter\"} 1",
        "paygate_http_requests_total{method=\"POST\",route=\"/api/v1/payments\",status=\"200\"}",
        "paygate_outbox_rows{state=\"pending\"}",
        "# TYPE paygate_plugin_call_duration_seconds histogram",
        "# TYPE paygate_plugin_cache_rejected counter",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
}

#[tokio::test]
async fn activations_under_load_fail_no_request_and_a_bad_version_is_refused() {
    let (app, _dir, registry) = app_with_registry().await;
    publish_stripe(&registry, &app, "1.0.0", "stripe_adapter", true);
    publish_stripe(&registry, &app, "2.0.0", "stripe_adapter", false);
    wait_serving(&app, "stripe", "1.0.0").await;

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let order = Arc::new(AtomicU64::new(1));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (client, url, key, sub) = (
            app.client.clone(),
            app.url.clone(),
            app.merchant.api_key.clone(),
            app.merchant.subscription_id,
        );
        let (stop, ok, failed, order) = (stop.clone(), ok.clone(), failed.clone(), order.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = order.fetch_add(1, Ordering::Relaxed);
                let r = client
                    .post(format!("{url}/api/v1/payments"))
                    .header("x-api-key", &key)
                    .json(&json!({"order_id": n, "amount": 1, "price": "1.00", "alias": "stripe", "subscription_id": sub}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let mut swaps = Vec::new();
    for round in 0..5 {
        let (path, body, version) = if round % 2 == 0 {
            (
                "/admin/v1/plugins/stripe/activate",
                Some(json!({"version": "2.0.0"})),
                "2.0.0",
            )
        } else {
            ("/admin/v1/plugins/stripe/rollback", None, "1.0.0")
        };
        let started = Instant::now();
        let (status, done) = admin(&app, "POST", path, body, Some(TOKEN)).await;
        assert_eq!(
            (status, done["serving"].as_str()),
            (200, Some(version)),
            "{done}"
        );
        swaps.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Another operator's tool wrote a version that is not a component.
    let spec = stripe_spec(&app);
    registry
        .publish(&Publish {
            name: "stripe",
            version: "3.0.0-broken",
            bytes: b"\0asm garbage",
            kind: PluginKind::ProviderAdapter,
            spec: &spec,
            signature: None,
            activate: true,
        })
        .unwrap();
    let started = Instant::now();
    loop {
        let (_, listed) = admin(&app, "GET", "/admin/v1/plugins", None, Some(TOKEN)).await;
        let stripe = listed["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "stripe")
            .unwrap()
            .clone();
        if stripe["last_rejection"].is_string() {
            assert_eq!(stripe["version"], "2.0.0", "the old version keeps serving");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the broken version was never refused: {stripe}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("registry swaps under load: {ok} payments, {failed} failed, swap times {swaps:?}");
    assert!(ok > 20, "the load ran ({ok} payments)");
    assert_eq!(failed, 0);
}

/// Runs the `paygate` binary; (success, stdout, stderr).
fn cli(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_paygate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_plugins_cli_publishes_signed_versions_activates_rolls_back_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry");
    let registry = registry.to_str().unwrap();
    let component = crate::helpers::root().join("plugins/dist/token_bucket.wasm");
    let component = component.to_str().unwrap();
    let key = dir.path().join("signing.key");
    let key = key.to_str().unwrap();
    let cache = dir.path().join("cache");
    let run = |args: &[&str]| {
        let mut all = vec!["plugins", "--registry", registry];
        all.extend_from_slice(args);
        cli(&all)
    };
    let (ok, out, err) = run(&["keygen", "--out", key]);
    assert!(ok, "{err}");
    let public: Value = serde_json::from_str(&out).unwrap();
    let public = public["public_key"].as_str().unwrap().to_owned();
    assert!(
        !out.contains(&std::fs::read_to_string(key).unwrap().trim().to_owned()),
        "the secret key is never printed"
    );
    assert!(run(&["trust", &public]).0);

    let publish = |version: &str, signed: bool| {
        let mut args = vec![
            "publish",
            component,
            "--name",
            "rate-limit",
            "--version",
            version,
            "--cache-dir",
            cache.to_str().unwrap(),
        ];
        if signed {
            args.extend_from_slice(&["--sign-key", key]);
        }
        run(&args)
    };
    let (ok, _, err) = publish("1", false);
    assert!(
        !ok && err.to_lowercase().contains("sign"),
        "an unsigned component is refused: {err}"
    );
    let (ok, out, err) = publish("1", true);
    assert!(ok, "{err}");
    assert!(out.contains("\"Added\""), "{out}");
    assert!(publish("2", true).0);
    let (ok, _, err) = run(&["activate", "rate-limit@1"]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&["activate", "rate-limit@2"]);
    assert!(ok, "{err}");
    assert!(out.contains("\"from\": \"1\""), "{out}");
    let (ok, out, _) = run(&["list"]);
    assert!(
        ok && out.contains("rate-limit") && out.contains("rate-limit-policy"),
        "{out}"
    );
    let (ok, out, err) = run(&["rollback", "rate-limit"]);
    assert!(ok && out.contains("\"to\": \"1\""), "{out}{err}");
    let (ok, _, err) = run(&["activate", "rate-limit@9"]);
    assert!(!ok && err.contains("9"), "{err}");
    let (ok, out, err) = run(&["verify"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("\"problems\": 0"), "{out}");
    let (_, _, err) = run(&["list"]);
    assert!(
        err.contains("no admin token"),
        "list says why it shows no serving state: {err}"
    );

    // The version is the spec's unless --version says it, and they agree.
    let spec = dir.path().join("rate-limit.toml");
    std::fs::write(&spec, "version = \"3.0.0\"\n").unwrap();
    let spec = spec.to_str().unwrap();
    let with_spec = |version: Option<&str>| {
        let mut args = vec!["publish", component, "--name", "rate-limit", "--spec", spec];
        args.extend_from_slice(&["--sign-key", key, "--cache-dir", cache.to_str().unwrap()]);
        if let Some(version) = version {
            args.extend_from_slice(&["--version", version]);
        }
        run(&args)
    };
    let (ok, _, err) = with_spec(Some("4.0.0"));
    assert!(
        !ok && err.contains("4.0.0") && err.contains("3.0.0"),
        "{err}"
    );
    let (ok, out, err) = with_spec(None);
    assert!(ok, "{err}");
    assert!(out.contains("\"version\": \"3.0.0\""), "{out}");
    let cache = cache.to_str().unwrap();
    let unversioned = [
        "publish",
        component,
        "--name",
        "rate-limit",
        "--sign-key",
        key,
    ];
    let (ok, _, err) = run(&[&unversioned[..], &["--cache-dir", cache]].concat());
    assert!(!ok && err.contains("no version"), "{err}");
}

/// Everything the app lists under `name` (serving or refused).
async fn listed(app: &TestApp, name: &str) -> Value {
    let (_, listed) = admin(app, "GET", "/admin/v1/plugins", None, Some(TOKEN)).await;
    listed["plugins"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == name).cloned())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn once_the_registry_trusts_a_key_the_plugin_directory_needs_signatures_too() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    let (secret, public) = paygate_plugin_registry::keygen().unwrap();
    registry.trust(&public).unwrap();
    let key = dir.path().join("signing.key");
    secret.save(&key).unwrap();
    let root = dir.path().to_owned();
    let app = spawn_app_with(LAX_RATE_LIMIT, Vec::new(), move |mut c| {
        c.registry_dir = Some(root);
        c
    })
    .await;
    // The standard plugins were staged unsigned into its plugin directory.
    for name in ["sandbox", "stripe", "internal-webhook"] {
        let plugin = listed(&app, name).await;
        assert!(
            plugin["version"].is_null(),
            "{name} serves unsigned: {plugin}"
        );
        let refusal = plugin["last_rejection"].as_str().unwrap_or_default();
        assert!(refusal.contains("unsigned"), "{name}: {plugin}");
    }
    // `paygate plugins sign` signs a plugin as the directory holds it; the
    // host, watching, loads it.
    let component = app.plugin_dir().join("sandbox.wasm");
    let (component, key) = (
        component.to_str().unwrap().to_owned(),
        key.to_str().unwrap().to_owned(),
    );
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        cli(&["plugins", "sign", &component, "--sign-key", &key])
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(out.contains(&public.id().to_string()), "{out}");
    assert!(app.plugin_dir().join("sandbox.sig").is_file());
    wait_serving(&app, "sandbox", "unversioned").await;
    let stripe = listed(&app, "stripe").await;
    assert!(stripe["version"].is_null(), "still unsigned: {stripe}");
}

#[tokio::test]
async fn hosts_sharing_a_registry_converge_on_the_active_version() {
    let (first, dir, registry) = app_with_registry().await;
    let root = dir.path().to_owned();
    let second = spawn_app_with(LAX_RATE_LIMIT, Vec::new(), move |mut c| {
        c.registry_dir = Some(root);
        c
    })
    .await;
    publish_stripe(&registry, &first, "1.0.0", "stripe_adapter", true);
    publish_stripe(&registry, &first, "2.0.0", "stripe_adapter", false);
    for app in [&first, &second] {
        wait_serving(app, "stripe", "1.0.0").await;
    }
    // An operator's CLI changes the registry; neither host is told.
    registry.activate("stripe", "2.0.0").unwrap();
    for app in [&first, &second] {
        let took = wait_serving(app, "stripe", "2.0.0").await;
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }
    registry.rollback("stripe").unwrap();
    for app in [&first, &second] {
        wait_serving(app, "stripe", "1.0.0").await;
    }
}
