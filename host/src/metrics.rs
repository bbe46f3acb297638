//! Counters and latency histograms, rendered in the Prometheus text format
//! on the admin listener's `GET /metrics`: per-plugin calls, errors by kind,
//! call latency and fuel; HTTP requests by status class and latency; the
//! outbox's rows by state and the producer's and notifier's work.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::outbox::OutboxStats;
use crate::plugins::{Histogram, PluginSet};

/// HTTP requests of the merchant API, by status class.
#[derive(Default)]
pub struct HttpMetrics {
    by_class: [AtomicU64; 5],
    pub latency: Histogram,
}

impl HttpMetrics {
    pub fn record(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        self.latency.observe(elapsed);
    }
}

/// The outbox producer's and the notifier's work.
#[derive(Default)]
pub struct OutboxMetrics {
    pub published: AtomicU64,
    pub publish_failures: AtomicU64,
    pub delivered: AtomicU64,
    pub retries_scheduled: AtomicU64,
    pub failed: AtomicU64,
    pub dropped_duplicates: AtomicU64,
    /// Notifications put off because their merchant held its whole share.
    pub deferred: AtomicU64,
    pub delivery_latency: Histogram,
}

/// Everything this process counts.
#[derive(Default)]
pub struct Metrics {
    pub http: HttpMetrics,
    pub outbox: OutboxMetrics,
    /// Times `/health` (or `/readyz`) asked every backend; its answers in
    /// between are cached.
    pub health_checks: AtomicU64,
    /// Verified provider events that said a payment finished or failed
    /// after it had expired: money may have moved, an operator must look.
    pub events_after_expiry: AtomicU64,
}

fn counter(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
}

fn gauge(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

fn histogram(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
}

/// Label values escaped as Prometheus requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// The whole exposition; `outbox` is read from the database by the caller.
    pub fn render(&self, plugins: &PluginSet, outbox: Option<&OutboxStats>) -> String {
        let mut out = String::new();
        self.render_plugins(&mut out, plugins);
        counter(
            &mut out,
            "paygate_health_checks_total",
            "Health checks that asked every backend (answers in between are cached).",
        );
        let checks = self.health_checks.load(Ordering::Relaxed);
        let _ = writeln!(out, "paygate_health_checks_total {checks}");
        counter(
            &mut out,
            "paygate_provider_events_after_expiry_total",
            "Provider events that settled a payment after it expired (money may have moved: look).",
        );
        let late = self.events_after_expiry.load(Ordering::Relaxed);
        let _ = writeln!(out, "paygate_provider_events_after_expiry_total {late}");
        counter(
            &mut out,
            "paygate_http_requests_total",
            "Merchant API requests by status class.",
        );
        for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
            let n = self.http.by_class[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "paygate_http_requests_total{{class=\"{class}\"}} {n}");
        }
        histogram(
            &mut out,
            "paygate_http_request_duration_seconds",
            "Merchant API request latency.",
        );
        self.http
            .latency
            .render(&mut out, "paygate_http_request_duration_seconds", "");
        let o = &self.outbox;
        for (name, help, value) in [
            (
                "paygate_outbox_published_total",
                "Notifications published to RabbitMQ and confirmed.",
                &o.published,
            ),
            (
                "paygate_outbox_publish_failures_total",
                "Notifications the broker did not confirm (given back).",
                &o.publish_failures,
            ),
            (
                "paygate_notifier_delivered_total",
                "Notifications the merchant accepted (2xx).",
                &o.delivered,
            ),
            (
                "paygate_notifier_retries_total",
                "Failed attempts with a retry scheduled.",
                &o.retries_scheduled,
            ),
            (
                "paygate_notifier_failed_total",
                "Notifications given up after the last attempt.",
                &o.failed,
            ),
            (
                "paygate_notifier_duplicates_dropped_total",
                "Redelivered or stale messages not delivered again.",
                &o.dropped_duplicates,
            ),
            (
                "paygate_notifier_deferred_total",
                "Notifications put off because their merchant held its whole share of delivery slots.",
                &o.deferred,
            ),
        ] {
            counter(&mut out, name, help);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        histogram(
            &mut out,
            "paygate_notifier_attempt_duration_seconds",
            "Time of one delivery attempt.",
        );
        o.delivery_latency
            .render(&mut out, "paygate_notifier_attempt_duration_seconds", "");
        if let Some(stats) = outbox {
            gauge(&mut out, "paygate_outbox_rows", "Outbox rows by state.");
            for (state, n) in [
                ("pending", stats.pending),
                ("retrying", stats.retrying),
                ("processing", stats.processing),
                ("delivered", stats.delivered),
                ("failed", stats.failed),
            ] {
                let _ = writeln!(out, "paygate_outbox_rows{{state=\"{state}\"}} {n}");
            }
            gauge(
                &mut out,
                "paygate_outbox_oldest_pending_seconds",
                "Age of the oldest row waiting to be published.",
            );
            let age = stats.oldest_pending_age_seconds.unwrap_or(0.0);
            let _ = writeln!(out, "paygate_outbox_oldest_pending_seconds {age}");
        }
        out
    }

    fn render_plugins(&self, out: &mut String, plugins: &PluginSet) {
        let loaded: Vec<_> = plugins
            .names()
            .into_iter()
            .filter_map(|name| plugins.get(&name).map(|p| (name, p)))
            .collect();
        let labels = |name: &str, p: &crate::plugins::LoadedPlugin| {
            format!(
                "plugin=\"{}\",version=\"{}\"",
                escape(name),
                escape(&p.ctx.version)
            )
        };
        counter(
            out,
            "paygate_plugin_calls_total",
            "Calls into a plugin version.",
        );
        for (name, p) in &loaded {
            let _ = writeln!(
                out,
                "paygate_plugin_calls_total{{{}}} {}",
                labels(name, p),
                p.stats.calls.load(Ordering::Relaxed)
            );
        }
        counter(
            out,
            "paygate_plugin_errors_total",
            "Failed plugin calls by kind (deadline, fuel, memory, trap, capability_denied, ...).",
        );
        for (name, p) in &loaded {
            for (kind, n) in p.stats.errors_by_kind() {
                let _ = writeln!(
                    out,
                    "paygate_plugin_errors_total{{{},kind=\"{kind}\"}} {n}",
                    labels(name, p)
                );
            }
        }
        counter(
            out,
            "paygate_plugin_fuel_consumed_total",
            "Fuel burnt by a plugin version's calls (when metering is on).",
        );
        for (name, p) in &loaded {
            let _ = writeln!(
                out,
                "paygate_plugin_fuel_consumed_total{{{}}} {}",
                labels(name, p),
                p.stats.fuel_used.load(Ordering::Relaxed)
            );
        }
        histogram(
            out,
            "paygate_plugin_call_duration_seconds",
            "Plugin call latency, sandbox set-up included.",
        );
        for (name, p) in &loaded {
            p.stats.latency.render(
                out,
                "paygate_plugin_call_duration_seconds",
                &labels(name, p),
            );
        }
        let cache = plugins.loader().cache_stats();
        for (name, help, value) in [
            (
                "paygate_plugin_cache_hits_total",
                "Plugin loads that used authenticated compiled code from the compile cache.",
                &cache.hits,
            ),
            (
                "paygate_plugin_cache_compiles_total",
                "Plugin loads that compiled the component.",
                &cache.compiled,
            ),
            (
                "paygate_plugin_cache_rejected_total",
                "Compile cache entries refused because their authentication tag did not check \
                 (changed, replaced, or written without this host's key); each was recompiled.",
                &cache.rejected,
            ),
        ] {
            counter(out, name, help);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
    }
}
