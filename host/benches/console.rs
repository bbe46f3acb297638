//! Operator console benchmark (issue 16): how long the console takes to
//! load every view's data, on a gateway with `BENCH_MERCHANTS` (1,000)
//! merchants, `BENCH_PLUGINS` (10) plugins serving and `BENCH_FAILED`
//! (10,000) failed notifications.
//!
//! The console's load is the six admin API reads its script makes at once
//! (plugins, providers, outbox counts, failed notifications, merchants,
//! audit log); each round makes them concurrently over HTTP to the admin
//! listener, as the page does, and the figure is the round's time, over
//! `BENCH_ROUNDS` (200) rounds after 10 of warm-up. The page itself is
//! static and served from memory.
//!
//! Run with `scripts/bench-console`; `BENCH_JSON` names a file for the
//! same figures as JSON (scripts/report).

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use paygate::merchants::NewMerchant;
use paygate::{App, Config};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use common::{fresh_databases, percentile_ms, setting, write_json};

const PREFIX: &str = "paygate_bench_console";
const TOKEN: &str = "test-admin-token";
const READS: [&str; 6] = [
    "/admin/v1/plugins",
    "/admin/v1/providers",
    "/admin/v1/outbox",
    "/admin/v1/notifications?status=LOG_FAILED&limit=100",
    "/admin/v1/merchants?limit=100",
    "/admin/v1/audit?limit=100",
];

/// Copies a built component into the plugin directory as `name`.
fn stage(dir: &std::path::Path, name: &str, component: &str, spec: &str) {
    let wasm = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(format!("{component}.wasm"));
    std::fs::copy(&wasm, dir.join(format!("{name}.wasm")))
        .unwrap_or_else(|e| panic!("{}: {e}; run plugins/build.sh", wasm.display()));
    std::fs::write(dir.join(format!("{name}.toml")), spec).unwrap();
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    paygate::telemetry::init_with_default("warn");
    let merchants = setting("BENCH_MERCHANTS", 1_000) as i64;
    let plugins = setting("BENCH_PLUGINS", 10) as usize;
    let failed = setting("BENCH_FAILED", 10_000) as i64;
    let rounds = setting("BENCH_ROUNDS", 200) as usize;
    let urls = fresh_databases(PREFIX).await;

    // The rate-limit policy and provider adapters (to nowhere: nothing is
    // paid here) up to the plugin count.
    let plugin_dir = tempfile::tempdir().unwrap();
    let adapter =
        "allowed_hosts = [\"127.0.0.1:9\"]\n[config]\nbase-url = \"http://127.0.0.1:9\"\n";
    stage(
        plugin_dir.path(),
        "rate-limit",
        "token_bucket",
        common::RATE_LIMIT_SPEC,
    );
    for i in 1..plugins {
        stage(
            plugin_dir.path(),
            &format!("provider-{i}"),
            "sandbox_adapter",
            adapter,
        );
    }
    let config = Config::for_tests(
        urls,
        plugin_dir.path().to_owned(),
        plugin_dir.path().join("cache"),
        format!("paygate-bench-console-{}:", uuid::Uuid::new_v4()),
    );
    let app = App::build(&config).await.expect("host starts");
    let admin = format!("http://{}", app.admin_addr().expect("an admin listener"));
    let (services, dbs) = (app.services.clone(), app.dbs.clone());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run(shutdown.clone()));

    for i in 1..plugins {
        let binding = paygate::providers::AliasBinding {
            alias: format!("provider-{i}"),
            provider_plugin: format!("provider-{i}"),
            verifier_plugin: None,
            available: true,
        };
        services
            .payments
            .providers
            .set(&binding)
            .await
            .expect("an alias");
    }
    for i in 0..merchants {
        services
            .merchants
            .store
            .create(&NewMerchant {
                name: format!("merchant {i}"),
                callback_url: Some("https://merchant.example/hooks".into()),
                tokens: 1000,
                currency: "EUR".into(),
                require_signed_writes: false,
            })
            .await
            .expect("a merchant");
    }
    // Failed notifications, each with its one attempt, spread over the
    // merchants: written straight to the database, as an outage leaves them.
    sqlx::query(
        "WITH p AS (
             INSERT INTO payments (merchant_id, order_id, subscription_id, alias, amount, price,
                                   currency, status)
             SELECT 1 + g % $2, g, 1, 'provider-1', 1, 10.00, 'EUR', 'PAYMENT_FINISHED'
             FROM generate_series(1, $1) g
             RETURNING id, merchant_id, order_id),
         o AS (
             INSERT INTO outbox (payment_id, event_id, event_type, payload, status, attempts)
             SELECT id, gen_random_uuid(), 'payment.finished',
                    jsonb_build_object('payment_id', id, 'merchant_id', merchant_id), 'LOG_FAILED', 1
             FROM p RETURNING id)
         INSERT INTO notification_attempts (outbox_id, attempt, at, status_code, latency_ms, error)
         SELECT id, 1, now(), 503, 12, 'merchant answered 503 Service Unavailable' FROM o",
    )
    .bind(failed)
    .bind(merchants.max(1))
    .execute(&dbs.payments)
    .await
    .expect("the failed notifications");
    sqlx::query("VACUUM ANALYZE outbox")
        .execute(&dbs.payments)
        .await
        .unwrap();

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let load = async || {
        let started = Instant::now();
        let answers = futures_util::future::join_all(READS.iter().map(|path| {
            client
                .get(format!("{admin}{path}"))
                .bearer_auth(TOKEN)
                .send()
        }))
        .await;
        let mut bytes = 0;
        for answer in answers {
            let answer = answer.expect("an answer");
            assert!(answer.status().is_success(), "{}", answer.status());
            bytes += answer.bytes().await.expect("a body").len();
        }
        (started.elapsed(), bytes)
    };
    for _ in 0..10 {
        load().await;
    }
    let mut times: Vec<Duration> = Vec::with_capacity(rounds);
    let mut bytes = 0;
    for _ in 0..rounds {
        let (took, size) = load().await;
        times.push(took);
        bytes = size;
    }
    times.sort();
    let [p50, p99, max] = [0.5, 0.99, 1.0].map(|p| percentile_ms(&times, p));
    println!("## Console load: every view's data at once\n");
    println!("| merchants | plugins | failed notifications | rounds | bytes | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {merchants} | {plugins} | {failed} | {rounds} | {bytes} | {p50:.1} ms | {p99:.1} ms | {max:.1} ms |\n"
    );
    write_json(&json!({
        "bench": "console", "merchants": merchants, "plugins": plugins, "failed": failed,
        "rounds": rounds, "bytes": bytes, "p50_ms": p50, "p99_ms": p99, "max_ms": max,
    }));
    shutdown.cancel();
    let _ = server.await;
}
