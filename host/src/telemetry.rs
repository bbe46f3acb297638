//! Logging and traces: JSON lines in production, readable lines on a
//! terminal, and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, every span
//! (request, handler, saga step, plugin call) exported over OTLP/HTTP with
//! the W3C `traceparent` of the request that caused it. The subscriber is
//! built by [`subscriber`] for any sink, so a test can capture exactly what
//! production writes.

use std::any::TypeId;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::{Subscriber, span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

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
    // No OpenTelemetry context is attached on each entry of a span (each
    // poll of an instrumented future): paygate reads a span's context from
    // the span itself (`trace_headers`), and attaching it on every poll cost
    // more than building the spans (docs/BENCHMARKS.md, "Access log and
    // trace export").
    let exported = traces.map(|tracer| {
        EventsFromWarn(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_location(false)
                .with_threads(false)
                .with_tracked_inactivity(false)
                .with_context_activation(false),
        )
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
                    .with_span_list(true)
                    .fmt_fields(SplicedJsonFields),
            ),
        ),
    }
}

/// A span's fields as one JSON object, as tracing-subscriber's `JsonFields`
/// writes them, except that a field recorded later (the handler's
/// merchant, the plugin call's fuel, the access line's merchant) is
/// spliced into the object already written. `JsonFields` parses that
/// object and writes it out again on every record: 1.7% of the host's CPU
/// samples per create with the log on (docs/benchmarks/notes/tracing.md,
/// "session 25"). A field recorded twice appears twice in the
/// stored object; a line reads it back as a map, so the later value wins,
/// as before.
struct SplicedJsonFields;

impl<'w> FormatFields<'w> for SplicedJsonFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> std::fmt::Result {
        JsonFields::new().format_fields(writer, fields)
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &span::Record<'_>,
    ) -> std::fmt::Result {
        let mut added = String::new();
        JsonFields::new().format_fields(Writer::new(&mut added), fields)?;
        splice_json_object(&mut current.fields, &added);
        Ok(())
    }
}

/// Adds the members of the JSON object `added` to the JSON object
/// `current` (either may be empty or `{}`).
fn splice_json_object(current: &mut String, added: &str) {
    let members = added
        .strip_prefix('{')
        .and_then(|a| a.strip_suffix('}'))
        .unwrap_or_default();
    if members.is_empty() {
        return;
    }
    match current.strip_suffix('}') {
        Some(open) if open != "{" => {
            current.truncate(open.len());
            current.push(',');
            current.push_str(members);
            current.push('}');
        }
        _ => {
            current.clear();
            current.push_str(added);
        }
    }
}

/// `L` with only WARN and ERROR events: every span, fewer events. A layer
/// of its own rather than a per-layer filter, which would be asked about
/// the span on each entry and exit, that is on every poll.
///
/// Nor does `L` hear of a span's entries and exits. With context
/// activation and busy/idle timing off, tracing-opentelemetry does one
/// thing on them: on every exit it looks the span up, locks its data and
/// reads the clock to note that exit as the span's end. An instrumented
/// future exits its span on every poll, and a create's polls pass through
/// up to eight nested spans: 3% of the host's CPU samples per create, a
/// sixth of all that tracing cost (docs/benchmarks/notes/tracing.md,
/// "session 25"). Without it a
/// span ends when it closes, as its last handle is dropped: for a future,
/// right after its last poll.
struct EventsFromWarn<L>(L);

impl<S, L> Layer<S> for EventsFromWarn<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.0.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.0.on_layer(subscriber);
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        self.0.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        self.0.on_record(id, values, ctx);
    }

    fn on_follows_from(&self, id: &span::Id, follows: &span::Id, ctx: Context<'_, S>) {
        self.0.on_follows_from(id, follows, ctx);
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() <= tracing::Level::WARN {
            self.0.on_event(event, ctx);
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        self.0.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &span::Id, new: &span::Id, ctx: Context<'_, S>) {
        self.0.on_id_change(old, new, ctx);
    }

    // `OpenTelemetrySpanExt` finds the OpenTelemetry layer by downcasting.
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            Some(std::ptr::from_ref(self).cast())
        } else {
            // SAFETY: the inner layer answers for its own types, as a
            // layer that is not wrapped would.
            unsafe { self.0.downcast_raw(id) }
        }
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TraceContextExt as _;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SpanData, SpanExporter};

    use super::*;

    /// Keeps what it is given.
    #[derive(Clone, Debug, Default)]
    struct Kept(Arc<Mutex<Vec<SpanData>>>);

    impl Kept {
        /// An `info` subscriber exporting every span it keeps into a new `Kept`.
        fn subscriber() -> (Self, Box<dyn Subscriber + Send + Sync>) {
            let kept = Kept::default();
            let provider = SdkTracerProvider::builder()
                .with_simple_exporter(kept.clone())
                .build();
            let subscriber = subscriber_exporting(
                EnvFilter::new("info"),
                Format::Json,
                std::io::sink,
                Some(provider.tracer("test")),
            );
            (kept, subscriber)
        }
    }

    impl SpanExporter for Kept {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    #[test]
    fn exported_spans_carry_warnings_not_info_lines_and_know_their_context() {
        let (kept, subscriber) = Kept::subscriber();
        let (outer_trace, inner_parent) = tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("outer");
            let _outer = outer.enter();
            let outer_trace = outer.context().span().span_context().trace_id();
            let inner = tracing::info_span!("inner");
            inner.in_scope(|| {
                tracing::info!("an info line");
                tracing::warn!("a warning");
            });
            (
                outer_trace,
                inner.context().span().span_context().trace_id(),
            )
        });
        let spans = kept.0.lock().unwrap().clone();
        let inner = spans
            .iter()
            .find(|s| s.name == "inner")
            .expect("inner exported");
        let outer = spans
            .iter()
            .find(|s| s.name == "outer")
            .expect("outer exported");
        assert_eq!(inner.parent_span_id, outer.span_context.span_id());
        assert_eq!(inner.span_context.trace_id(), outer_trace);
        assert_eq!(
            inner_parent, outer_trace,
            "a span's context is read from it"
        );
        let events: Vec<_> = inner
            .events
            .events
            .iter()
            .map(|e| e.name.to_string())
            .collect();
        assert_eq!(events, ["a warning"], "only WARN and up become span events");
    }

    /// What a `Json` subscriber writes, one parsed line per event.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn parsed(&self) -> Vec<serde_json::Value> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
    }

    #[test]
    fn fields_recorded_later_join_their_span_in_every_line() {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = subscriber(EnvFilter::new("info"), Format::Json, move || sink.clone());
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!(
                "outer",
                route = "r\"1}",
                merchant_id = tracing::field::Empty,
                fuel = tracing::field::Empty,
            );
            let _outer = outer.enter();
            outer.record("merchant_id", 7);
            outer.record("fuel", 10);
            outer.record("fuel", 12);
            let empty = tracing::info_span!("empty", late = tracing::field::Empty);
            empty.record("late", "{\"x\":1}");
            empty.in_scope(|| tracing::info!("inside"));
        });
        let line = &lines.parsed()[0];
        let outer = &line["spans"][0];
        assert_eq!(outer["name"], "outer", "{line}");
        assert_eq!(outer["route"], "r\"1}");
        assert_eq!(outer["merchant_id"], 7);
        assert_eq!(
            outer["fuel"], 12,
            "the later value of a field recorded twice"
        );
        assert_eq!(line["span"]["late"], "{\"x\":1}", "{line}");
    }

    #[test]
    fn splicing_keeps_one_json_object() {
        for (current, added, expected) in [
            ("", "{\"a\":1}", "{\"a\":1}"),
            ("{}", "{\"a\":1}", "{\"a\":1}"),
            ("{\"a\":1}", "{}", "{\"a\":1}"),
            ("{\"a\":1}", "{\"b\":\"}\"}", "{\"a\":1,\"b\":\"}\"}"),
        ] {
            let mut spliced = current.to_owned();
            splice_json_object(&mut spliced, added);
            assert_eq!(spliced, expected);
            let _: serde_json::Value = serde_json::from_str(&spliced).unwrap();
        }
    }

    #[test]
    fn an_exported_span_ends_when_it_closes_not_at_its_last_exit() {
        let (kept, subscriber) = Kept::subscriber();
        let held = std::time::Duration::from_millis(30);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("held");
            span.in_scope(|| {});
            std::thread::sleep(held);
            drop(span);
        });
        let spans = kept.0.lock().unwrap().clone();
        let span = spans.iter().find(|s| s.name == "held").expect("exported");
        let lasted = span
            .end_time
            .duration_since(span.start_time)
            .expect("ends after it starts");
        assert!(
            lasted >= held,
            "ended after {lasted:?}, closed after {held:?}"
        );
    }
}
