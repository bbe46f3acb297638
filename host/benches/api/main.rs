//! Merchant API load benchmark: `POST /api/v1/payments` end to end (rate-limit
//! policy plugin, the `sandbox` adapter plugin, the in-process sandbox
//! provider over loopback HTTP, PostgreSQL, Redis) and
//! `GET /api/v1/payments/{id}/show`, under concurrent clients, and
//! `POST /api/v1/payments/{id}/refunds` on finished payments, each beside
//! the ceiling `pgbench` reaches running the same SQL. The create's and the
//! show's ceilings run right before and right after their phase, and the
//! phase is set against the mean of the two, so a shared machine's drift
//! over the run moves both alike. Beside each phase's CPU, what PostgreSQL
//! did per request (commits, rows, WAL and its flushes), and the same per
//! pgbench transaction.
//! Run with `scripts/bench-api` (which starts the services and builds the
//! plugins first).
//!
//! Everything runs in this process on three tokio runtimes, so the CPU each
//! part burns can be told apart by thread name: the host (`paygate` threads,
//! as `paygate serve` would run it), the sandbox provider (`sandbox`, one
//! thread) and the load generator (`loadgen`). PostgreSQL and Redis are the
//! machine's own servers. The load generator writes each request as prepared
//! bytes on a keep-alive connection of its own (`wire.rs`), as `wrk` does, so
//! it takes as little as it can of the cores the host runs on. The host's RSS is this process's `VmRSS`, so it
//! includes the load generator and the sandbox provider.
//!
//! Settings (environment): `BENCH_SECONDS` (measured seconds per phase,
//! default 10, after a 2 s warm-up), `BENCH_SWEEP_SECONDS` (per sweep level,
//! default 3, after a 1 s warm-up), `BENCH_SWEEP` (client counts of the
//! sweep, default `1,2,4,8,16,32,64,128`), `BENCH_SWEEP_SHOW` (`on`, or `off`
//! to sweep only the create path), `BENCH_CLIENTS` (default 32),
//! `BENCH_REFUND_CLIENTS` (default 16), `BENCH_REFUND_PAYMENTS` (finished
//! payments the refunds go round, default 2000; 0 skips the refund phase),
//! `BENCH_DB_POOL_SIZE` (default 32, as `paygate serve`),
//! `BENCH_CLIENT_THREADS` (load generator threads, default 1),
//! `BENCH_RATE_LIMIT` (`on`, or `off` to run without the rate-limit policy
//! and isolate its cost), `BENCH_PG_HOST` (where the host and pgbench reach
//! PostgreSQL: an address, or a Unix socket's directory such as
//! `/var/run/postgresql`; default 127.0.0.1), `BENCH_PG_CPUS` (CPUs such as
//! `0` or `0-1` that PostgreSQL then has to itself, everything else of the
//! run being pinned to the others: pin.rs; unset by default), `RUST_LOG`
//! (default `warn`).
//!
//! Prints Markdown tables, and writes their figures as JSON to the file
//! `BENCH_JSON` names when it is set (scripts/report assembles
//! docs/BENCHMARKS.md from it); docs/BENCHMARKS.md holds the recorded figures.

#[path = "../common/mod.rs"]
mod common;
mod cpu;
mod load;
mod pgbench;
mod pgstat;
mod pin;
mod report;
mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use paygate::BatchStage;
use paygate::config::{CircuitSettings, DatabaseUrls};
use paygate::{App, Config};
use paygate_demo::sandbox::SandboxArgs;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use cpu::*;
use load::*;
use pgbench::*;
use pgstat::*;
use report::*;
use wire::*;

/// The PostgreSQL server's port and user, as the tests reach it.
const PG_PORT: &str = "5432";
const PG_USER: &str = "postgres";

/// Where the host and pgbench reach PostgreSQL: `BENCH_PG_HOST`, an address
/// or a Unix socket's directory (`/var/run/postgresql`), 127.0.0.1 unless set.
fn pg_host() -> String {
    std::env::var("BENCH_PG_HOST").unwrap_or_else(|_| "127.0.0.1".into())
}

/// The URL of database `db` on [`pg_host`].
fn pg_url(db: &str) -> String {
    let host = pg_host();
    if host.starts_with('/') {
        format!("postgres://{PG_USER}@localhost:{PG_PORT}/{db}?host={host}")
    } else {
        format!("postgres://{PG_USER}@{host}:{PG_PORT}/{db}")
    }
}

/// The host's databases of this benchmark, dropped at start and at the end.
const BENCH_DATABASES: [&str; 4] = [
    "paygate_bench_payments",
    "paygate_bench_merchants",
    "paygate_bench_providers",
    "paygate_bench_logs",
];
/// The scratch database of the pgbench ceiling.
const PGBENCH_DATABASE: &str = "paygate_bench_pgbench";

/// The sandbox provider keeps at most this many payments in memory
/// (host/src/sandbox/store.rs); it is restarted empty before each POST phase.
const SANDBOX_CAPACITY: usize = 100_000;

struct Settings {
    seconds: f64,
    sweep_seconds: f64,
    warmup: Duration,
    sweep_warmup: Duration,
    clients: usize,
    sweep: Vec<usize>,
    sweep_show: bool,
    refund_clients: usize,
    refund_payments: usize,
    db_pool_size: u32,
    client_threads: usize,
    rate_limit: bool,
    /// `BENCH_PG_CPUS`: the CPUs PostgreSQL runs on alone (pin.rs).
    pg_cpus: Option<std::collections::BTreeSet<usize>>,
}

/// `on` (the default) or `off`.
fn env_switch(name: &str) -> bool {
    match std::env::var(name).as_deref() {
        Ok("off") => false,
        Ok("on") | Err(_) => true,
        Ok(other) => panic!("{name}={other:?}: use on or off"),
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Self {
        Self {
            seconds: env_or("BENCH_SECONDS", 10.0),
            sweep_seconds: env_or("BENCH_SWEEP_SECONDS", 3.0),
            warmup: Duration::from_secs(2),
            sweep_warmup: Duration::from_secs(1),
            clients: env_or("BENCH_CLIENTS", 32),
            sweep: std::env::var("BENCH_SWEEP")
                .unwrap_or_else(|_| "1,2,4,8,16,32,64,128".into())
                .split(',')
                .map(|n| {
                    n.trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("BENCH_SWEEP: {n:?} is not a client count"))
                })
                .collect(),
            sweep_show: env_switch("BENCH_SWEEP_SHOW"),
            refund_clients: env_or("BENCH_REFUND_CLIENTS", 16),
            refund_payments: env_or("BENCH_REFUND_PAYMENTS", 2000),
            db_pool_size: env_or("BENCH_DB_POOL_SIZE", 32),
            client_threads: env_or("BENCH_CLIENT_THREADS", 1),
            rate_limit: env_switch("BENCH_RATE_LIMIT"),
            pg_cpus: std::env::var("BENCH_PG_CPUS")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| pin::parse_cpus(&v).unwrap_or_else(|e| panic!("BENCH_PG_CPUS: {e}"))),
        }
    }
}

#[global_allocator]
static ALLOCATOR: paygate::Allocator = paygate::Allocator;

fn main() {
    if std::env::var_os("RUST_LOG").is_none() {
        // SAFETY: set before any other thread exists.
        unsafe { std::env::set_var("RUST_LOG", "warn") };
    }
    paygate::telemetry::init();
    let settings = Settings::from_env();
    let host = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("paygate")
        .build()
        .expect("host runtime");
    let loadgen = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.client_threads.max(1))
        .enable_all()
        .thread_name("loadgen")
        .build()
        .expect("load generator runtime");
    let sandbox = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("sandbox")
        .build()
        .expect("sandbox runtime");
    host.block_on(run(
        settings,
        loadgen.handle().clone(),
        sandbox.handle().clone(),
    ));
    loadgen.shutdown_background();
    sandbox.shutdown_background();
    host.shutdown_timeout(Duration::from_secs(5));
}

fn wasm(name: &str) -> Vec<u8> {
    let path = format!("{}/../plugins/dist/{name}.wasm", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}; run plugins/build.sh first"))
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn progress(what: &str) {
    eprintln!("[bench-api] {what}");
}

/// The calls the host's batchers have made so far, as (calls, asks): the
/// takes' and the acquires' Redis script calls, then the payment reads'
/// statements.
fn batches(metrics: &paygate::Metrics) -> [(u64, u64); 3] {
    [
        &metrics.counter_takes,
        &metrics.circuit_acquires,
        &metrics.payment_reads,
    ]
    .map(|b| (b.calls.get(), b.asks.get()))
}

/// How many asks each call carried since `before`.
fn report_batches(phase: &str, metrics: &paygate::Metrics, before: [(u64, u64); 3]) {
    let now = batches(metrics);
    let [takes, acquires, reads] = [0, 1, 2].map(|i| {
        let (calls, asks) = (now[i].0 - before[i].0, now[i].1 - before[i].1);
        format!(
            "{asks} in {calls} calls ({:.2}/call)",
            asks as f64 / calls.max(1) as f64
        )
    });
    progress(&format!(
        "batches during {phase}: Redis takes {takes}, circuit acquires {acquires}; payment reads {reads}"
    ));
}

async fn run(settings: Settings, loadgen: Handle, sandbox_rt: Handle) {
    // Before the first connection, so every backend is forked pinned.
    let pinned = settings.pg_cpus.clone().map(pin::Pinned::apply);
    if let Some(p) = &pinned {
        progress(&p.describe());
    }
    let load_at_start = loadavg();
    let started_at = chrono::Utc::now();
    let server_info = postgres_info().await;
    drop_databases(&BENCH_DATABASES).await;

    // The sandbox provider's address must be known before the host loads
    // the adapter's spec, as in tests/api/app.rs.
    let listener = bind_on(&sandbox_rt, "127.0.0.1:0".parse().unwrap()).await;
    let sandbox_addr = listener.local_addr().unwrap();
    let sandbox_url = format!("http://{sandbox_addr}");
    let plugin_dir = tempfile::tempdir().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let provider_spec =
        format!("allowed_hosts = [\"{sandbox_addr}\"]\n[config]\nbase-url = \"{sandbox_url}\"\n");
    let mut plugins = vec![("sandbox", "sandbox_adapter", provider_spec.as_str())];
    if settings.rate_limit {
        plugins.push(("rate-limit", "token_bucket", common::RATE_LIMIT_SPEC));
    }
    for (name, component, spec) in plugins {
        std::fs::write(
            plugin_dir.path().join(format!("{name}.wasm")),
            wasm(component),
        )
        .unwrap();
        std::fs::write(plugin_dir.path().join(format!("{name}.toml")), spec).unwrap();
    }

    let databases = DatabaseUrls {
        payments: pg_url(BENCH_DATABASES[0]),
        merchants: pg_url(BENCH_DATABASES[1]),
        providers: pg_url(BENCH_DATABASES[2]),
        logs: pg_url(BENCH_DATABASES[3]),
    };
    let mut config = Config::for_tests(
        databases,
        plugin_dir.path().to_owned(),
        cache_dir.path().to_owned(),
        format!("paygate-bench-{}:", uuid::Uuid::new_v4()),
    );
    // What `paygate serve` runs with by default, not the tests' small sizes.
    config.db_pool_size = settings.db_pool_size;
    config.plugin_max_concurrent_calls = 1000;
    if !settings.rate_limit {
        config.rate_limit.plugin = String::new();
    }
    common::deliver_as_serve(&mut config);
    config.circuit = CircuitSettings {
        failure_threshold: 5,
        cooldown: Duration::from_secs(30),
        on_redis_down: paygate::config::RedisDownPolicy::Open,
    };
    progress("building the host (creates and migrates the paygate_bench_* databases)");
    // App::build creates and migrates the databases through
    // paygate::db::Databases::connect_and_migrate.
    let app = App::build(&config).await.expect("building the host");
    let app_addr = app.local_addr();
    let (services, dbs) = (app.services.clone(), app.dbs.clone());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run(shutdown.clone()));

    let mut sandbox = SandboxProvider {
        rt: sandbox_rt,
        addr: sandbox_addr,
        args: SandboxArgs::signing_as(
            &config,
            sandbox_addr,
            sandbox_url.clone(),
            format!("http://{app_addr}"),
        ),
        running: None,
    };
    sandbox.serve(listener);

    for plugin in ["sandbox", "rate-limit"] {
        if plugin == "rate-limit" && !settings.rate_limit {
            continue;
        }
        assert!(
            services.payments.plugins.get(plugin).is_some(),
            "plugin {plugin} did not load: {:?}",
            services.payments.plugins.list()
        );
    }
    let merchant = common::alias_and_merchant(&services, "sandbox", 1_000_000_000).await;
    // Refunds are notified: the merchant's endpoint answers at once, so
    // each refund pays for one delivery, as with a real merchant, rather
    // than for a notification retried for want of a URL.
    let notified = Arc::new(AtomicUsize::new(0));
    let callback = (sandbox.rt)
        .spawn(common::merchant_endpoint(notified.clone()))
        .await
        .expect("the merchant endpoint starts");
    services
        .merchants
        .store
        .set_callback_url(merchant.merchant_id, &callback)
        .await
        .expect("setting the merchant's callback URL");

    let target = Arc::new(Target {
        addr: app_addr,
        write_key: merchant.api_key.clone(),
        read_key: merchant.read_api_key.clone(),
        subscription_id: merchant.subscription_id.get(),
        next_order: AtomicI64::new(1),
    });
    smoke_test(&loadgen, &target).await;
    // The pgbench database is ready before the first phase, so each phase
    // can be bracketed by its ceiling (the host idles meanwhile).
    let mut ceilings = Ceilings::prepare(&settings).await;
    let mut baselines = Vec::new();

    let mut phases = Vec::new();
    let measure = Duration::from_secs_f64(settings.seconds);
    sandbox.restart().await;
    if let Some(c) = &ceilings {
        baselines.extend(c.create(true, Bracket::Before).await);
    }
    // Announced once its ceiling has run: `scripts/profile-api` starts
    // recording a few seconds after this line.
    progress(&format!(
        "POST /api/v1/payments, {} clients, {:?} warm-up + {measure:?}",
        settings.clients, settings.warmup
    ));
    let metrics = services.payments.metrics.clone();
    let before = batches(&metrics);
    let create = run_phase(
        &loadgen,
        &target,
        Kind::Create,
        settings.clients,
        settings.warmup,
        measure,
        Arc::new(Vec::new()),
    )
    .await;
    report_batches("creates", &metrics, before);
    if let Some(c) = &ceilings {
        baselines.extend(c.create(true, Bracket::After).await);
    }
    let created = Arc::new(create.created.clone());
    phases.push(create);

    if created.is_empty() {
        println!("No payment was created, so `GET …/show` was not measured.");
    } else {
        if let Some(c) = &mut ceilings {
            baselines.extend(c.show(Bracket::Before).await);
        }
        progress(&format!(
            "GET /api/v1/payments/{{id}}/show over {} payments, {} clients",
            created.len(),
            settings.clients
        ));
        let before = batches(&metrics);
        phases.push(
            run_phase(
                &loadgen,
                &target,
                Kind::Show,
                settings.clients,
                settings.warmup,
                measure,
                created.clone(),
            )
            .await,
        );
        report_batches("shows", &metrics, before);
        if let Some(c) = &mut ceilings {
            baselines.extend(c.show(Bracket::After).await);
        }
    }

    // Refunds, before the sweep restarts the sandbox provider, which holds
    // the payments the create phase opened.
    let refundable = created.len().min(settings.refund_payments);
    if refundable > 0 {
        progress(&format!(
            "paying {refundable} payments at the sandbox provider, then reconciling them"
        ));
        let before = notified.load(Ordering::Relaxed);
        let finished = Arc::new(finish(&services, &dbs, &created[..refundable]).await);
        // Their `payment.finished` notifications are delivered before the
        // refunds are measured, which would otherwise pay for them.
        delivered(&notified, before + finished.len()).await;
        progress(&format!(
            "POST /api/v1/payments/{{id}}/refunds over {} finished payments, {} clients",
            finished.len(),
            settings.refund_clients
        ));
        let batches = &services.payments.metrics.outbox.batches;
        let stages = [BatchStage::Publish, BatchStage::Claim, BatchStage::Settle];
        let at_start = stages.map(|stage| batches.totals(stage));
        phases.push(
            run_phase(
                &loadgen,
                &target,
                Kind::Refund,
                settings.refund_clients,
                settings.warmup,
                measure,
                finished,
            )
            .await,
        );
        // What each refund's notification cost the database: rows per
        // statement of each batched stage, over the phase and its warm-up.
        let mean: Vec<String> = stages
            .iter()
            .zip(at_start)
            .map(|(&stage, (statements, rows))| {
                let (s, r) = batches.totals(stage);
                let (s, r) = (s - statements, r - rows);
                format!(
                    "{stage:?} {r} rows in {s} statements ({:.2}/statement)",
                    r as f64 / s.max(1) as f64
                )
            })
            .collect();
        progress(&format!(
            "notification batches during refunds: {}",
            mean.join(", ")
        ));
    }

    let mut sweep = Vec::new();
    for &clients in &settings.sweep {
        progress(&format!("sweep: POST at {clients} clients"));
        sandbox.restart().await;
        sweep.push(
            run_phase(
                &loadgen,
                &target,
                Kind::Create,
                clients,
                settings.sweep_warmup,
                Duration::from_secs_f64(settings.sweep_seconds),
                Arc::new(Vec::new()),
            )
            .await,
        );
    }
    // The same levels reading: cheap (no provider, no commit), and the
    // plot shows both paths.
    let mut show_sweep = Vec::new();
    if settings.sweep_show && !created.is_empty() {
        for &clients in &settings.sweep {
            progress(&format!("sweep: GET show at {clients} clients"));
            show_sweep.push(
                run_phase(
                    &loadgen,
                    &target,
                    Kind::Show,
                    clients,
                    settings.sweep_warmup,
                    Duration::from_secs_f64(settings.sweep_seconds),
                    created.clone(),
                )
                .await,
            );
        }
    }
    let rss_peak_kib = proc_status_kib("VmHWM");

    progress("stopping the host, then the ceilings that bracket no phase");
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    sandbox.stop().await;
    for pool in [&dbs.payments, &dbs.merchants, &dbs.providers, &dbs.logs] {
        pool.close().await;
    }
    drop(services);
    drop_databases(&BENCH_DATABASES).await;

    if let Some(mut c) = ceilings {
        baselines.extend(c.create(false, Bracket::Alone).await);
        baselines.extend(c.refund().await);
        c.finish().await;
    }
    let load_at_end = loadavg();

    let r = Report {
        settings: &settings,
        started_at,
        server_info,
        load_at_start,
        load_at_end,
        phases: &phases,
        sweep: &sweep,
        show_sweep: &show_sweep,
        baselines: &baselines,
        rss_peak_kib,
        notifications_received: notified.load(Ordering::Relaxed),
        pinned: pinned.as_ref(),
    };
    report(&r);
    common::write_json(&report_json(&r));
}

/// Makes `ids` refundable the way a payment gets there in production: each
/// is paid on the sandbox provider's page, with its webhook lost
/// (`?webhook=skip`, as the bench binds no verifier), then one round of
/// reconciliation (what every host's background job runs) asks the
/// provider about each and finishes it. The other pending payments are put
/// out of the round's way. Answers the ids, all finished.
async fn finish(
    services: &paygate::http::AppState,
    dbs: &paygate::db::Databases,
    ids: &[i64],
) -> Vec<i64> {
    use futures_util::StreamExt;
    let client = &reqwest::Client::builder().no_proxy().build().unwrap();
    let links: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, payment_url FROM payments WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&dbs.payments)
            .await
            .expect("reading the payment links");
    let paid = futures_util::stream::iter(links)
        .map(|(id, url)| async move {
            let clicked = client.post(format!("{url}/pay?webhook=skip")).send().await;
            clicked
                .is_ok_and(|c| c.status().is_redirection() || c.status().is_success())
                .then_some(id)
        })
        .buffer_unordered(32)
        .filter_map(std::future::ready)
        .collect::<Vec<i64>>()
        .await;
    assert_eq!(
        paid.len(),
        ids.len(),
        "every payment is paid at the sandbox"
    );
    sqlx::query(
        "UPDATE payments SET reconcile_at = now() + interval '1 day'
         WHERE status = 'PAYMENT_PENDING' AND NOT id = ANY($1)",
    )
    .bind(&paid)
    .execute(&dbs.payments)
    .await
    .expect("putting the other payments out of the way");
    let round = paygate::payments::reconcile::reconcile(&services.payments, Duration::ZERO)
        .await
        .expect("a reconciliation round");
    assert_eq!(round.settled, paid.len(), "{round:?}");
    paid
}

/// Waits (up to two minutes) until the merchant endpoint has been sent
/// `count` notifications in all.
async fn delivered(received: &AtomicUsize, count: usize) {
    let started = Instant::now();
    while received.load(Ordering::Relaxed) < count {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{} of {count} notifications delivered after two minutes",
            received.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One request the host must answer 200 before anything is measured.
async fn smoke_test(loadgen: &Handle, target: &Arc<Target>) {
    let t = target.clone();
    let (status, body) = loadgen
        .spawn(async move {
            t.send(
                &mut None,
                Kind::Create,
                &[],
                &AtomicUsize::new(0),
                &mut Vec::new(),
            )
            .await
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the first POST did not get an answer: {e}"));
    assert_eq!(
        status,
        200,
        "the first POST failed: {}",
        String::from_utf8_lossy(&body)
    );
}

// ---------------------------------------------------------------------------
// The sandbox provider, on its own runtime.

/// Binds `addr` on runtime `rt`, so that runtime's reactor owns the socket.
/// Retries a little: a restarted sandbox takes its old port again.
async fn bind_on(rt: &Handle, addr: SocketAddr) -> TcpListener {
    let mut attempts = 0;
    loop {
        match rt.spawn(TcpListener::bind(addr)).await.unwrap() {
            Ok(listener) => return listener,
            Err(e) if attempts < 50 => {
                attempts += 1;
                if attempts == 1 {
                    progress(&format!("binding {addr}: {e}; retrying"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("binding the sandbox provider on {addr}: {e}"),
        }
    }
}
