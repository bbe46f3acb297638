//! Serving a router over TCP with the timeouts a slow or idle client cannot
//! outwait: every listener (the merchant API, the admin API, the demo's
//! sandbox provider and shop) goes through [`serve`].
//!
//! - **Header**: a connection must deliver a whole request head within
//!   `header` of its first byte (and of its opening).
//! - **Idle**: a kept-alive connection with no request in flight is closed
//!   after `idle` without a byte.
//! - **Body**: a request's body must arrive whole within `body` of its head
//!   (408 `request_timeout` otherwise).
//! - **Request**: a handler that has not answered within `request` is
//!   answered 503 `service_unavailable` and dropped.
//!
//! The header and idle deadlines live on the connection's socket
//! ([`Watched`]), which knows from the service when a request is in flight;
//! the body and request deadlines are the connection's service's
//! ([`Entry`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::parse_duration;
use crate::foreground::Foreground;
use crate::http::error::{ApiError, REQUEST_ID};
use crate::http::{access_log, middleware};

/// The four deadlines of every listener (see the module's documentation).
#[derive(Clone, Debug, clap::Args)]
pub struct ServerTimeouts {
    /// How long a client may take to send a request's head (from the
    /// connection's opening, or the head's first byte).
    #[arg(long = "http-header-timeout", env = "PAYGATE_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header: Duration,
    /// How long a client may take to send a request's body, after its head.
    #[arg(long = "http-body-timeout", env = "PAYGATE_HTTP_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body: Duration,
    /// How long a kept-alive connection may wait for its next request.
    #[arg(long = "http-idle-timeout", env = "PAYGATE_HTTP_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle: Duration,
    /// How long a request may take in all, body included, before it is
    /// answered 503 `service_unavailable`.
    #[arg(long = "http-request-timeout", env = "PAYGATE_HTTP_REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub request: Duration,
    /// How long a stop (SIGTERM) waits for the requests in flight, and the
    /// outbox's publishes and the notifier's deliveries, before it cuts
    /// them (nothing is lost: leases and the broker hand them to another
    /// host). Keep it under the orchestrator's grace period (Kubernetes:
    /// 30 s).
    #[arg(long = "shutdown-timeout", env = "PAYGATE_SHUTDOWN_TIMEOUT", default_value = "25s", value_parser = parse_duration)]
    pub drain: Duration,
}

impl Default for ServerTimeouts {
    fn default() -> Self {
        Self {
            header: Duration::from_secs(10),
            body: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            request: Duration::from_secs(60),
            drain: Duration::from_secs(25),
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets the requests
/// in flight finish (each within its request deadline, all within the
/// drain deadline). Handlers see the peer's address as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    timeouts: ServerTimeouts,
    shutdown: CancellationToken,
) {
    serve_counted(listener, router, timeouts, None, shutdown).await
}

/// [`serve`], with `foreground`, if given, counting the requests in flight.
pub async fn serve_counted(
    listener: TcpListener,
    router: Router,
    timeouts: ServerTimeouts,
    foreground: Option<Foreground>,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // The header deadline is the socket's (it must also see idle time).
    http.timer(TokioTimer::new()).header_read_timeout(None);
    // Held to cut the connections still open at the drain deadline.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or the like: wait, don't spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let requests = Arc::new(InFlight::default());
        let service = connection_service(Entry {
            router: router.clone(),
            peer,
            requests: requests.clone(),
            foreground: foreground.clone(),
            body: timeouts.body,
            request: timeouts.request,
        });
        let io = TokioIo::new(Watched::new(stream, requests, &timeouts));
        let connection = graceful.watch(http.serve_connection(io, service));
        connections.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection closed");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(timeouts.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            drain = ?timeouts.drain,
            "requests still in flight at PAYGATE_SHUTDOWN_TIMEOUT: their connections are cut"
        );
        connections.abort_all();
    }
}

/// What every request on a listener gets before its router sees it, in the
/// connection's own service rather than as layers (each `from_fn` layer
/// boxes the request's future and clones the services inside it, per
/// request; docs/benchmarks/notes/api.md): the peer's address, the request
/// id (assigned, scoped over the request as a task-local, echoed on the
/// answer), the body and request deadlines, and the count of requests in
/// flight, for the socket's deadlines and for the merchant API's
/// [`Foreground`].
struct Entry {
    router: Router,
    peer: SocketAddr,
    requests: Arc<InFlight>,
    foreground: Option<Foreground>,
    body: Duration,
    request: Duration,
}

impl Entry {
    async fn handle(&self, request: hyper::Request<hyper::body::Incoming>) -> Response {
        let (mut parts, incoming) = request.into_parts();
        parts.extensions.insert(ConnectInfo(self.peer));
        let id = middleware::assign_request_id(&mut parts.headers);
        let api = parts.uri.path().starts_with("/api/");
        let deadline = Instant::now() + self.body;
        let request = Request::from_parts(
            parts,
            Body::new(BodyDeadline::new(Body::new(incoming), deadline)),
        );
        let handled = REQUEST_ID.scope(
            id.clone(),
            access_log::with_merchant_note(self.router.clone().oneshot(request)),
        );
        let mut response = match tokio::time::timeout(self.request, handled).await {
            Ok(Ok(response)) => response,
            Ok(Err(never)) => match never {},
            Err(_) => {
                tracing::warn!(timeout = ?self.request, request_id = %id, "request timed out");
                let mut response = REQUEST_ID.sync_scope(id.clone(), || {
                    ApiError::ServiceUnavailable(
                        "the request took longer than the request timeout".into(),
                    )
                    .into_response()
                });
                // The headers every answer carries; HSTS is the merchant
                // router's setting, and a browser keeps it from any answer.
                middleware::secure(response.headers_mut(), api, &Default::default());
                response
            }
        };
        middleware::echo_request_id(&mut response, &id);
        response
    }
}

/// One connection's service: each request through [`Entry`], counted in
/// flight from the moment hyper hands it over until it is answered or
/// dropped.
fn connection_service(
    entry: Entry,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response, std::convert::Infallible>> + Send,
> + Clone {
    let entry = Arc::new(entry);
    hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let in_flight = (
            entry.requests.start(),
            entry.foreground.as_ref().map(Foreground::enter),
        );
        let entry = entry.clone();
        async move {
            let response = entry.handle(request).await;
            drop(in_flight);
            Ok(response)
        }
    })
}

/// Requests in flight on one connection, and how many have finished.
#[derive(Default)]
struct InFlight {
    running: AtomicUsize,
    finished: AtomicU64,
    /// The connection's task as it last read: woken when a request ends,
    /// so the socket arms its idle deadline even if no byte comes.
    reader: std::sync::Mutex<Option<std::task::Waker>>,
}

impl InFlight {
    fn start(self: &Arc<Self>) -> Started {
        self.running.fetch_add(1, Ordering::SeqCst);
        Started(self.clone())
    }
}

/// A request in flight; dropping it (answered or cancelled) ends it.
struct Started(Arc<InFlight>);

impl Drop for Started {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::SeqCst);
        self.0.running.fetch_sub(1, Ordering::SeqCst);
        let reader = self.0.reader.lock().map(|mut r| r.take());
        if let Ok(Some(reader)) = reader {
            reader.wake();
        }
    }
}

/// What a connection with no request in flight is waiting for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// The next request's first byte (the idle deadline runs).
    NextRequest,
    /// The rest of a request's head (the header deadline runs).
    Head,
}

/// A socket that times out reads while no request is in flight: the idle
/// deadline between requests, the header deadline once one has begun.
struct Watched {
    stream: TcpStream,
    requests: Arc<InFlight>,
    waiting: Waiting,
    deadline: Pin<Box<Sleep>>,
    finished_seen: u64,
    header: Duration,
    idle: Duration,
}

impl Watched {
    fn new(stream: TcpStream, requests: Arc<InFlight>, timeouts: &ServerTimeouts) -> Self {
        Self {
            stream,
            requests,
            // A new connection owes its first request's head.
            waiting: Waiting::Head,
            deadline: Box::pin(tokio::time::sleep(timeouts.header)),
            finished_seen: 0,
            header: timeouts.header,
            idle: timeouts.idle,
        }
    }

    fn wait_for(&mut self, waiting: Waiting) {
        self.waiting = waiting;
        let after = match waiting {
            Waiting::NextRequest => self.idle,
            Waiting::Head => self.header,
        };
        self.deadline.as_mut().reset(Instant::now() + after);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Ok(mut reader) = this.requests.reader.lock()
            && !reader.as_ref().is_some_and(|r| r.will_wake(cx.waker()))
        {
            *reader = Some(cx.waker().clone());
        }
        if this.requests.running.load(Ordering::SeqCst) > 0 {
            // The body and request deadlines watch a request in flight.
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        }
        let finished = this.requests.finished.load(Ordering::SeqCst);
        if finished != this.finished_seen {
            this.finished_seen = finished;
            this.wait_for(Waiting::NextRequest);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && this.waiting == Waiting::NextRequest {
                    this.wait_for(Waiting::Head);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                ready!(this.deadline.as_mut().poll(cx));
                let what = match this.waiting {
                    Waiting::NextRequest => "idle",
                    Waiting::Head => "request head",
                };
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{what} timeout"),
                )))
            }
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A request body that fails once its deadline has passed, so a client
/// that trickles its body is answered 408 instead of holding the request.
struct BodyDeadline {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
}

/// The error a body past its deadline reads as; [`BodyTimedOut::is`]
/// recognises it behind axum's wrapping.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

impl BodyTimedOut {
    /// Whether `error` (a body or extractor error) is, at its root, this.
    pub fn is(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut source = Some(error);
        while let Some(error) = source {
            if error.is::<BodyTimedOut>() {
                return true;
            }
            source = error.source();
        }
        false
    }
}

impl BodyDeadline {
    fn new(inner: Body, deadline: Instant) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

impl http_body::Body for BodyDeadline {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                ready!(this.deadline.as_mut().poll(cx));
                Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))))
            }
            ready => ready,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
