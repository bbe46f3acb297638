//! Reconciliation benchmark (issue 15): payments whose webhooks were lost,
//! found out by asking their provider.
//!
//! 1. Backlog: `BENCH_BACKLOG` (10,000) payments are created through the
//!    API and paid on the in-process sandbox provider's page with their
//!    webhooks lost (`?webhook=skip`); then one round of reconciliation
//!    (`paygate::payments::reconcile::reconcile`, what every host's
//!    background job runs) asks the `sandbox` adapter about each and
//!    settles it. The figure is the round's time, start to end.
//! 2. Creates beside it, same run: `BENCH_CLIENTS` (16) clients create
//!    payments for `BENCH_SECONDS` (10) with nothing else running, then
//!    again for as long as a round reconciles a second backlog of the same
//!    size. The figures are creates per second in both, and their ratio.
//!    With the clients' requests in flight the round runs at the host's
//!    busy pace (`PAYGATE_RECONCILE_BUSY_RATE`, read as `serve` reads it), so it
//!    takes longer than alone. Then the clients create alone again for
//!    `BENCH_SECONDS`, on the database the round left (many more payments,
//!    and on a server without autovacuum their dead rows): the ratio is to
//!    the mean of the two rates alone.
//!
//! Everything runs in this process: the host as `paygate serve` would (its
//! own background jobs, outbox and notifier settings included), the sandbox
//! provider, the clients, and the merchant's endpoint, which answers each
//! settled payment's notification 200 at once.
//! Run with `scripts/bench-reconcile`; `RUST_LOG` (default `warn`).
//! `BENCH_JSON` names a file for the same figures as JSON.

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use paygate::payments::reconcile::reconcile;
use paygate::{App, Config};
use paygate_demo::sandbox::SandboxArgs;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use common::{fresh_databases, setting, write_json};

const PREFIX: &str = "paygate_bench_reconcile";

/// The API as one merchant sees it.
struct Api {
    client: reqwest::Client,
    base: String,
    key: String,
    subscription_id: i64,
    next_order: AtomicU64,
}

impl Api {
    /// Creates a payment; answers its id and payment URL.
    async fn create(&self) -> Option<(i64, String)> {
        let order = self.next_order.fetch_add(1, Ordering::Relaxed);
        let body = json!({"order_id": order, "amount": 1, "price": "10.00", "alias": "sandbox",
                          "subscription_id": self.subscription_id});
        let answer = self
            .client
            .post(format!("{}/api/v1/payments", self.base))
            .header("x-api-key", &self.key)
            .json(&body)
            .send()
            .await
            .ok()?;
        if !answer.status().is_success() {
            return None;
        }
        let created: Value = answer.json().await.ok()?;
        Some((
            created["payment_id"].as_i64()?,
            created["payment_url"].as_str()?.to_owned(),
        ))
    }
}

/// `n` payments paid at the sandbox whose webhooks were lost.
async fn backlog(api: &Api, n: usize) -> Vec<i64> {
    let paid: Vec<Option<i64>> = futures_util::stream::iter(0..n)
        .map(|_| async {
            let (id, url) = api.create().await?;
            let clicked = api
                .client
                .post(format!("{url}/pay?webhook=skip"))
                .send()
                .await
                .ok()?;
            (clicked.status().is_success() || clicked.status().is_redirection()).then_some(id)
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let ids: Vec<i64> = paid.into_iter().flatten().collect();
    assert_eq!(ids.len(), n, "every backlog payment is created and paid");
    ids
}

/// Creates from `clients` clients until `stop`; answers how many succeeded
/// and how many failed.
async fn creates_until(api: Arc<Api>, clients: usize, stop: Arc<AtomicBool>) -> (u64, u64) {
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (api, stop) = (api.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    match api.create().await {
                        Some(_) => ok += 1,
                        None => failed += 1,
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let mut total = (0, 0);
    for task in tasks {
        let (ok, failed) = task.await.unwrap();
        total = (total.0 + ok, total.1 + failed);
    }
    total
}

/// Marks a phase's start on stderr with the Unix time, so that samples
/// taken outside the process (CPU per service, `pg_stat_activity`) can be
/// cut by phase.
fn phase(name: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    eprintln!("[bench] {:.2} {name}", now.as_secs_f64());
}

/// Creates from `clients` clients for `seconds`.
async fn creates_for(api: Arc<Api>, clients: usize, seconds: u64) -> (u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(creates_until(api, clients, stop.clone()));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap()
}

/// Waits until the merchant's endpoint has received `n` notifications.
async fn delivered(notified: &AtomicUsize, n: usize) {
    let started = Instant::now();
    while notified.load(Ordering::Relaxed) < n {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{} of {n} notifications delivered",
            notified.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn finished(pool: &sqlx::PgPool, ids: &[i64]) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM payments WHERE id = ANY($1) AND status = 'PAYMENT_FINISHED'",
    )
    .bind(ids)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    paygate::telemetry::init_with_default("warn");
    let n = setting("BENCH_BACKLOG", 10_000) as usize;
    let clients = setting("BENCH_CLIENTS", 16) as usize;
    let seconds = setting("BENCH_SECONDS", 10);
    let urls = fresh_databases(PREFIX).await;

    let sandbox_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox_addr = sandbox_listener.local_addr().unwrap();
    let sandbox_url = format!("http://{sandbox_addr}");
    let plugin_dir = tempfile::tempdir().unwrap();
    let provider_spec =
        format!("allowed_hosts = [\"{sandbox_addr}\"]\n[config]\nbase-url = \"{sandbox_url}\"\n");
    for (name, component, spec) in [
        ("sandbox", "sandbox_adapter", provider_spec.as_str()),
        ("rate-limit", "token_bucket", common::RATE_LIMIT_SPEC),
    ] {
        let wasm = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../plugins/dist")
            .join(format!("{component}.wasm"));
        std::fs::copy(&wasm, plugin_dir.path().join(format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("{}: {e}; run plugins/build.sh", wasm.display()));
        std::fs::write(plugin_dir.path().join(format!("{name}.toml")), spec).unwrap();
    }
    let mut config = Config::for_tests(
        urls,
        plugin_dir.path().to_owned(),
        plugin_dir.path().join("cache"),
        format!("paygate-bench-reconcile-{}:", uuid::Uuid::new_v4()),
    );
    // As `paygate serve` runs by default.
    config.db_pool_size = 32;
    config.plugin_max_concurrent_calls = 1000;
    common::deliver_as_serve(&mut config);
    // The busy pace, as `serve` reads it: its default unless set.
    let pace = setting(
        "PAYGATE_RECONCILE_BUSY_RATE",
        config.reconcile_busy_rate.into(),
    );
    config.reconcile_busy_rate = u32::try_from(pace).unwrap_or(u32::MAX);
    let app = App::build(&config).await.expect("host starts");
    let base = format!("http://{}", app.local_addr());
    let (services, dbs) = (app.services.clone(), app.dbs.clone());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let mut sandbox_args =
        SandboxArgs::signing_as(&config, sandbox_addr, sandbox_url, base.clone());
    // The clients' creates beside a round paced for them run for minutes.
    sandbox_args.max_payments = 10_000_000;
    tokio::spawn(paygate_demo::sandbox::serve(
        sandbox_listener,
        sandbox_args,
        shutdown.clone(),
    ));
    let merchant = common::alias_and_merchant(&services, "sandbox", 1_000_000_000).await;
    // Each settled payment is notified to an endpoint that answers at once,
    // as a real merchant's does: one delivery each, not a notification
    // retried for want of a URL.
    let notified = Arc::new(AtomicUsize::new(0));
    let callback = common::merchant_endpoint(notified.clone()).await;
    (services.merchants.store)
        .set_callback_url(merchant.merchant_id, &callback)
        .await
        .expect("setting the merchant's callback URL");
    let api = Arc::new(Api {
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        base,
        key: merchant.api_key.clone(),
        subscription_id: merchant.subscription_id.get(),
        next_order: AtomicU64::new(1),
    });
    let gw = services.payments.clone();

    // 1. A backlog, reconciled alone.
    phase("backlog");
    let ids = backlog(&api, n).await;
    phase("round alone");
    let started = Instant::now();
    let round = reconcile(&gw, Duration::ZERO).await.unwrap();
    let alone = started.elapsed();
    assert_eq!(round.settled, n, "{round:?}");
    assert_eq!(finished(&dbs.payments, &ids).await, n as i64);

    // The round's notifications are delivered before the baseline, so that
    // their work is not counted in the creates' time alone.
    phase("draining notifications");
    delivered(&notified, n).await;

    // 2. Creates alone, then while a second backlog is reconciled, then
    // alone again: the round beside them lasts minutes, and the database
    // it leaves holds many more payments than the one it began with.
    phase("creates alone");
    let (base_ok, base_failed) = creates_for(api.clone(), clients, seconds).await;
    let base_rate = base_ok as f64 / seconds as f64;

    // The baseline's payments were never paid: out of the next round's way,
    // so it asks about exactly the second backlog.
    sqlx::query("UPDATE payments SET status = 'PAYMENT_FAILED' WHERE status = 'PAYMENT_PENDING'")
        .execute(&dbs.payments)
        .await
        .unwrap();
    phase("second backlog");
    let second = backlog(&api, n).await;
    phase("round beside creates");
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(creates_until(api.clone(), clients, stop.clone()));
    let started = Instant::now();
    // Payments the clients create meanwhile are younger than the round and
    // not asked about.
    let beside = reconcile(&gw, Duration::ZERO).await.unwrap();
    let busy = started.elapsed();
    phase("end");
    stop.store(true, Ordering::Relaxed);
    let (busy_ok, busy_failed) = load.await.unwrap();
    let busy_rate = busy_ok as f64 / busy.as_secs_f64();
    assert_eq!(beside.settled, n, "{beside:?}");
    assert_eq!(finished(&dbs.payments, &second).await, n as i64);
    delivered(&notified, 2 * n).await;
    phase("creates alone, after");
    let (after_ok, after_failed) = creates_for(api.clone(), clients, seconds).await;
    let after_rate = after_ok as f64 / seconds as f64;
    phase("done");

    // Against the creates alone before and after, as the round ran from
    // the one database to the other.
    let alone_rate = (base_rate + after_rate) / 2.0;
    let ratio = busy_rate / alone_rate;
    println!("## Reconciliation of lost webhooks (sandbox provider, loopback)\n");
    println!("| backlog | round alone | rate | round beside {clients} creating clients |");
    println!("|---|---|---|---|");
    println!(
        "| {n} | {:.1} s | {:.0}/s | {:.1} s |\n",
        alone.as_secs_f64(),
        n as f64 / alone.as_secs_f64(),
        busy.as_secs_f64()
    );
    println!(
        "| creates, {clients} clients | alone before ({seconds} s) | alone after ({seconds} s) \
         | during the round | ratio to alone (mean) | errors |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| | {base_rate:.0}/s | {after_rate:.0}/s | {busy_rate:.0}/s | {:.0}% | {} |",
        ratio * 100.0,
        base_failed + busy_failed + after_failed
    );
    println!(
        "\nWhile the clients' requests were in flight the round asked at most {} questions a \
         second (`PAYGATE_RECONCILE_BUSY_RATE`; 0: no limit). The merchant's endpoint received \
         {} notifications over the run.",
        config.reconcile_busy_rate,
        notified.load(Ordering::Relaxed)
    );
    write_json(&json!({
        "backlog": n,
        "round_alone_s": alone.as_secs_f64(),
        "round_beside_creates_s": busy.as_secs_f64(),
        "clients": clients,
        "creates_alone_per_s": alone_rate,
        "creates_alone_before_per_s": base_rate,
        "creates_alone_after_per_s": after_rate,
        "creates_during_round_per_s": busy_rate,
        "create_ratio": ratio,
        "create_errors": base_failed + busy_failed + after_failed,
        "notifications_received": notified.load(Ordering::Relaxed),
        "reconcile_busy_rate": config.reconcile_busy_rate,
    }));
    shutdown.cancel();
    let _ = server.await;
}
