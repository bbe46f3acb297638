//! Merchant API load benchmark: `POST /api/v1/payments` end to end (rate-limit
//! policy plugin, the `sandbox` adapter plugin, the in-process sandbox
//! provider over loopback HTTP, PostgreSQL, Redis) and
//! `GET /api/v1/payments/{id}/show`, under concurrent clients, beside the
//! ceiling `pgbench` reaches running the SQL of one payment creation.
//! Run with `scripts/bench-api` (which starts the services and builds the
//! plugins first).
//!
//! Everything runs in this process on three tokio runtimes, so the CPU each
//! part burns can be told apart by thread name: the host (`paygate` threads,
//! as `paygate serve` would run it), the sandbox provider (`sandbox`, one
//! thread) and the load generator (`loadgen`). PostgreSQL and Redis are the
//! machine's own servers. The host's RSS is this process's `VmRSS`, so it
//! includes the load generator and the sandbox provider.
//!
//! Settings (environment): `BENCH_SECONDS` (measured seconds per phase,
//! default 10, after a 2 s warm-up), `BENCH_SWEEP_SECONDS` (per sweep level,
//! default 3, after a 1 s warm-up), `BENCH_SWEEP` (client counts of the
//! sweep, default `1,2,4,8,16,32,64,128`), `BENCH_SWEEP_SHOW` (`on`, or `off`
//! to sweep only the create path), `BENCH_CLIENTS` (default 32),
//! `BENCH_DB_POOL_SIZE` (default 32, as `paygate serve`),
//! `BENCH_CLIENT_THREADS` (load generator threads, default 1),
//! `BENCH_RATE_LIMIT` (`on`, or `off` to run without the rate-limit policy
//! and isolate its cost), `RUST_LOG` (default `warn`).
//!
//! Prints Markdown tables, and writes their figures as JSON to the file
//! `BENCH_JSON` names when it is set (scripts/report assembles
//! docs/BENCHMARKS.md from it); docs/BENCHMARKS.md holds the recorded figures.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use paygate::config::{CircuitSettings, DatabaseUrls};
use paygate::merchants::NewMerchant;
use paygate::providers::AliasBinding;
use paygate::{App, Config};
use paygate_demo::sandbox::SandboxArgs;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The PostgreSQL server, as the tests reach it.
const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const PG_HOST: &str = "127.0.0.1";
const PG_PORT: &str = "5432";
const PG_USER: &str = "postgres";

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

/// Rate limits no run can reach: every request takes the policy's full
/// path (both buckets) and is allowed.
const RATE_LIMIT_SPEC: &str = "[config]\nip-rate = \"1000000\"\nip-burst = \"1000000\"\nkey-rate = \"1000000\"\nkey-burst = \"1000000\"\n";

struct Settings {
    seconds: f64,
    sweep_seconds: f64,
    warmup: Duration,
    sweep_warmup: Duration,
    clients: usize,
    sweep: Vec<usize>,
    sweep_show: bool,
    db_pool_size: u32,
    client_threads: usize,
    rate_limit: bool,
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
            db_pool_size: env_or("BENCH_DB_POOL_SIZE", 32),
            client_threads: env_or("BENCH_CLIENT_THREADS", 1),
            rate_limit: env_switch("BENCH_RATE_LIMIT"),
        }
    }
}

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

async fn run(settings: Settings, loadgen: Handle, sandbox_rt: Handle) {
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
        plugins.push(("rate-limit", "token_bucket", RATE_LIMIT_SPEC));
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
        payments: format!("{PG_SERVER}/{}", BENCH_DATABASES[0]),
        merchants: format!("{PG_SERVER}/{}", BENCH_DATABASES[1]),
        providers: format!("{PG_SERVER}/{}", BENCH_DATABASES[2]),
        logs: format!("{PG_SERVER}/{}", BENCH_DATABASES[3]),
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
        config.rate_limit_plugin = String::new();
    }
    config.circuit = CircuitSettings {
        failure_threshold: 5,
        cooldown: Duration::from_secs(30),
        on_redis_down: paygate::config::RedisDownPolicy::Open,
    };
    progress("building the host (creates and migrates the paygate_bench_* databases)");
    // App::build creates and migrates the databases through
    // paygate::db::Databases::connect_and_migrate.
    let app = App::build(&config).await.expect("building the host");
    let url = format!("http://{}", app.local_addr());
    let gateway = app.gateway.clone();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run(shutdown.clone()));

    let mut sandbox = SandboxProvider {
        rt: sandbox_rt,
        addr: sandbox_addr,
        args: SandboxArgs {
            listen: sandbox_addr,
            public_url: sandbox_url.clone(),
            gateway_url: url.clone(),
            internal_webhook_secret: config.internal_webhook_secret.clone(),
            stripe_webhook_secret: config.stripe_webhook_secret.clone(),
        },
        running: None,
    };
    sandbox.serve(listener);

    for plugin in ["sandbox", "rate-limit"] {
        if plugin == "rate-limit" && !settings.rate_limit {
            continue;
        }
        assert!(
            gateway.plugins.get(plugin).is_some(),
            "plugin {plugin} did not load: {:?}",
            gateway.plugins.list()
        );
    }
    gateway
        .providers
        .set(&AliasBinding {
            alias: "sandbox".into(),
            provider_plugin: "sandbox".into(),
            verifier_plugin: None,
            available: true,
        })
        .await
        .expect("binding the sandbox alias");
    let merchant = gateway
        .merchants
        .create(&NewMerchant {
            name: "bench merchant".into(),
            callback_url: None,
            tokens: 1_000_000_000,
            currency: "EUR".into(),
            require_signed_writes: false,
        })
        .await
        .expect("creating the merchant");

    let target = Arc::new(Target {
        client: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        base: url,
        write_key: merchant.api_key.clone(),
        read_key: merchant.read_api_key.clone(),
        subscription_id: merchant.subscription_id,
        next_order: AtomicI64::new(1),
    });
    smoke_test(&loadgen, &target).await;

    let mut phases = Vec::new();
    let measure = Duration::from_secs_f64(settings.seconds);
    progress(&format!(
        "POST /api/v1/payments, {} clients, {:?} warm-up + {measure:?}",
        settings.clients, settings.warmup
    ));
    sandbox.restart().await;
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
    let created = Arc::new(create.created.clone());
    phases.push(create);

    progress(&format!(
        "GET /api/v1/payments/{{id}}/show over {} payments, {} clients",
        created.len(),
        settings.clients
    ));
    if created.is_empty() {
        println!("No payment was created, so `GET …/show` was not measured.");
    } else {
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

    progress("stopping the host, then the pgbench ceiling");
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    sandbox.stop().await;
    for pool in [
        &gateway.dbs.payments,
        &gateway.dbs.merchants,
        &gateway.dbs.providers,
        &gateway.dbs.logs,
    ] {
        pool.close().await;
    }
    drop(gateway);
    drop_databases(&BENCH_DATABASES).await;

    let baselines = pgbench_baselines(&settings).await;
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
    };
    report(&r);
    common::write_json(&report_json(&r));
}

/// One request the host must answer 200 before anything is measured.
async fn smoke_test(loadgen: &Handle, target: &Arc<Target>) {
    let t = target.clone();
    let (status, body) = loadgen
        .spawn(async move { t.send(Kind::Create, &[], &AtomicUsize::new(0)).await })
        .await
        .unwrap()
        .expect("the first POST did not get an answer");
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

struct SandboxProvider {
    rt: Handle,
    addr: SocketAddr,
    args: SandboxArgs,
    running: Option<(CancellationToken, JoinHandle<anyhow::Result<()>>)>,
}

impl SandboxProvider {
    fn serve(&mut self, listener: TcpListener) {
        let token = CancellationToken::new();
        let handle = self.rt.spawn(paygate_demo::sandbox::serve(
            listener,
            self.args.clone(),
            token.clone(),
        ));
        self.running = Some((token, handle));
    }

    async fn stop(&mut self) {
        if let Some((token, handle)) = self.running.take() {
            token.cancel();
            match tokio::time::timeout(Duration::from_secs(10), handle).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => panic!("the sandbox provider failed: {e:#}"),
                Ok(Err(e)) => panic!("the sandbox provider panicked: {e}"),
                Err(_) => panic!("the sandbox provider did not stop within 10 s"),
            }
        }
    }

    /// A fresh, empty sandbox on the same address: its memory is capped at
    /// [`SANDBOX_CAPACITY`] payments.
    async fn restart(&mut self) {
        self.stop().await;
        let listener = bind_on(&self.rt, self.addr).await;
        self.serve(listener);
    }
}

// ---------------------------------------------------------------------------
// The load generator.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Create,
    Show,
}

struct Target {
    client: reqwest::Client,
    base: String,
    write_key: String,
    read_key: String,
    subscription_id: i64,
    /// Every create has its own order id.
    next_order: AtomicI64,
}

impl Target {
    /// One request; its status and body, or the transport error.
    async fn send(
        &self,
        kind: Kind,
        ids: &[i64],
        cursor: &AtomicUsize,
    ) -> Result<(u16, bytes::Bytes), reqwest::Error> {
        let request = match kind {
            Kind::Create => {
                let order_id = self.next_order.fetch_add(1, Ordering::Relaxed);
                let body = format!(
                    r#"{{"order_id":{order_id},"amount":1,"price":"10.00","alias":"sandbox","subscription_id":{}}}"#,
                    self.subscription_id
                );
                self.client
                    .post(format!("{}/api/v1/payments", self.base))
                    .header("content-type", "application/json")
                    .header("x-api-key", &self.write_key)
                    .body(body)
            }
            Kind::Show => {
                let id = ids[cursor.fetch_add(1, Ordering::Relaxed) % ids.len()];
                self.client
                    .get(format!("{}/api/v1/payments/{id}/show", self.base))
                    .header("x-api-key", &self.read_key)
            }
        };
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.bytes().await?))
    }
}

/// What one client saw.
#[derive(Default)]
struct Samples {
    latencies_us: Vec<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    created: Vec<i64>,
    last_done: Option<Instant>,
}

impl Samples {
    fn merge(&mut self, other: Samples) {
        self.latencies_us.extend(other.latencies_us);
        self.ok += other.ok;
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
        self.created.extend(other.created);
        self.last_done = self.last_done.max(other.last_done);
    }
}

/// Sends requests back to back until `end`; counts those started at or
/// after `start`. Ids of created payments are kept, warm-up ones too.
async fn client_loop(
    target: Arc<Target>,
    kind: Kind,
    ids: Arc<Vec<i64>>,
    cursor: Arc<AtomicUsize>,
    start: Instant,
    end: Instant,
) -> Samples {
    let mut samples = Samples::default();
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let outcome = target.send(kind, &ids, &cursor).await;
        let done = Instant::now();
        if let (Kind::Create, Ok((200, body))) = (kind, &outcome)
            && let Some(id) = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v["payment_id"].as_i64())
        {
            samples.created.push(id);
        }
        if sent < start {
            continue;
        }
        samples
            .latencies_us
            .push(done.duration_since(sent).as_micros() as u64);
        samples.last_done = Some(done);
        match outcome {
            Ok((200, _)) => samples.ok += 1,
            Ok((status, body)) => {
                let code = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "(no error code)".into());
                *samples
                    .errors
                    .entry(format!("{status} {code}"))
                    .or_default() += 1;
            }
            Err(e) => {
                let what = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else if e.is_body() || e.is_decode() {
                    "body"
                } else {
                    "request"
                };
                *samples
                    .errors
                    .entry(format!("transport error ({what})"))
                    .or_default() += 1;
            }
        }
    }
    samples
}

/// One measured phase.
struct Phase {
    kind: Kind,
    clients: usize,
    ok: u64,
    errors: BTreeMap<String, u64>,
    /// Sorted.
    latencies_us: Vec<u64>,
    elapsed: Duration,
    created: Vec<i64>,
    rss_max_kib: u64,
    cpu: CpuShare,
}

impl Phase {
    fn requests(&self) -> usize {
        self.latencies_us.len()
    }
    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
    fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
    fn mean_ms(&self) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        self.latencies_us.iter().sum::<u64>() as f64 / self.latencies_us.len() as f64 / 1000.0
    }
    fn max_ms(&self) -> f64 {
        self.latencies_us
            .last()
            .map_or(f64::NAN, |&m| m as f64 / 1000.0)
    }
    /// Its figures for `BENCH_JSON`.
    fn json(&self, label: &str) -> Value {
        json!({
            "kind": match self.kind { Kind::Create => "create", Kind::Show => "show" },
            "label": label, "clients": self.clients, "requests": self.requests(),
            "ok": self.ok, "errors": self.error_count(), "error_codes": self.errors,
            "seconds": self.elapsed.as_secs_f64(), "per_second": self.per_second(),
            "mean_ms": self.mean_ms(), "p50_ms": self.percentile_ms(0.5),
            "p90_ms": self.percentile_ms(0.9), "p99_ms": self.percentile_ms(0.99),
            "max_ms": self.max_ms(), "rss_max_mib": mib(self.rss_max_kib), "cpu": self.cpu,
        })
    }
}

/// Runs `clients` clients on the load generator's runtime for `warmup`
/// then `measure`, sampling this process's RSS and every part's CPU over
/// the measured window.
async fn run_phase(
    loadgen: &Handle,
    target: &Arc<Target>,
    kind: Kind,
    clients: usize,
    warmup: Duration,
    measure: Duration,
    ids: Arc<Vec<i64>>,
) -> Phase {
    let start = Instant::now() + warmup;
    let end = start + measure;
    let cursor = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            loadgen.spawn(client_loop(
                target.clone(),
                kind,
                ids.clone(),
                cursor.clone(),
                start,
                end,
            ))
        })
        .collect();
    tokio::time::sleep_until(start.into()).await;
    let cpu_before = CpuTicks::sample();
    let mut rss_max_kib = 0;
    loop {
        rss_max_kib = rss_max_kib.max(proc_status_kib("VmRSS"));
        let now = Instant::now();
        if now >= end {
            break;
        }
        tokio::time::sleep((end - now).min(Duration::from_millis(100))).await;
    }
    let cpu = CpuTicks::sample().since(&cpu_before);
    let mut all = Samples::default();
    for task in tasks {
        all.merge(task.await.expect("a client panicked"));
    }
    all.latencies_us.sort_unstable();
    let elapsed = all.last_done.map_or(end, |d| d.max(end)) - start;
    if kind == Kind::Create && all.created.len() > SANDBOX_CAPACITY * 9 / 10 {
        println!(
            "Warning: {} payments in one phase, near the sandbox provider's cap of {SANDBOX_CAPACITY}; shorten the phase.",
            all.created.len()
        );
    }
    Phase {
        kind,
        clients,
        ok: all.ok,
        errors: all.errors,
        latencies_us: all.latencies_us,
        elapsed,
        created: all.created,
        rss_max_kib,
        cpu,
    }
}

// ---------------------------------------------------------------------------
// Process and machine figures from /proc.

/// `VmRSS`, `VmHWM`, ... of this process, in KiB.
fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(&format!("{field}:")))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The command name and the fields after it of a `/proc/.../stat` file
/// (index 0 is the state, 11 utime, 12 stime, 13 cutime, 14 cstime).
fn parse_stat(text: &str) -> Option<(&str, Vec<u64>)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = &text[open + 1..close];
    let fields: Vec<u64> = text[close + 1..]
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // Every field the callers read (up to cstime) is there.
    (fields.len() > 14).then_some((comm, fields))
}

/// Cumulative CPU clock ticks of each part.
#[derive(Clone, Copy, Default)]
struct CpuTicks {
    at: Option<Instant>,
    machine_busy: u64,
    /// This process, every thread, alive or gone.
    process: u64,
    loadgen: u64,
    sandbox: u64,
    /// Children of this process that were waited for (pgbench, psql).
    children: u64,
    /// Every `postgres` process, with the backends that already exited
    /// (counted into the postmaster's children times).
    postgres: u64,
    redis: u64,
}

impl CpuTicks {
    fn sample() -> Self {
        let mut t = CpuTicks {
            at: Some(Instant::now()),
            ..Default::default()
        };
        if let Ok(stat) = std::fs::read_to_string("/proc/stat")
            && let Some(line) = stat.lines().next()
        {
            let v: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            // user nice system idle iowait irq softirq steal
            t.machine_busy = [0, 1, 2, 5, 6, 7]
                .iter()
                .map(|&i| v.get(i).copied().unwrap_or(0))
                .sum();
        }
        if let Ok(text) = std::fs::read_to_string("/proc/self/stat")
            && let Some((_, f)) = parse_stat(&text)
        {
            t.process = f[11] + f[12];
            t.children = f[13] + f[14];
        }
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let Ok(text) = std::fs::read_to_string(task.path().join("stat")) else {
                    continue;
                };
                if let Some((comm, f)) = parse_stat(&text) {
                    match comm {
                        "loadgen" => t.loadgen += f[11] + f[12],
                        "sandbox" => t.sandbox += f[11] + f[12],
                        _ => {}
                    }
                }
            }
        }
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for p in procs.flatten() {
                if !p
                    .file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                {
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(p.path().join("stat")) else {
                    continue;
                };
                if let Some((comm, f)) = parse_stat(&text) {
                    if comm == "postgres" {
                        t.postgres += f[11] + f[12] + f[13] + f[14];
                    } else if comm.starts_with("redis-server") {
                        t.redis += f[11] + f[12];
                    }
                }
            }
        }
        t
    }

    /// Cores each part used on average since `before`.
    fn since(&self, before: &CpuTicks) -> CpuShare {
        let wall = self
            .at
            .zip(before.at)
            .map_or(f64::NAN, |(a, b)| (a - b).as_secs_f64());
        let hz = clock_ticks_per_second();
        let cores = |a: u64, b: u64| a.saturating_sub(b) as f64 / hz / wall;
        let machine = cores(self.machine_busy, before.machine_busy);
        let loadgen = cores(self.loadgen, before.loadgen);
        let sandbox = cores(self.sandbox, before.sandbox);
        let host = cores(self.process, before.process) - loadgen - sandbox;
        let children = cores(self.children, before.children);
        let postgres = cores(self.postgres, before.postgres);
        let redis = cores(self.redis, before.redis);
        CpuShare {
            wall,
            machine,
            host,
            loadgen,
            sandbox,
            children,
            postgres,
            redis,
            other: machine - host - loadgen - sandbox - children - postgres - redis,
        }
    }
}

/// Average cores in use over a phase.
#[derive(Clone, Copy, serde::Serialize)]
struct CpuShare {
    wall: f64,
    machine: f64,
    host: f64,
    loadgen: f64,
    sandbox: f64,
    children: f64,
    postgres: f64,
    redis: f64,
    other: f64,
}

// ---------------------------------------------------------------------------
// PostgreSQL: administration and the pgbench ceiling.

async fn admin() -> Option<sqlx::PgConnection> {
    match sqlx::PgConnection::connect(&format!("{PG_SERVER}/postgres")).await {
        Ok(c) => Some(c),
        Err(e) => {
            println!("Cannot reach PostgreSQL at {PG_SERVER}: {e}");
            None
        }
    }
}

async fn drop_databases(names: &[&str]) {
    let Some(mut admin) = admin().await else {
        return;
    };
    for name in names {
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("dropping {name}: {e}"));
    }
}

/// Version and the settings that decide commit cost.
async fn postgres_info() -> String {
    let Some(mut admin) = admin().await else {
        return "unreachable".into();
    };
    let mut parts = Vec::new();
    for (label, sql) in [
        ("", "SELECT split_part(version(), ' on ', 1)"),
        ("synchronous_commit", "SHOW synchronous_commit"),
        ("wal_sync_method", "SHOW wal_sync_method"),
        ("shared_buffers", "SHOW shared_buffers"),
        ("max_connections", "SHOW max_connections"),
    ] {
        let value: String = sqlx::query_scalar(sql)
            .fetch_one(&mut admin)
            .await
            .unwrap_or_else(|e| format!("? ({e})"));
        parts.push(if label.is_empty() {
            value
        } else {
            format!("{label}={value}")
        });
    }
    parts.join(", ")
}

/// One pgbench run.
struct Baseline {
    label: String,
    command: String,
    clients: usize,
    transactions: u64,
    failed: u64,
    tps: f64,
    latency_avg_ms: f64,
    cpu: CpuShare,
}

/// Whether `program --version` runs; prints why not.
async fn available(program: &str) -> bool {
    match tokio::process::Command::new(program)
        .arg("--version")
        .output()
        .await
    {
        Ok(o) if o.status.success() => true,
        _ => {
            println!(
                "`{program}` is not installed (it comes with the PostgreSQL client package, `postgresql-client` on Debian): the pgbench ceiling was not measured."
            );
            false
        }
    }
}

/// The SQL one `POST /api/v1/payments` commits, statement for statement
/// (host/src/merchants/store.rs `take_token`, host/src/payments/store.rs
/// `insert` and `record_provider_outcome`, a request without an idempotency
/// key): three statements, each its own transaction. No literal holds `:name`, which pgbench would read as a
/// variable.
fn create_script(merchant_id: i64, subscription_id: i64) -> String {
    format!(
        "\\set order_id random(1, 9000000000000000000)
SELECT outcome, held_secs FROM take_quota_token({subscription_id}, {merchant_id}, :order_id);
WITH p AS (INSERT INTO payments (merchant_id, order_id, subscription_id, alias, amount, price, currency, status) VALUES ({merchant_id}, :order_id, {subscription_id}, 'sandbox', 1, 10.00, 'EUR', 'PAYMENT_PENDING') ON CONFLICT (merchant_id, order_id) DO NOTHING RETURNING id), logged AS (INSERT INTO payment_logs (payment_id, event_type, status, message) SELECT id, 'EVENT_PAYMENT_CREATED', 'PAYMENT_PENDING', 'payment created' FROM p), claimed AS (UPDATE idempotency_keys k SET payment_id = p.id FROM p WHERE NULL::text IS NOT NULL AND k.merchant_id = {merchant_id} AND k.key = NULL) SELECT id AS payment_id FROM p \\gset
WITH u AS (UPDATE payments SET provider_reference = 'pl_bench', payment_url = 'http://sandbox.invalid/pay/pl_bench', status = CASE WHEN 'x' IS NULL THEN 'PAYMENT_FAILED' ELSE status END, updated_at = now() WHERE id = :payment_id RETURNING id) INSERT INTO payment_logs (payment_id, event_type, status, message, payload) SELECT id, 'EVENT_PROVIDER_REQUEST_SENT', 'PAYMENT_PENDING', 'provider session opened', jsonb_build_object('plugin', 'sandbox', 'reference', 'pl_bench') FROM u;
"
    )
}

/// The SELECT of `GET …/show` (host/src/payments/store.rs `get`).
fn show_script(merchant_id: i64) -> String {
    format!(
        "\\set id random(1, :max_id)
SELECT id, order_id, alias, amount, price, currency, status, payment_url, created_at, updated_at FROM payments WHERE id = :id AND merchant_id = {merchant_id};
"
    )
}

async fn pgbench_baselines(settings: &Settings) -> Vec<Baseline> {
    if !available("pgbench").await || !available("psql").await {
        return Vec::new();
    }
    drop_databases(&[PGBENCH_DATABASE]).await;
    let Some(mut admin) = admin().await else {
        return Vec::new();
    };
    sqlx::query(&format!("CREATE DATABASE \"{PGBENCH_DATABASE}\""))
        .execute(&mut admin)
        .await
        .expect("creating the pgbench database");
    drop(admin);

    // The same schema, applied with psql from the migration files.
    for dir in ["migrations/payments", "migrations/merchants"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join(dir))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        for file in files {
            let out = tokio::process::Command::new("psql")
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", PG_HOST, "-p", PG_PORT, "-U", PG_USER])
                .args(["-d", PGBENCH_DATABASE, "-f"])
                .arg(&file)
                .output()
                .await
                .expect("running psql");
            assert!(
                out.status.success(),
                "psql -f {}: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let mut db = sqlx::PgConnection::connect(&format!("{PG_SERVER}/{PGBENCH_DATABASE}"))
        .await
        .expect("connecting to the pgbench database");
    let merchant_id: i64 = sqlx::query_scalar(
        "INSERT INTO merchants (name, webhook_secret) VALUES ('pgbench', 'whsec_bench') RETURNING id",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    let subscription_id: i64 = sqlx::query_scalar(
        "INSERT INTO subscriptions (merchant_id, token_limit) VALUES ($1, 9000000000000000000) RETURNING id",
    )
    .bind(merchant_id)
    .fetch_one(&mut db)
    .await
    .unwrap();

    let scripts = tempfile::tempdir().unwrap();
    let create = scripts.path().join("create.sql");
    std::fs::write(&create, create_script(merchant_id, subscription_id)).unwrap();
    let show = scripts.path().join("show.sql");
    std::fs::write(&show, show_script(merchant_id)).unwrap();

    let seconds = settings.seconds.round().max(1.0) as u64;
    let mut baselines = Vec::new();
    for (mode, label) in [
        (
            None,
            "pgbench ceiling: the SQL one create commits (simple protocol)",
        ),
        (
            Some("prepared"),
            "pgbench ceiling: the SQL one create commits (`-M prepared`, as sqlx)",
        ),
    ] {
        progress(label);
        if let Some(b) = pgbench(settings.clients, seconds, mode, &[], &create, label).await {
            baselines.push(b);
        }
    }
    let max_id: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM payments")
        .fetch_one(&mut db)
        .await
        .unwrap();
    drop(db);
    if let Some(max_id) = max_id {
        let label = "pgbench ceiling: the SELECT of one show (`-M prepared`)";
        progress(label);
        let define = format!("max_id={max_id}");
        if let Some(b) = pgbench(
            settings.clients,
            seconds,
            Some("prepared"),
            &["-D", &define],
            &show,
            label,
        )
        .await
        {
            baselines.push(b);
        }
    }
    drop_databases(&[PGBENCH_DATABASE]).await;
    baselines
}

async fn pgbench(
    clients: usize,
    seconds: u64,
    mode: Option<&str>,
    extra: &[&str],
    script: &Path,
    label: &str,
) -> Option<Baseline> {
    let mut args: Vec<String> = vec![
        "-n".into(),
        "-c".into(),
        clients.to_string(),
        "-j".into(),
        "2".into(),
        "-T".into(),
        seconds.to_string(),
    ];
    if let Some(mode) = mode {
        args.extend(["-M".into(), mode.into()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let command = format!(
        "pgbench {} -f {} {PGBENCH_DATABASE}",
        args.join(" "),
        script.file_name().unwrap().to_string_lossy()
    );
    args.extend(["-f".into(), script.display().to_string()]);
    args.extend([
        "-h".into(),
        PG_HOST.into(),
        "-p".into(),
        PG_PORT.into(),
        "-U".into(),
        PG_USER.into(),
        PGBENCH_DATABASE.into(),
    ]);
    let before = CpuTicks::sample();
    let out = tokio::process::Command::new("pgbench")
        .args(&args)
        .output()
        .await
        .expect("running pgbench");
    let cpu = CpuTicks::sample().since(&before);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        println!(
            "`{command}` failed ({}):\n```\n{}{}```",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let find = |prefix: &str| -> Option<f64> {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some(Baseline {
        label: label.into(),
        command,
        clients,
        transactions: find("number of transactions actually processed:").unwrap_or(f64::NAN) as u64,
        failed: find("number of failed transactions:").unwrap_or(0.0) as u64,
        tps: find("tps = ").unwrap_or(f64::NAN),
        latency_avg_ms: find("latency average = ").unwrap_or(f64::NAN),
        cpu,
    })
}

// ---------------------------------------------------------------------------
// The report.

struct Report<'a> {
    settings: &'a Settings,
    started_at: chrono::DateTime<chrono::Utc>,
    server_info: String,
    load_at_start: String,
    load_at_end: String,
    phases: &'a [Phase],
    sweep: &'a [Phase],
    show_sweep: &'a [Phase],
    baselines: &'a [Baseline],
    rss_peak_kib: u64,
}

fn phase_label(p: &Phase, rate_limit: bool) -> &'static str {
    match (p.kind, rate_limit) {
        (Kind::Create, true) => {
            "`POST /api/v1/payments` (rate-limit + sandbox adapter plugins, sandbox provider over loopback)"
        }
        (Kind::Create, false) => {
            "`POST /api/v1/payments` (**no rate-limit policy**; sandbox adapter plugin, sandbox provider over loopback)"
        }
        (Kind::Show, true) => "`GET /api/v1/payments/{id}/show` (rate-limit plugin, read key)",
        (Kind::Show, false) => {
            "`GET /api/v1/payments/{id}/show` (**no rate-limit policy**, read key)"
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The figures [`report`] prints, for `BENCH_JSON`.
fn report_json(r: &Report<'_>) -> Value {
    let s = r.settings;
    let sweep = |phases: &[Phase]| -> Vec<Value> { phases.iter().map(|p| p.json("")).collect() };
    json!({
        "bench": "api",
        "started_at": r.started_at.to_rfc3339(),
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "load_at_start": r.load_at_start, "load_at_end": r.load_at_end,
        "postgres": r.server_info,
        "settings": {
            "seconds": s.seconds, "warmup_seconds": s.warmup.as_secs_f64(),
            "sweep_seconds": s.sweep_seconds, "sweep_warmup_seconds": s.sweep_warmup.as_secs_f64(),
            "clients": s.clients, "db_pool_size": s.db_pool_size,
            "client_threads": s.client_threads, "rate_limit": s.rate_limit,
            "rust_log": std::env::var("RUST_LOG").unwrap_or_default(),
        },
        "phases": r.phases.iter().map(|p| p.json(phase_label(p, s.rate_limit))).collect::<Vec<_>>(),
        "baselines": r.baselines.iter().map(|b| json!({
            "label": b.label, "command": b.command, "clients": b.clients,
            "transactions": b.transactions, "failed": b.failed, "tps": b.tps,
            "latency_avg_ms": b.latency_avg_ms, "cpu": b.cpu,
        })).collect::<Vec<_>>(),
        "sweep": sweep(r.sweep),
        "show_sweep": sweep(r.show_sweep),
        "rss_peak_mib": mib(r.rss_peak_kib),
    })
}

/// One sweep's table: a row per client count.
fn sweep_table(path: &str, per: &str, sweep: &[Phase]) {
    println!();
    println!("### Concurrency sweep: `{path}`");
    println!();
    println!(
        "| clients | requests | errors | {per} | p50 ms | p90 ms | p99 ms | max ms | host cores | postgres cores | host RSS MiB (max) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for p in sweep {
        println!(
            "| {} | {} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
            p.clients,
            p.requests(),
            p.error_count(),
            p.per_second(),
            p.percentile_ms(0.5),
            p.percentile_ms(0.9),
            p.percentile_ms(0.99),
            p.max_ms(),
            p.cpu.host,
            p.cpu.postgres,
            mib(p.rss_max_kib)
        );
    }
}

fn report(r: &Report<'_>) {
    let s = r.settings;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!("## Merchant API under load");
    println!();
    println!(
        "Run {} UTC on {cores} cores; load average {} at start, {} at end. PostgreSQL: {}.",
        r.started_at.format("%Y-%m-%d %H:%M"),
        r.load_at_start,
        r.load_at_end,
        r.server_info
    );
    println!(
        "Host in this process: DB pool {} (payments), plugin calls ≤ 1000, rate-limit policy {}, log level `{}`; {} load generator thread(s); phases {} s after a {} s warm-up; sweep {} s per level after {} s.",
        s.db_pool_size,
        if s.rate_limit {
            "on (limits never reached)"
        } else {
            "**off** (`BENCH_RATE_LIMIT=off`)"
        },
        std::env::var("RUST_LOG").unwrap_or_default(),
        s.client_threads,
        s.seconds,
        s.warmup.as_secs_f64(),
        s.sweep_seconds,
        s.sweep_warmup.as_secs_f64()
    );
    println!();
    println!(
        "| measurement | clients | requests | errors | per second | mean ms | p50 ms | p90 ms | p99 ms | max ms | host RSS MiB (max) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for p in r.phases {
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
            phase_label(p, s.rate_limit),
            p.clients,
            p.requests(),
            p.error_count(),
            p.per_second(),
            p.mean_ms(),
            p.percentile_ms(0.5),
            p.percentile_ms(0.9),
            p.percentile_ms(0.99),
            p.max_ms(),
            mib(p.rss_max_kib)
        );
    }
    for b in r.baselines {
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.2} | – | – | – | – | – |",
            b.label, b.clients, b.transactions, b.failed, b.tps, b.latency_avg_ms
        );
    }
    println!();
    println!(
        "Host RSS is `VmRSS` of the benchmark process, which also holds the load generator and the sandbox provider; its peak (`VmHWM`) over the run was {:.1} MiB. pgbench figures are transactions (one script run) per second and pgbench's average latency.",
        mib(r.rss_peak_kib)
    );
    for b in r.baselines {
        println!("- `{}`", b.command);
    }

    let create = r.phases.iter().find(|p| p.kind == Kind::Create);
    let show = r.phases.iter().find(|p| p.kind == Kind::Show);
    let ceiling = r.baselines.first();
    println!();
    println!("| target | original system | measured | met |");
    println!("|---|---|---|---|");
    let verdict = |ok: bool| if ok { "yes" } else { "no" };
    if let Some(c) = create {
        println!(
            "| create ≥ 1,000 payments/s at {} clients | 9.8/s | {:.1}/s | {} |",
            c.clients,
            c.per_second(),
            verdict(c.per_second() >= 1000.0)
        );
        println!(
            "| create p99 ≤ 50 ms | p50 815 ms | p99 {:.2} ms (p50 {:.2} ms) | {} |",
            c.percentile_ms(0.99),
            c.percentile_ms(0.5),
            verdict(c.percentile_ms(0.99) <= 50.0)
        );
        println!(
            "| create: zero errors | | {} | {} |",
            c.error_count(),
            verdict(c.error_count() == 0)
        );
        if let Some(b) = ceiling {
            println!(
                "| (create throughput against the pgbench ceiling) | | {:.0}% of {:.0} tps | |",
                100.0 * c.per_second() / b.tps,
                b.tps
            );
        }
    }
    if let Some(g) = show {
        println!(
            "| show ≥ 5,000 requests/s at {} clients | 258/s | {:.1}/s | {} |",
            g.clients,
            g.per_second(),
            verdict(g.per_second() >= 5000.0)
        );
    }

    let mut errors = Vec::new();
    for (name, p) in r
        .phases
        .iter()
        .map(|p| (format!("{} clients", p.clients), p))
        .chain(
            r.sweep
                .iter()
                .chain(r.show_sweep)
                .map(|p| (format!("sweep, {} clients", p.clients), p)),
        )
    {
        for (what, n) in &p.errors {
            let path = match p.kind {
                Kind::Create => "POST",
                Kind::Show => "GET show",
            };
            errors.push(format!("| {path}, {name} | {what} | {n} |"));
        }
    }
    if !errors.is_empty() {
        println!();
        println!("| errors in | status and code | count |");
        println!("|---|---|---|");
        for line in errors {
            println!("{line}");
        }
    }

    for (path, per, sweep) in [
        ("POST /api/v1/payments", "payments/s", r.sweep),
        ("GET /api/v1/payments/{id}/show", "requests/s", r.show_sweep),
    ] {
        if !sweep.is_empty() {
            sweep_table(path, per, sweep);
        }
    }

    println!();
    println!("### Where the CPU went (average cores in use over each measured window)");
    println!();
    println!(
        "| phase | wall s | machine busy (of {cores}) | paygate host | load generator | sandbox provider | pgbench client | postgres (all) | redis | other processes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let cpu_row = |name: String, c: &CpuShare| {
        println!(
            "| {name} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            c.wall,
            c.machine,
            c.host,
            c.loadgen,
            c.sandbox,
            c.children,
            c.postgres,
            c.redis,
            c.other
        )
    };
    for p in r.phases {
        let name = match p.kind {
            Kind::Create => format!("POST, {} clients", p.clients),
            Kind::Show => format!("GET show, {} clients", p.clients),
        };
        cpu_row(name, &p.cpu);
    }
    for p in r.sweep {
        cpu_row(format!("sweep POST, {} clients", p.clients), &p.cpu);
    }
    for p in r.show_sweep {
        cpu_row(format!("sweep GET show, {} clients", p.clients), &p.cpu);
    }
    for b in r.baselines {
        cpu_row(b.label.clone(), &b.cpu);
    }
    println!();
    println!(
        "\"postgres (all)\" is every PostgreSQL process on the machine, including backends of other clients; \"other processes\" is everything else the machine ran (other builds and tests on a shared machine)."
    );
}
