//! What this process counts, in the OpenMetrics text format of the
//! Prometheus project's client (`prometheus-client`), served as `GET
//! /metrics` on the admin listener and, when `PAYGATE_METRICS_LISTEN` is
//! set, on a listener of its own without the token.
//!
//! Two kinds of series: those the host counts as it works ([`Metrics`]:
//! HTTP requests by method, matched route and status; payments created and
//! finished by alias and status; webhooks by alias and verdict; the outbox
//! producer's and the notifier's work), and those read when scraped
//! ([`Scrape`]: plugins, the outbox's rows, each alias's circuit, the
//! process). Every label value comes from a bounded set: matched routes
//! (never raw paths), bound aliases, fixed verdicts and outcomes.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::http::Method;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet, text,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

use crate::outbox::OutboxStats;
use crate::payments::domain::PaymentStatus;
use crate::plugins::{Histogram, PluginSet};
use crate::redis_batch::BatchStats;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A latency histogram updated without locks (the runtime's), as a metric;
/// clones share it.
#[derive(Clone, Debug, Default)]
pub struct Latency(Arc<Histogram>);

impl Latency {
    pub fn observe(&self, elapsed: Duration) {
        self.0.observe(elapsed);
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        let s = self.0.snapshot();
        encoder.encode_histogram::<NoLabelSet>(s.sum_seconds, s.count, &s.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PaymentLabels {
    pub provider: String,
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub provider: String,
    pub verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

/// A stage of the notification pipeline that works on rows in batches,
/// each batch one statement.
#[derive(Clone, Copy, Debug)]
pub enum BatchStage {
    /// The producer's claim of rows to publish.
    Publish,
    /// The notifier's claim of received messages' rows.
    Claim,
    /// The notifier's record of settled attempts.
    Settle,
}

impl BatchStage {
    fn label(self) -> &'static str {
        match self {
            BatchStage::Publish => "publish",
            BatchStage::Claim => "claim",
            BatchStage::Settle => "settle",
        }
    }
}

/// Statements and rows per stage: their ratio is the mean batch, which
/// says how many database round trips each notification costs.
#[derive(Debug, Default)]
pub struct Batches {
    statements: Family<StageLabels, Counter>,
    rows: Family<StageLabels, Counter>,
}

impl Batches {
    /// One statement of `stage` that worked on `rows` rows.
    pub fn record(&self, stage: BatchStage, rows: usize) {
        let labels = StageLabels {
            stage: stage.label(),
        };
        self.statements.get_or_create(&labels).inc();
        self.rows.get_or_create(&labels).inc_by(rows as u64);
    }

    /// Statements and rows of `stage` so far.
    pub fn totals(&self, stage: BatchStage) -> (u64, u64) {
        let labels = StageLabels {
            stage: stage.label(),
        };
        (
            self.statements.get_or_create(&labels).get(),
            self.rows.get_or_create(&labels).get(),
        )
    }
}

/// The route label of a request no route matched.
const UNMATCHED: &str = "unmatched";

/// HTTP requests of the merchant API.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Latency>,
    /// Matched routes seen so far, each kept once for the process's life:
    /// the router's own patterns, so a bounded set.
    routes: RwLock<HashSet<&'static str>>,
}

impl HttpMetrics {
    /// Counts one request; `route` is the matched route's pattern (`None`
    /// when none matched: a 404, counted as `unmatched`, so made-up paths
    /// make no series).
    pub fn record(&self, method: &Method, route: Option<&str>, status: u16, elapsed: Duration) {
        let method = method_label(method);
        let route = route.map_or(UNMATCHED, |r| self.intern(r));
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { method, route })
            .observe(elapsed);
    }

    fn intern(&self, route: &str) -> &'static str {
        if let Some(known) = self.routes.read().expect("routes lock").get(route) {
            return known;
        }
        let mut routes = self.routes.write().expect("routes lock");
        if let Some(known) = routes.get(route) {
            return known;
        }
        let kept: &'static str = Box::leak(route.to_owned().into_boxed_str());
        routes.insert(kept);
        kept
    }
}

/// A method as a label: the standard ones by name, any other as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The outbox producer's and the notifier's work.
#[derive(Debug)]
pub struct OutboxMetrics {
    pub published: Counter,
    pub publish_failures: Counter,
    deliveries: Family<OutcomeLabels, Counter>,
    /// Accepted by the merchant (2xx).
    pub delivered: Counter,
    /// Failed, with another attempt scheduled.
    pub retries_scheduled: Counter,
    /// Failed on the last attempt: dead-lettered.
    pub failed: Counter,
    /// Redelivered or stale messages not delivered again.
    pub dropped_duplicates: Counter,
    /// Put off because their merchant held its whole share of slots.
    pub deferred: Counter,
    pub delivery_latency: Latency,
    pub batches: Batches,
}

impl Default for OutboxMetrics {
    fn default() -> Self {
        let deliveries = Family::<OutcomeLabels, Counter>::default();
        let outcome = |outcome| deliveries.get_or_create_owned(&OutcomeLabels { outcome });
        Self {
            published: Counter::default(),
            publish_failures: Counter::default(),
            delivered: outcome("delivered"),
            retries_scheduled: outcome("retry"),
            failed: outcome("failed"),
            dropped_duplicates: outcome("duplicate"),
            deferred: outcome("deferred"),
            deliveries,
            delivery_latency: Latency::default(),
            batches: Batches::default(),
        }
    }
}

/// Everything this process counts as it works.
pub struct Metrics {
    registry: Registry,
    pub http: HttpMetrics,
    payments_created: Family<PaymentLabels, Counter>,
    payments_finished: Family<PaymentLabels, Counter>,
    webhooks: Family<WebhookLabels, Counter>,
    pub outbox: OutboxMetrics,
    /// Times `/health` (or `/readyz`) asked every backend; its answers in
    /// between are cached.
    pub health_checks: Counter,
    /// Verified provider events that said a payment finished or failed
    /// after it had expired: money may have moved, an operator must look.
    pub events_after_expiry: Counter,
    /// The Redis script calls of rate-limit takes (plugins' and webhook
    /// limits') and the takes they carried.
    pub counter_takes: BatchStats,
    /// The Redis script calls of circuit breakers' acquires (one per
    /// provider call) and the acquires they carried.
    pub circuit_acquires: BatchStats,
    /// The statements reading single payments (shows, timelines, refund
    /// lists) and the reads they carried.
    pub payment_reads: BatchStats,
    started: SystemTime,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let m = Self {
            registry: Registry::default(),
            http: HttpMetrics::default(),
            payments_created: Family::default(),
            payments_finished: Family::default(),
            webhooks: Family::default(),
            outbox: OutboxMetrics::default(),
            health_checks: Counter::default(),
            events_after_expiry: Counter::default(),
            counter_takes: BatchStats::default(),
            circuit_acquires: BatchStats::default(),
            payment_reads: BatchStats::default(),
            started: SystemTime::now(),
        };
        let r = &mut registry;
        r.register(
            "paygate_build",
            "The running build: its version and the plugin WIT versions it serves.",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION")),
                ("wit", "0.1.0,0.2.0,0.3.0"),
            ]),
        );
        r.register(
            "paygate_http_requests",
            "Merchant API requests by method, matched route and status code.",
            m.http.requests.clone(),
        );
        r.register_with_unit(
            "paygate_http_request_duration",
            "Merchant API request latency by method and matched route.",
            Unit::Seconds,
            m.http.latency.clone(),
        );
        r.register(
            "paygate_payments_created",
            "Payments created, by alias and the status they were created in \
             (PAYMENT_PENDING, or PAYMENT_FAILED when the provider refused).",
            m.payments_created.clone(),
        );
        r.register(
            "paygate_payments_finished",
            "Payments that left PAYMENT_PENDING, by alias and the status they reached.",
            m.payments_finished.clone(),
        );
        r.register(
            "paygate_webhooks",
            "Provider webhooks on a bound route, by alias (`internal` for the internal scheme) \
             and verdict (valid, invalid_signature, signature_expired, malformed, misconfigured, \
             verifier_failed, amount_mismatch, unmatched, deferred).",
            m.webhooks.clone(),
        );
        r.register(
            "paygate_outbox_published",
            "Notifications published to RabbitMQ and confirmed.",
            m.outbox.published.clone(),
        );
        r.register(
            "paygate_outbox_publish_failures",
            "Notifications the broker did not confirm (given back).",
            m.outbox.publish_failures.clone(),
        );
        r.register(
            "paygate_notifier_deliveries",
            "Notifier work by outcome: delivered (2xx), retry (failed, retry scheduled), failed \
             (last attempt failed), duplicate (redelivered message dropped), deferred (merchant \
             over its share of slots).",
            m.outbox.deliveries.clone(),
        );
        r.register(
            "paygate_outbox_batches",
            "Statements of the notification pipeline's batched stages: publish (the producer's \
             claims), claim (the notifier's claims of received messages), settle (its records \
             of attempts).",
            m.outbox.batches.statements.clone(),
        );
        r.register(
            "paygate_outbox_batch_rows",
            "Rows those statements worked on; divided by paygate_outbox_batches, the mean batch.",
            m.outbox.batches.rows.clone(),
        );
        r.register_with_unit(
            "paygate_notifier_attempt_duration",
            "Time of one delivery attempt.",
            Unit::Seconds,
            m.outbox.delivery_latency.clone(),
        );
        r.register(
            "paygate_health_checks",
            "Health checks that asked every backend (answers in between are cached).",
            m.health_checks.clone(),
        );
        r.register(
            "paygate_provider_events_after_expiry",
            "Provider events that settled a payment after it expired (money may have moved: look).",
            m.events_after_expiry.clone(),
        );
        register_batches(
            r,
            ("paygate_counter_take", "Redis script calls"),
            "rate-limit takes",
            &m.counter_takes,
        );
        register_batches(
            r,
            ("paygate_circuit_acquire", "Redis script calls"),
            "circuit breaker acquires (one per provider call)",
            &m.circuit_acquires,
        );
        register_batches(
            r,
            ("paygate_payment_read", "PostgreSQL statements"),
            "reads of one payment (shows, timelines, refund lists)",
            &m.payment_reads,
        );
        Self { registry, ..m }
    }
}

/// A batcher's two counters: `<name>_calls` (the `calls`, Redis script
/// calls or statements, it made) and `<name>s` (the `what` they carried;
/// their ratio is the mean batch).
fn register_batches(r: &mut Registry, (name, calls): (&str, &str), what: &str, stats: &BatchStats) {
    r.register(
        format!("{name}_calls"),
        format!("{calls} made for {what}; concurrent requests share one."),
        stats.calls.clone(),
    );
    r.register(
        format!("{name}s"),
        format!("The {what} those calls carried; divided by {name}_calls, the mean batch."),
        stats.asks.clone(),
    );
}

impl Metrics {
    /// A payment written by a create that was not a replay.
    pub fn payment_created(&self, alias: &str, status: PaymentStatus) {
        self.payments_created
            .get_or_create(&PaymentLabels {
                provider: alias.to_owned(),
                status: status.as_str(),
            })
            .inc();
    }

    /// `n` payments of `alias` that left `PAYMENT_PENDING` for `status`.
    pub fn payments_finished(&self, alias: &str, status: PaymentStatus, n: u64) {
        self.payments_finished
            .get_or_create(&PaymentLabels {
                provider: alias.to_owned(),
                status: status.as_str(),
            })
            .inc_by(n);
    }

    /// A webhook on a bound route (`alias`, or `internal`) and its verdict.
    pub fn webhook(&self, alias: &str, verdict: &'static str) {
        self.webhooks
            .get_or_create(&WebhookLabels {
                provider: alias.to_owned(),
                verdict,
            })
            .inc();
    }

    /// The whole exposition: what was counted, then what `scrape` read.
    pub fn render(&self, scrape: Scrape) -> String {
        let mut out = String::new();
        let mut now = Registry::default();
        now.register_collector(Box::new(ScrapeCollector {
            scrape,
            started: self.started,
        }));
        // Writing to a String cannot fail.
        let _ = text::encode_registry(&mut out, &self.registry)
            .and_then(|()| text::encode_registry(&mut out, &now))
            .and_then(|()| text::encode_eof(&mut out));
        out
    }
}

/// A plugin version's figures at the scrape.
#[derive(Debug)]
struct PluginRow {
    name: String,
    version: String,
    world: &'static str,
    calls: u64,
    fuel: u64,
    errors: Vec<(&'static str, u64)>,
    latency: crate::plugins::HistogramSnapshot,
}

/// What is read when `/metrics` is asked, rather than counted.
#[derive(Debug, Default)]
pub struct Scrape {
    plugins: Vec<PluginRow>,
    /// Compile cache: hits, compiles, rejected.
    cache: (u64, u64, u64),
    outbox: Option<OutboxStats>,
    /// Each bound alias and its breaker's state (`closed`, `open`,
    /// `half-open`, `unknown`).
    circuits: Vec<(String, &'static str)>,
}

impl Scrape {
    /// The plugins' figures as they are now.
    pub fn new(plugins: &PluginSet) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let rows = plugins
            .names()
            .into_iter()
            .filter_map(|name| {
                let p = plugins.get(&name)?;
                Some(PluginRow {
                    version: p.ctx.version.clone(),
                    world: p.ctx.kind.world(),
                    calls: p.stats.calls.load(Relaxed),
                    fuel: p.stats.fuel_used.load(Relaxed),
                    errors: p.stats.errors_by_kind(),
                    latency: p.stats.latency.snapshot(),
                    name,
                })
            })
            .collect();
        let cache = plugins.loader().cache_stats();
        Self {
            plugins: rows,
            cache: (
                cache.hits.load(Relaxed),
                cache.compiled.load(Relaxed),
                cache.rejected.load(Relaxed),
            ),
            outbox: None,
            circuits: Vec::new(),
        }
    }

    pub fn with_outbox(mut self, stats: Option<OutboxStats>) -> Self {
        self.outbox = stats;
        self
    }

    pub fn with_circuit(mut self, alias: String, state: &'static str) -> Self {
        self.circuits.push((alias, state));
        self
    }
}

#[derive(Debug)]
struct ScrapeCollector {
    scrape: Scrape,
    started: SystemTime,
}

/// One metric family of `(labels, value)` rows.
fn family<S: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    (name, help, unit, kind): (&str, &str, Option<&Unit>, MetricType),
    rows: impl IntoIterator<Item = (S, M)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, unit, kind)?;
    for (labels, metric) in rows {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One metric without labels.
fn single<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: M,
) -> fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

/// A histogram read from a snapshot.
struct SnapshotMetric<'a>(&'a crate::plugins::HistogramSnapshot);

impl EncodeMetric for SnapshotMetric<'_> {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        let s = self.0;
        encoder.encode_histogram::<NoLabelSet>(s.sum_seconds, s.count, &s.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

const CIRCUIT_STATES: [&str; 4] = ["closed", "half-open", "open", "unknown"];

impl Collector for ScrapeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let s = &self.scrape;
        let e = &mut encoder;
        fn labels(p: &PluginRow) -> [(&'static str, &str); 3] {
            [
                ("plugin", p.name.as_str()),
                ("version", p.version.as_str()),
                ("world", p.world),
            ]
        }
        family(
            e,
            (
                "paygate_plugin_calls",
                "Calls into a plugin version.",
                None,
                MetricType::Counter,
            ),
            s.plugins
                .iter()
                .map(|p| (labels(p), ConstCounter::new(p.calls))),
        )?;
        let mut errors = e.encode_descriptor(
            "paygate_plugin_errors",
            "Failed plugin calls by kind (deadline, fuel, memory, trap, capability_denied, ...).",
            None,
            MetricType::Counter,
        )?;
        for p in &s.plugins {
            for (kind, n) in &p.errors {
                let with_kind = (labels(p), [("kind", *kind)]);
                ConstCounter::new(*n).encode(errors.encode_family(&with_kind)?)?;
            }
        }
        family(
            e,
            (
                "paygate_plugin_fuel_consumed",
                "Fuel burnt by a plugin version's calls (when metering is on).",
                None,
                MetricType::Counter,
            ),
            s.plugins
                .iter()
                .map(|p| (labels(p), ConstCounter::new(p.fuel))),
        )?;
        family(
            e,
            (
                "paygate_plugin_call_duration",
                "Plugin call latency, sandbox set-up included.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            ),
            s.plugins
                .iter()
                .map(|p| (labels(p), SnapshotMetric(&p.latency))),
        )?;
        let (hits, compiled, rejected) = s.cache;
        for (name, help, n) in [
            (
                "paygate_plugin_cache_hits",
                "Plugin loads that used authenticated compiled code from the compile cache.",
                hits,
            ),
            (
                "paygate_plugin_cache_compiles",
                "Plugin loads that compiled the component.",
                compiled,
            ),
            (
                "paygate_plugin_cache_rejected",
                "Compile cache entries refused because their authentication tag did not check \
                 (changed, replaced, or written without this host's key); each was recompiled.",
                rejected,
            ),
        ] {
            single(e, name, help, None, ConstCounter::new(n))?;
        }
        family(
            e,
            (
                "paygate_circuit_state",
                "Each alias's circuit breaker: 1 for the state it is in, 0 for the others.",
                None,
                MetricType::Gauge,
            ),
            s.circuits.iter().flat_map(|(alias, now)| {
                CIRCUIT_STATES.iter().map(move |state| {
                    (
                        [("provider", alias.as_str()), ("state", *state)],
                        ConstGauge::new(i64::from(state == now)),
                    )
                })
            }),
        )?;
        if let Some(o) = &s.outbox {
            family(
                e,
                (
                    "paygate_outbox_rows",
                    "Outbox rows by state.",
                    None,
                    MetricType::Gauge,
                ),
                [
                    ("pending", o.pending),
                    ("retrying", o.retrying),
                    ("processing", o.processing),
                    ("delivered", o.delivered),
                    ("failed", o.failed),
                ]
                .map(|(state, n)| ([("state", state)], ConstGauge::new(n))),
            )?;
            single(
                e,
                "paygate_outbox_oldest_pending",
                "Age of the oldest row waiting to be published.",
                Some(&Unit::Seconds),
                ConstGauge::new(o.oldest_pending_age_seconds.unwrap_or(0.0)),
            )?;
        }
        process(e, self.started)
    }
}

/// The process's CPU, memory, threads and descriptors, from `/proc`
/// (Linux); elsewhere only its start time.
fn process(e: &mut DescriptorEncoder, started: SystemTime) -> fmt::Result {
    let start = started
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    single(
        e,
        "process_start_time",
        "When this host started, in seconds since the Unix epoch.",
        Some(&Unit::Seconds),
        ConstGauge::new(start),
    )?;
    let Some(p) = ProcStat::read() else {
        return Ok(());
    };
    single(
        e,
        "process_cpu",
        "User and system CPU time spent.",
        Some(&Unit::Seconds),
        ConstCounter::new(p.cpu_seconds),
    )?;
    for (name, help, unit, value) in [
        (
            "process_resident_memory",
            "Resident memory size.",
            Some(&Unit::Bytes),
            p.resident_bytes,
        ),
        (
            "process_virtual_memory",
            "Virtual memory size.",
            Some(&Unit::Bytes),
            p.virtual_bytes,
        ),
        ("process_threads", "OS threads.", None, p.threads),
    ] {
        single(e, name, help, unit, ConstGauge::new(value))?;
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        single(
            e,
            "process_open_fds",
            "Open file descriptors.",
            None,
            ConstGauge::new(fds.count() as i64),
        )?;
    }
    Ok(())
}

/// The figures of `/proc/self/stat`.
#[derive(Debug, PartialEq)]
struct ProcStat {
    cpu_seconds: f64,
    virtual_bytes: i64,
    resident_bytes: i64,
    threads: i64,
}

impl ProcStat {
    fn read() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }

    /// Fields after the command (which may hold spaces and parentheses,
    /// so the last `)` ends it). Times are in USER_HZ, 100 on Linux's ABI;
    /// the resident size is in pages, taken as 4 KiB.
    fn parse(stat: &str) -> Option<Self> {
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state): field n is f[n - 3].
        let field = |n: usize| f.get(n - 3)?.parse::<i64>().ok();
        Some(Self {
            cpu_seconds: (field(14)? + field(15)?) as f64 / 100.0,
            threads: field(20)?,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * 4096,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_fields_are_read_past_a_command_with_spaces_and_parentheses() {
        let stat = "4242 (pay gate) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 \
                    7 0 12345 1000000 500 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0";
        assert_eq!(
            ProcStat::parse(stat),
            Some(ProcStat {
                cpu_seconds: 3.0,
                virtual_bytes: 1_000_000,
                resident_bytes: 500 * 4096,
                threads: 7,
            })
        );
        assert_eq!(ProcStat::parse("garbage"), None);
        assert!(ProcStat::read().is_some(), "this test runs on Linux");
    }

    #[test]
    fn requests_are_labelled_by_matched_route_and_unmatched_paths_make_no_series() {
        let m = Metrics::default();
        let ms = Duration::from_millis(3);
        m.http
            .record(&Method::GET, Some("/api/v1/payments/{id}"), 200, ms);
        m.http
            .record(&Method::GET, Some("/api/v1/payments/{id}"), 200, ms);
        for junk in 0..50 {
            let _ = junk;
            m.http.record(&Method::GET, None, 404, ms);
        }
        m.http
            .record(&Method::from_bytes(b"BREW").unwrap(), None, 404, ms);
        let out = m.render(Scrape::default());
        assert!(
            out.contains(
                "paygate_http_requests_total{method=\"GET\",route=\"/api/v1/payments/{id}\",status=\"200\"} 2\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("paygate_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 50\n"),
            "{out}"
        );
        assert!(
            out.contains("paygate_http_requests_total{method=\"other\",route=\"unmatched\",status=\"404\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "paygate_http_request_duration_seconds_bucket{le=\"0.005\",method=\"GET\",route=\"/api/v1/payments/{id}\"} 2\n"
            ),
            "{out}"
        );
        assert!(out.contains("le=\"60.0\""), "buckets reach 60 s: {out}");
        assert!(
            out.contains("_bucket{le=\"+Inf\",method=\"GET\",route=\"unmatched\"} 50\n"),
            "{out}"
        );
        assert_eq!(m.http.routes.read().unwrap().len(), 1);
        assert!(out.ends_with("# EOF\n"), "{out}");
    }

    #[test]
    fn outcomes_circuits_and_build_info_are_exposed() {
        let m = Metrics::default();
        m.outbox.delivered.inc();
        m.outbox.retries_scheduled.inc_by(2);
        m.outbox.batches.record(BatchStage::Settle, 3);
        m.outbox.batches.record(BatchStage::Settle, 1);
        m.payment_created("stripe", PaymentStatus::Pending);
        m.payments_finished("stripe", PaymentStatus::Finished, 3);
        m.webhook("stripe", "invalid_signature");
        let out = m.render(Scrape::default().with_circuit("stripe".into(), "open"));
        for line in [
            "paygate_notifier_deliveries_total{outcome=\"delivered\"} 1\n",
            "paygate_notifier_deliveries_total{outcome=\"retry\"} 2\n",
            "paygate_notifier_deliveries_total{outcome=\"failed\"} 0\n",
            "paygate_outbox_batches_total{stage=\"settle\"} 2\n",
            "paygate_outbox_batch_rows_total{stage=\"settle\"} 4\n",
            "paygate_payments_created_total{provider=\"stripe\",status=\"PAYMENT_PENDING\"} 1\n",
            "paygate_payments_finished_total{provider=\"stripe\",status=\"PAYMENT_FINISHED\"} 3\n",
            "paygate_webhooks_total{provider=\"stripe\",verdict=\"invalid_signature\"} 1\n",
            "paygate_circuit_state{provider=\"stripe\",state=\"open\"} 1\n",
            "paygate_circuit_state{provider=\"stripe\",state=\"closed\"} 0\n",
            "# TYPE paygate_build info\n",
            "# TYPE process_cpu_seconds counter\n",
            "# TYPE paygate_notifier_attempt_duration_seconds histogram\n",
        ] {
            assert!(out.contains(line), "{line:?} missing from:\n{out}");
        }
        assert_eq!(out.matches("# EOF").count(), 1);
    }
}
