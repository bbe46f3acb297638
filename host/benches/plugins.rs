//! Plugin runtime benchmark: fresh-sandbox calls against the instance-reuse
//! floor, component load from cache against a fresh compile, and reload
//! time. Run with `scripts/bench-plugins` (which builds the plugins first).
//!
//! Prints a Markdown table, and writes its rows as JSON to `BENCH_JSON` when
//! set (scripts/report); docs/BENCHMARKS.md holds the recorded figures.

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use paygate::plugins::bindings::{LimitRequest, PaymentRequest};
use paygate::plugins::{
    Clock, Counters, EngineSettings, HostServices, Loader, PluginEngine, PluginSet,
};
use paygate_plugin_registry::PluginSpec;
use serde_json::{Value, json};

use common::{percentile_ms, setting, write_json};

fn wasm(name: &str) -> Vec<u8> {
    let path = format!("{}/../plugins/dist/{name}.wasm", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}; run plugins/build.sh first"))
}

/// Prints one table row and keeps it, under `id`, for the JSON document.
fn row(rows: &mut Vec<Value>, id: &str, what: &str, mut times: Vec<Duration>) {
    times.sort();
    let us = |p| percentile_ms(&times, p) * 1000.0;
    let (median, p99, max) = (us(0.5), us(0.99), us(1.0));
    println!(
        "| {what} | {} | {median:.1} | {p99:.1} | {max:.1} |",
        times.len()
    );
    rows.push(json!({"id": id, "measurement": what, "n": times.len(),
                     "median_us": median, "p99_us": p99, "max_us": max}));
}

fn runtime(cache: Option<std::path::PathBuf>) -> Arc<PluginSet> {
    let engine = PluginEngine::new(&EngineSettings::default()).expect("engine");
    let services = Arc::new(HostServices {
        http: paygate::plugins::http_client(),
        counters: Counters::memory(),
        clock: Clock::System,
        named_secrets: Default::default(),
        outgoing_headers: paygate::plugins::no_outgoing_headers,
        secrets_dir: None,
    });
    Arc::new(PluginSet::new(Loader::new(
        Arc::new(engine),
        services,
        cache,
    )))
}

#[tokio::main]
async fn main() {
    let iterations = setting("BENCH_ITERATIONS", 20_000) as usize;
    let mut rows = Vec::new();
    let cache = tempfile::tempdir().unwrap();
    let set = runtime(Some(cache.path().to_owned()));

    println!("| measurement | n | median µs | p99 µs | max µs |");
    println!("|---|---|---|---|---|");

    // Policy: limits so high every call is allowed, so each call does the full GCRA path.
    let spec =
        PluginSpec::from_toml("[config]\nip-rate = \"1000000000\"\nip-burst = \"1000000000\"\nkey-rate = \"1000000000\"\nkey-burst = \"1000000000\"\n")
            .unwrap();
    let policy = set
        .install("rate-limit", &wasm("token_bucket"), &spec)
        .unwrap();
    let request = LimitRequest {
        route: "/api/v1/payments".into(),
        method: "POST".into(),
        client_ip: "203.0.113.9".into(),
        merchant_id: None,
        key_id: Some("k1".into()),
    };
    for _ in 0..2_000 {
        policy.decide("warm", &request).await.unwrap();
    }
    let mut fresh = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let d = policy.decide("bench", &request).await.unwrap();
        fresh.push(started.elapsed());
        assert!(d.allowed);
    }
    row(
        &mut rows,
        "policy_fresh",
        "token-bucket `decide`, fresh sandbox per call",
        fresh,
    );
    let reuse = policy
        .bench_decide_reusing_instance(&request, iterations)
        .await
        .unwrap();
    row(
        &mut rows,
        "policy_reused",
        "token-bucket `decide`, one instance reused (floor)",
        reuse,
    );

    // Provider adapter against a loopback fake of Stripe.
    let fake = Router::new().route(
        "/v1/checkout/sessions",
        post(|| async {
            r#"{"id":"cs_bench","url":"https://checkout.stripe.com/c/pay/cs_bench"}"#
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, fake).await });
    // SAFETY: set before any other thread reads the environment.
    unsafe { std::env::set_var("PAYGATE_PLUGIN_SECRET_BENCH_STRIPE_KEY", "sk_test_bench") };
    let spec = PluginSpec::from_toml(&format!(
        "allowed_hosts = [\"127.0.0.1:{}\"]\n[config]\nbase-url = \"http://{addr}\"\n[secrets]\nsecret-key = \"env:PAYGATE_PLUGIN_SECRET_BENCH_STRIPE_KEY\"\n",
        addr.port()
    ))
    .unwrap();
    let stripe = set
        .install("stripe", &wasm("stripe_adapter"), &spec)
        .unwrap();
    let payment = PaymentRequest {
        payment_id: 1,
        merchant_id: 1,
        order_id: 1,
        amount: "1".into(),
        price: "10.00".into(),
        currency: "EUR".into(),
        idempotency_key: "k".into(),
        return_url: None,
        cancel_url: None,
        metadata: vec![],
    };
    let n = iterations / 10;
    let mut calls = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        stripe
            .create_payment("bench", &payment)
            .await
            .unwrap()
            .unwrap();
        calls.push(started.elapsed());
    }
    row(
        &mut rows,
        "stripe_create",
        "stripe adapter `create-payment` incl. loopback HTTP, fresh sandbox",
        calls,
    );

    // Loading: compile without a cache, then load what the cache holds.
    let bytes = wasm("stripe_adapter");
    let mut compiles = Vec::new();
    for _ in 0..5 {
        let uncached = runtime(None);
        let started = Instant::now();
        uncached
            .loader()
            .load("s", &bytes, &PluginSpec::default(), None)
            .unwrap();
        compiles.push(started.elapsed());
    }
    row(
        &mut rows,
        "load_compile",
        "load stripe adapter, compiling (no cache)",
        compiles,
    );
    let mut cached = Vec::new();
    for _ in 0..50 {
        let fresh_set = runtime(Some(cache.path().to_owned()));
        let started = Instant::now();
        let (_, source) = fresh_set
            .loader()
            .load("s", &bytes, &PluginSpec::default(), None)
            .unwrap();
        cached.push(started.elapsed());
        assert_eq!(source, paygate::plugins::CodeSource::Cached);
    }
    row(
        &mut rows,
        "load_cached",
        "load stripe adapter, from the compiled cache",
        cached,
    );

    // Swap: install alternating versions while measuring the install itself.
    let versions = [wasm("sandbox_adapter"), wasm("stripe_adapter")];
    let mut swaps = Vec::new();
    for i in 0..20 {
        let started = Instant::now();
        set.install("stripe", &versions[i % 2], &spec).unwrap();
        swaps.push(started.elapsed());
    }
    row(
        &mut rows,
        "swap_install",
        "swap a provider version (cached code) into the serving set",
        swaps,
    );
    write_json(&json!({"bench": "plugins", "iterations": iterations, "rows": rows}));
}
