//! The load generator: the in-process sandbox provider, the request
//! targets, client loops and measured phases.

use super::*;

pub(crate) struct SandboxProvider {
    pub(crate) rt: Handle,
    pub(crate) addr: SocketAddr,
    pub(crate) args: SandboxArgs,
    pub(crate) running: Option<(CancellationToken, JoinHandle<anyhow::Result<()>>)>,
}

impl SandboxProvider {
    pub(crate) fn serve(&mut self, listener: TcpListener) {
        let token = CancellationToken::new();
        let handle = self.rt.spawn(paygate_demo::sandbox::serve(
            listener,
            self.args.clone(),
            token.clone(),
        ));
        self.running = Some((token, handle));
    }

    pub(crate) async fn stop(&mut self) {
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
    pub(crate) async fn restart(&mut self) {
        self.stop().await;
        let listener = bind_on(&self.rt, self.addr).await;
        self.serve(listener);
    }
}

// ---------------------------------------------------------------------------
// The load generator.

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Create,
    Show,
    /// A partial refund of [`REFUND_PRICE`] of a finished payment.
    Refund,
}

/// What each refund gives back: 1/1000 of a payment's 10.00, so a payment
/// takes many refunds before nothing is left.
pub(crate) const REFUND_PRICE: &str = "0.01";

impl Kind {
    /// Its name in `BENCH_JSON`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Create => "create",
            Kind::Show => "show",
            Kind::Refund => "refund",
        }
    }

    /// The request, short, for table rows.
    pub(crate) fn request(self) -> &'static str {
        match self {
            Kind::Create => "POST",
            Kind::Show => "GET show",
            Kind::Refund => "POST refund",
        }
    }
}

pub(crate) struct Target {
    /// The host's merchant API.
    pub(crate) addr: SocketAddr,
    pub(crate) write_key: String,
    pub(crate) read_key: String,
    pub(crate) subscription_id: i64,
    /// Every create has its own order id, every refund its own key.
    pub(crate) next_order: AtomicI64,
}

/// How long one request may take before it counts as a timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl Target {
    /// One request on `conn` (opened first if there is none; dropped after a
    /// transport error or a `Connection: close`); its status and body.
    pub(crate) async fn send(
        &self,
        conn: &mut Option<Wire>,
        kind: Kind,
        ids: &[i64],
        cursor: &AtomicUsize,
        request: &mut Vec<u8>,
    ) -> Result<(u16, bytes::Bytes), WireError> {
        request.clear();
        self.write_request(kind, ids, cursor, request);
        let wire = match conn {
            Some(wire) => wire,
            None => conn.insert(Wire::connect(self.addr).await?),
        };
        let answer = wire.exchange(request, REQUEST_TIMEOUT).await;
        if answer.is_err() || !wire.reusable() {
            *conn = None;
        }
        answer
    }

    /// The request's bytes, as a merchant's client sends them.
    fn write_request(&self, kind: Kind, ids: &[i64], cursor: &AtomicUsize, out: &mut Vec<u8>) {
        const JSON: (&str, &str) = ("content-type", "application/json");
        match kind {
            Kind::Create => {
                let order_id = self.next_order.fetch_add(1, Ordering::Relaxed);
                let body = format!(
                    r#"{{"order_id":{order_id},"amount":1,"price":"10.00","alias":"sandbox","subscription_id":{}}}"#,
                    self.subscription_id
                );
                let headers = [JSON, ("x-api-key", &self.write_key)];
                write_request(out, "POST", "/api/v1/payments", self.addr, &headers, &body);
            }
            Kind::Show => {
                let id = ids[cursor.fetch_add(1, Ordering::Relaxed) % ids.len()];
                let target = format!("/api/v1/payments/{id}/show");
                let headers = [("x-api-key", self.read_key.as_str())];
                write_request(out, "GET", &target, self.addr, &headers, "");
            }
            Kind::Refund => {
                // Round robin over the finished payments, each refund under
                // a key of its own, as a merchant's retry-safe client sends it.
                let id = ids[cursor.fetch_add(1, Ordering::Relaxed) % ids.len()];
                let key = format!(
                    "bench-refund-{}",
                    self.next_order.fetch_add(1, Ordering::Relaxed)
                );
                let body =
                    format!(r#"{{"price":"{REFUND_PRICE}","reason":"requested_by_customer"}}"#);
                let target = format!("/api/v1/payments/{id}/refunds");
                let headers = [
                    JSON,
                    ("x-api-key", &self.write_key),
                    ("idempotency-key", &key),
                ];
                write_request(out, "POST", &target, self.addr, &headers, &body);
            }
        }
    }
}

/// What one client saw.
#[derive(Default)]
pub(crate) struct Samples {
    pub(crate) latencies_us: Vec<u64>,
    pub(crate) ok: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) created: Vec<i64>,
    pub(crate) last_done: Option<Instant>,
}

impl Samples {
    pub(crate) fn merge(&mut self, other: Samples) {
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
pub(crate) async fn client_loop(
    target: Arc<Target>,
    kind: Kind,
    ids: Arc<Vec<i64>>,
    cursor: Arc<AtomicUsize>,
    start: Instant,
    end: Instant,
) -> Samples {
    let mut samples = Samples::default();
    let mut conn = None;
    let mut request = Vec::with_capacity(512);
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let outcome = target
            .send(&mut conn, kind, &ids, &cursor, &mut request)
            .await;
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
                *samples
                    .errors
                    .entry(format!("transport error ({})", e.kind()))
                    .or_default() += 1;
            }
        }
    }
    samples
}

/// One measured phase.
pub(crate) struct Phase {
    pub(crate) kind: Kind,
    pub(crate) clients: usize,
    pub(crate) ok: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    /// Sorted.
    pub(crate) latencies_us: Vec<u64>,
    pub(crate) elapsed: Duration,
    pub(crate) created: Vec<i64>,
    pub(crate) rss_max_kib: u64,
    pub(crate) cpu: CpuShare,
    /// PostgreSQL's work per request answered in the window.
    pub(crate) pg: Option<PgPerRequest>,
}

impl Phase {
    pub(crate) fn requests(&self) -> usize {
        self.latencies_us.len()
    }
    pub(crate) fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
    pub(crate) fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    pub(crate) fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
    pub(crate) fn mean_ms(&self) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        self.latencies_us.iter().sum::<u64>() as f64 / self.latencies_us.len() as f64 / 1000.0
    }
    pub(crate) fn max_ms(&self) -> f64 {
        self.latencies_us
            .last()
            .map_or(f64::NAN, |&m| m as f64 / 1000.0)
    }
    /// Its figures for `BENCH_JSON`.
    pub(crate) fn json(&self, label: &str) -> Value {
        json!({
            "kind": self.kind.name(),
            "label": label, "clients": self.clients, "requests": self.requests(),
            "ok": self.ok, "errors": self.error_count(), "error_codes": self.errors,
            "seconds": self.elapsed.as_secs_f64(), "per_second": self.per_second(),
            "mean_ms": self.mean_ms(), "p50_ms": self.percentile_ms(0.5),
            "p90_ms": self.percentile_ms(0.9), "p99_ms": self.percentile_ms(0.99),
            "max_ms": self.max_ms(), "rss_max_mib": mib(self.rss_max_kib), "cpu": self.cpu,
            "postgres_per_request": self.pg,
        })
    }
}

/// Runs `clients` clients on the load generator's runtime for `warmup`
/// then `measure`, sampling this process's RSS and every part's CPU over
/// the measured window.
pub(crate) async fn run_phase(
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
    let pg_before = PgActivity::sample().await;
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
    let pg_after = PgActivity::sample().await;
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
        pg: pg_before
            .zip(pg_after)
            .map(|(before, after)| after.per_request(&before, all.ok as f64)),
    }
}

// ---------------------------------------------------------------------------
// Process and machine figures from /proc.
