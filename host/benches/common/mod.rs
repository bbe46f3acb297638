//! What the benchmarks share: settings from the environment, fresh
//! databases of their own, percentiles, and the machine-readable copy of
//! their results that scripts/report assembles into docs/BENCHMARKS.md.

// Each bench uses some of these, none all of them.
#![allow(dead_code)]

use std::time::Duration;

use paygate::config::DatabaseUrls;
use sqlx::Connection;

const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// A numeric setting from the environment, or `default`.
pub fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The four databases `{prefix}_payments`, ... dropped if an earlier run
/// left them (the host creates and migrates them at start).
pub async fn fresh_databases(prefix: &str) -> DatabaseUrls {
    let mut admin = sqlx::PgConnection::connect(&format!("{PG_SERVER}/postgres"))
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
    for db in ["payments", "merchants", "providers", "logs"] {
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {prefix}_{db} WITH (FORCE)"
        ))
        .execute(&mut admin)
        .await
        .unwrap();
    }
    let url = |db: &str| format!("{PG_SERVER}/{prefix}_{db}");
    DatabaseUrls {
        payments: url("payments"),
        merchants: url("merchants"),
        providers: url("providers"),
        logs: url("logs"),
    }
}

/// The `p` quantile of sorted durations, in milliseconds (NaN when empty).
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Writes `doc` as pretty JSON to the file `BENCH_JSON` names, when it is
/// set: the figures behind the Markdown a bench prints, for scripts/report.
pub fn write_json(doc: &serde_json::Value) {
    let Some(path) = std::env::var_os("BENCH_JSON") else {
        return;
    };
    let text = serde_json::to_string_pretty(doc).expect("a JSON value serializes");
    std::fs::write(&path, text + "\n")
        .unwrap_or_else(|e| panic!("writing BENCH_JSON={}: {e}", path.to_string_lossy()));
}

/// Rate limits no run can reach: every request takes the policy's full
/// path (both buckets) and is allowed.
pub const RATE_LIMIT_SPEC: &str = "[config]\nip-rate = \"1000000\"\nip-burst = \"1000000\"\nkey-rate = \"1000000\"\nkey-burst = \"1000000\"\n";

/// Binds `alias` to the provider plugin of the same name (no verifier) and
/// creates the bench's merchant with `tokens` to spend.
pub async fn alias_and_merchant(
    services: &paygate::http::AppState,
    alias: &str,
    tokens: i64,
) -> paygate::merchants::CreatedMerchant {
    services
        .payments
        .providers
        .set(&paygate::providers::AliasBinding {
            alias: alias.into(),
            provider_plugin: alias.into(),
            verifier_plugin: None,
            available: true,
        })
        .await
        .expect("binding the alias");
    services
        .merchants
        .store
        .create(&paygate::merchants::NewMerchant {
            name: "bench merchant".into(),
            callback_url: None,
            tokens,
            currency: "EUR".into(),
            require_signed_writes: false,
        })
        .await
        .expect("creating the merchant")
}

/// `paygate serve`'s outbox and notifier settings: its defaults, or what
/// the environment's `PAYGATE_*` variables set.
#[derive(clap::Parser)]
struct ServeDelivery {
    #[command(flatten)]
    outbox: paygate::config::OutboxSettings,
    #[command(flatten)]
    notifier: paygate::config::NotifierSettings,
}

/// Runs the outbox and the notifier as `serve` does (the tests' settings
/// have 16 delivery slots, a 200 ms poll and retries 50 ms apart), keeping
/// the tests' private broker names and allowing loopback callbacks.
pub fn deliver_as_serve(config: &mut paygate::Config) {
    use clap::Parser;
    let serve = ServeDelivery::parse_from(["bench"]);
    config.outbox = paygate::config::OutboxSettings {
        namespace: std::mem::take(&mut config.outbox.namespace),
        queue_expires: config.outbox.queue_expires,
        ..serve.outbox
    };
    config.notifier = paygate::config::NotifierSettings {
        allow_private_callbacks: true,
        ..serve.notifier
    };
}

/// A merchant's callback endpoint on loopback, served on the runtime this
/// is called on: answers every notification 200 at once and counts them.
/// Its URL.
pub async fn merchant_endpoint(received: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let url = format!("http://{}/notifications", listener.local_addr().unwrap());
    let router = axum::Router::new().route(
        "/notifications",
        axum::routing::post(move || {
            received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::future::ready("ok")
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}
