//! What every request passes: its request id (assigned by the server), then
//! metrics, security headers and the body guard (size and content type) in
//! one layer, in the order API.md gives.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::server::BodyTimedOut;
use crate::metrics::Metrics;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id: its `X-Request-ID` if sane, else a new UUID, which is
/// written into the headers so that every later layer sees the same one.
/// The server ([`super::server`]) assigns it before any layer, scopes it
/// over the request and echoes it on the answer, its own 503 included.
pub fn assign_request_id(headers: &mut HeaderMap) -> String {
    let sane = headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned);
    sane.unwrap_or_else(|| {
        let id = uuid::Uuid::new_v4().to_string();
        if let Ok(value) = HeaderValue::from_str(&id) {
            headers.insert(X_REQUEST_ID.clone(), value);
        }
        id
    })
}

/// Echoes `id` in the response's `X-Request-ID`.
pub fn echo_request_id(response: &mut Response, id: &str) {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
}

/// What every request passes between the access log and its handler, in
/// one layer (one boxed future and one clone of the inner service a
/// request, not three): its metrics outermost, then the security headers,
/// then the body guard.
pub struct Edge {
    pub metrics: Arc<Metrics>,
    pub hsts: Hsts,
}

/// Counts each request by method, matched route and status, and its
/// latency ([`Metrics`]); adds the security headers ([`secure`]) to every
/// answer, the body guard's refusals included; runs [`body_guard`].
pub async fn edge(State(edge): State<Arc<Edge>>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let api = request.uri().path().starts_with("/api/");
    let mut response = body_guard(request, next).await;
    secure(response.headers_mut(), api, &edge.hsts);
    edge.metrics.http.record(
        &method,
        route.as_ref().map(axum::extract::MatchedPath::as_str),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// `Strict-Transport-Security` as configured: none for a max-age of 0.
#[derive(Clone, Debug, Default)]
pub struct Hsts(Option<HeaderValue>);

impl Hsts {
    pub fn max_age(secs: u64) -> Self {
        let value = (secs > 0).then(|| format!("max-age={secs}"));
        Self(value.and_then(|v| HeaderValue::from_str(&v).ok()))
    }
}

/// `nosniff`, frame deny, HSTS when configured, and `no-store` on the API.
pub fn secure(headers: &mut HeaderMap, api: bool, hsts: &Hsts) {
    no_sniffing_or_framing(headers);
    if api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Some(value) = &hsts.0 {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, value.clone());
    }
}

/// `nosniff` and frame deny: what every answer of paygate's servers carries.
pub fn no_sniffing_or_framing(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// 413 for bodies over 1 MiB, 415 for a body that is not JSON. The body is
/// buffered here once so later layers and handlers read it from memory.
pub async fn body_guard(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return ApiError::PayloadTooLarge.into_response();
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(error) if BodyTimedOut::is(&error) => return ApiError::RequestTimeout.into_response(),
        Err(_) => return ApiError::PayloadTooLarge.into_response(),
    };
    if !bytes.is_empty() && !is_json(parts.headers.get(header::CONTENT_TYPE)) {
        return ApiError::UnsupportedMediaType.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Whether a `Content-Type` value says JSON (parameters such as a charset aside).
pub fn is_json(value: Option<&HeaderValue>) -> bool {
    let Some(v) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = v.split(';').next().unwrap_or_default().trim();
    mime.eq_ignore_ascii_case("application/json")
}
