//! Plugin hot swap under load (issue 5): payments are created through the
//! `stripe` alias as fast as 32 clients can, while an operator activates
//! and rolls back the `stripe` adapter in the registry 20 times and once
//! publishes a corrupt version. Reports failed requests and the time from
//! each registry change to the new version serving (the host only follows
//! the registry's manifest; nothing tells it).
//!
//! Settings (environment): `BENCH_CLIENTS` (32), `BENCH_SWAPS` (20).
//! Run with `scripts/bench-swap`; docs/BENCHMARKS.md holds the figures.
//! `BENCH_JSON` names a file for the same figures as JSON (scripts/report).

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use paygate::plugins::{CacheLocation, PublishRequest, publish};
use paygate::{App, Config};
use paygate_demo::sandbox::SandboxArgs;
use paygate_plugin_registry::{PluginKind, PluginSpec, Publish, Registry};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use common::{fresh_databases, percentile_ms, setting, write_json};

const PREFIX: &str = "paygate_bench_swap";

fn component(name: &str) -> Vec<u8> {
    let path = format!("{}/../plugins/dist/{name}.wasm", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (run plugins/build.sh)"))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    paygate::telemetry::init();
    let clients = setting("BENCH_CLIENTS", 32);
    let swaps = setting("BENCH_SWAPS", 20);
    let work = tempfile::tempdir().unwrap();
    let registry_dir = work.path().join("registry");
    let registry = Registry::open(&registry_dir).unwrap();

    // The sandbox provider the adapter calls, in this process.
    let sandbox = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox_addr = sandbox.local_addr().unwrap();
    let spec = PluginSpec::from_toml(&format!(
        "allowed_hosts = [\"{sandbox_addr}\"]\n[config]\nbase-url = \"http://{sandbox_addr}\"\n\
         [secrets]\nsecret-key = \"env:STRIPE_SECRET_KEY\"\n"
    ))
    .unwrap();
    let cache = work.path().join("cache");
    for version in ["1.0.0", "2.0.0"] {
        publish(
            &registry,
            Some(CacheLocation {
                dir: cache.clone(),
                key_file: None,
            }),
            PublishRequest {
                name: "stripe".into(),
                version: version.into(),
                bytes: component("stripe_adapter"),
                spec: spec.clone(),
                sign_key: None,
                activate: version == "1.0.0",
            },
        )
        .unwrap();
    }

    let mut config = Config::for_tests(
        fresh_databases(PREFIX).await,
        work.path().join("plugins"),
        cache,
        "paygate-bench-swap:".into(),
    );
    std::fs::create_dir_all(&config.plugin_dir).unwrap();
    config.db_pool_size = 32;
    config.rate_limit.plugin = String::new();
    config.registry_dir = Some(registry_dir);
    config.outbox.namespace = "paygate_bench_swap.".into();
    let app = App::build(&config).await.expect("host starts");
    let url = format!("http://{}", app.local_addr());
    let services = app.services.clone();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    tokio::spawn(paygate_demo::sandbox::serve(
        sandbox,
        SandboxArgs::signing_as(
            &config,
            sandbox_addr,
            format!("http://{sandbox_addr}"),
            url.clone(),
        ),
        shutdown.clone(),
    ));
    let merchant = common::alias_and_merchant(&services, "stripe", 100_000_000).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, next_order) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(1)),
    );
    let client = reqwest::Client::new();
    let load: Vec<_> = (0..clients)
        .map(|_| {
            let (client, url, key) = (client.clone(), url.clone(), merchant.api_key.clone());
            let (stop, ok, failed, next_order) =
                (stop.clone(), ok.clone(), failed.clone(), next_order.clone());
            let subscription = merchant.subscription_id;
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let order = next_order.fetch_add(1, Ordering::Relaxed);
                    let body = json!({"order_id": order, "amount": 1, "price": "1.00",
                                      "alias": "stripe", "subscription_id": subscription});
                    let sent = client
                        .post(format!("{url}/api/v1/payments"))
                        .header("x-api-key", &key)
                        .json(&body)
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();

    let serving = || {
        services
            .payments
            .plugins
            .get("stripe")
            .map(|p| p.ctx.version.clone())
    };
    tokio::time::sleep(Duration::from_secs(2)).await; // warm-up
    let started = Instant::now();
    let ok_before = ok.load(Ordering::Relaxed);
    let mut times = Vec::new();
    for i in 0..swaps {
        let target = if i % 2 == 0 {
            registry.activate("stripe", "2.0.0").unwrap().to
        } else {
            registry.rollback("stripe").unwrap().to
        };
        let changed = Instant::now();
        while serving().as_deref() != Some(target.as_str()) {
            assert!(
                changed.elapsed() < Duration::from_secs(30),
                "{target} never served"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        times.push(changed.elapsed());
        if i == swaps / 2 {
            // A corrupt version published by a tool that skipped the checks.
            registry
                .publish(&Publish {
                    name: "stripe",
                    version: "3.0.0-corrupt",
                    bytes: b"\0asm corrupt",
                    kind: PluginKind::ProviderAdapter,
                    spec: &spec,
                    signature: None,
                    activate: true,
                })
                .unwrap();
            let refused = Instant::now();
            while !services
                .payments
                .plugins
                .list()
                .iter()
                .any(|p| p.name == "stripe" && p.last_rejection.is_some())
            {
                assert!(refused.elapsed() < Duration::from_secs(30), "never refused");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            registry.rollback("stripe").unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let elapsed = started.elapsed();
    let payments = ok.load(Ordering::Relaxed) - ok_before;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    times.sort();
    let (rate, failed) = (
        payments as f64 / elapsed.as_secs_f64(),
        failed.load(Ordering::Relaxed),
    );
    let (p50, max) = (percentile_ms(&times, 0.5), percentile_ms(&times, 1.0));
    println!("## Plugin hot swap under load\n");
    println!(
        "| clients | payments | rate | failed requests | swaps (+1 corrupt) | registry change → serving p50 | max |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {clients} | {payments} | {rate:.0}/s | {failed} | {swaps} | {p50:.0} ms | {max:.0} ms |"
    );
    // The corrupt version's refusal is asserted above: a run that gets here saw it.
    write_json(&json!({
        "bench": "swap", "clients": clients, "payments": payments, "seconds": elapsed.as_secs_f64(),
        "rate": rate, "failed": failed, "swaps": swaps, "corrupt_refused": true,
        "change_to_serving_p50_ms": p50, "change_to_serving_max_ms": max,
    }));
    shutdown.cancel();
    let _ = server.await;
}
