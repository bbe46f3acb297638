//! Logging: JSON lines in production, readable lines on a terminal. The
//! subscriber is built by [`subscriber`] for any sink, so a test can capture
//! exactly what production writes.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink);
    match format {
        Format::Pretty => Box::new(builder.finish()),
        Format::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(true)
                .finish(),
        ),
    }
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
    let _ = tracing::subscriber::set_global_default(subscriber(filter, format, std::io::stderr));
}
