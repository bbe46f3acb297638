//! Logging and traces: JSON lines in production, readable lines on a
//! terminal, and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, every span
//! (request, handler, saga step, plugin call) exported over OTLP/HTTP with
//! the W3C `traceparent` of the request that caused it. The subscriber is
//! built by [`subscriber`] for any sink, so a test can capture exactly what
//! production writes.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer as _};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line, with the current span's fields and its
    /// ancestors' (request id, merchant, payment, plugin ...).
    Json,
    /// Human-readable lines, for a terminal.
    Pretty,
}

/// The host's subscriber: `filter` decides what is written, in `format`,
/// to `sink`.
pub fn subscriber<W>(
    filter: EnvFilter,
    format: Format,
    sink: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    subscriber_exporting(filter, format, sink, None)
}

/// [`subscriber`], with the spans it keeps also exported through `traces`.
pub fn subscriber_exporting<W>(
    filter: EnvFilter,
    format: Format,
    sink: W,
    traces: Option<SdkTracer>,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // Spans with their own fields only: source location, thread and
    // busy/idle attributes doubled the bytes exported and cost 3% of the
    // create throughput (docs/BENCHMARKS.md, "Access log and trace export").
    // Log lines become span events only from WARN up: the info ones (the
    // access line above all) are in the log already, and copying each
    // into its span cost more than the spans themselves.
    let exported = traces.map(|tracer| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(filter_fn(|meta| {
                meta.is_span() || *meta.level() <= tracing::Level::WARN
            }))
    });
    let registry = tracing_subscriber::registry().with(filter).with(exported);
    let lines = tracing_subscriber::fmt::layer().with_writer(sink);
    match format {
        Format::Pretty => Box::new(registry.with(lines)),
        Format::Json => Box::new(
            registry.with(
                lines
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(true),
            ),
        ),
    }
}

/// The exporter's provider, kept to flush it when the process stops.
static TRACES: OnceLock<SdkTracerProvider> = OnceLock::new();
/// Whether spans are exported (and `traceparent` passed on).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// The OTLP/HTTP exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the
/// standard `OTEL_*` variables tune it: `OTEL_SERVICE_NAME`,
/// `OTEL_BSP_SCHEDULE_DELAY` ...).
fn otlp_tracer() -> Option<SdkTracer> {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok()?;
    if endpoint.trim().is_empty() {
        return None;
    }
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(exporter) => exporter,
        Err(error) => {
            eprintln!("paygate: traces not exported: OTEL_EXPORTER_OTLP_ENDPOINT: {error}");
            return None;
        }
    };
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(
            std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "paygate".to_owned()),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("paygate");
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let _ = TRACES.set(provider);
    EXPORTING.store(true, Ordering::Relaxed);
    Some(tracer)
}

/// Sends the spans still buffered (call as the process stops).
pub fn flush_traces() {
    if let Some(provider) = TRACES.get() {
        let _ = provider.shutdown();
    }
}

/// The request's headers, as OpenTelemetry's propagator reads them.
struct Headers<'a>(&'a axum::http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` a child of the W3C `traceparent` in `headers`, if any.
pub fn continue_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if !EXPORTING.load(Ordering::Relaxed) {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let _ = span.set_parent(parent);
}

/// The W3C `traceparent` (and `tracestate`) of the current span, for a call
/// paygate makes: a provider's API through a plugin, a merchant's callback.
pub fn trace_headers() -> Vec<(&'static str, String)> {
    if !EXPORTING.load(Ordering::Relaxed) {
        return Vec::new();
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut carrier);
    ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|name| Some((name, carrier.remove(name)?)))
        .filter(|(_, value)| !value.is_empty())
        .collect()
}

/// Installs the global subscriber once; later calls are no-ops. `RUST_LOG`
/// filters (default `info`).
pub fn init() {
    init_with_default("info");
}

/// Like [`init`], with `default` as the filter when `RUST_LOG` is unset:
/// to stderr, pretty on a terminal and JSON elsewhere.
pub fn init_with_default(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let format = if std::io::stderr().is_terminal() {
        Format::Pretty
    } else {
        Format::Json
    };
    let subscriber = subscriber_exporting(filter, format, std::io::stderr, otlp_tracer());
    let _ = tracing::subscriber::set_global_default(subscriber);
}
