//! The access log: one line per request (API.md, "Running outside the
//! demo"), written by tower-http's `TraceLayer` when the response's head is
//! ready. Its span, `request`, holds the request id, method, matched route
//! and path, and the merchant once a key named one; the line adds the
//! status and the latency. Target `paygate::access`, level `info`
//! (`RUST_LOG=info,paygate::access=off` turns it off). Every other line
//! logged while handling the request is inside the same span.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::Response;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnBodyChunk, DefaultOnEos, MakeSpan, OnResponse, TraceLayer};
use tracing::Span;

tokio::task_local! {
    /// The merchant the request's key named, 0 until one did.
    static MERCHANT: AtomicI64;
}

/// Runs `request` with room to note its merchant ([`note_merchant`]).
pub async fn with_merchant_note<F: Future>(request: F) -> F::Output {
    MERCHANT.scope(AtomicI64::new(0), request).await
}

/// Notes the merchant the request's key belongs to, for its access line.
pub fn note_merchant(id: i64) {
    let _ = MERCHANT.try_with(|merchant| merchant.store(id, Ordering::Relaxed));
}

/// tower-http's trace layer, making the `request` span and the access line.
pub type AccessLogLayer = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    RequestSpan,
    (),
    AccessLine,
    DefaultOnBodyChunk,
    DefaultOnEos,
    (),
>;

/// The access log's layer: inside the layer that assigns the request id.
pub fn layer() -> AccessLogLayer {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_request(())
        .on_response(AccessLine)
        .on_failure(())
}

/// Makes the `request` span.
#[derive(Clone, Copy, Debug)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("", MatchedPath::as_str);
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            method = %request.method(),
            route,
            path = %request.uri().path(),
            merchant_id = tracing::field::Empty,
        );
        crate::telemetry::continue_trace(&span, request.headers());
        span
    }
}

/// Writes the access line.
#[derive(Clone, Copy, Debug)]
pub struct AccessLine;

impl<B> OnResponse<B> for AccessLine {
    fn on_response(self, response: &Response<B>, latency: Duration, span: &Span) {
        let merchant = MERCHANT
            .try_with(|merchant| merchant.load(Ordering::Relaxed))
            .unwrap_or(0);
        if merchant != 0 {
            span.record("merchant_id", merchant);
        }
        tracing::info!(
            target: "paygate::access",
            status = response.status().as_u16(),
            latency_ms = latency.as_secs_f64() * 1000.0,
            "request"
        );
    }
}
