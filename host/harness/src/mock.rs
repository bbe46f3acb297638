//! The mock provider: a real HTTP server on loopback that answers every
//! request with the current case's fixture and records what it was sent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::fixtures::FixtureResponse;

/// One request the mock provider received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Upper-case HTTP method.
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// Header pairs; names are lower-case.
    pub headers: Vec<(String, String)>,
    /// The body, up to [`MAX_RECORDED_BODY`] bytes (empty past that).
    pub body: Vec<u8>,
}

/// Headers whose values are credentials: `plugin run` shows only their
/// scheme word (`Bearer`, `Basic`), since a run may be given real secrets.
const CREDENTIAL_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
];

impl Received {
    /// The request as `plugin run` prints it: method, path, headers (credentials
    /// redacted) and the body, as text when it is UTF-8.
    pub fn to_json(&self) -> serde_json::Value {
        let headers: serde_json::Map<String, serde_json::Value> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if CREDENTIAL_HEADERS.contains(&name.as_str()) {
                    match value.split_once(' ') {
                        Some((scheme, _)) => format!("{scheme} <redacted>"),
                        None => "<redacted>".to_owned(),
                    }
                } else {
                    value.clone()
                };
                (name.clone(), shown.into())
            })
            .collect();
        let body = match std::str::from_utf8(&self.body) {
            Ok(text) => serde_json::Value::from(text),
            Err(_) => format!("<{} bytes, not UTF-8>", self.body.len()).into(),
        };
        serde_json::json!({
            "method": self.method,
            "path": self.path,
            "headers": headers,
            "body": body,
        })
    }
}

/// The largest request body the mock records; a provider request is far
/// smaller.
pub const MAX_RECORDED_BODY: usize = 1 << 20;

#[derive(Default)]
struct Shared {
    answer: Option<FixtureResponse>,
    received: Vec<Received>,
}

type SharedState = Arc<Mutex<Shared>>;

/// The server; it stops when dropped.
pub struct MockProvider {
    addr: SocketAddr,
    shared: SharedState,
    server: tokio::task::JoinHandle<()>,
}

impl MockProvider {
    /// Binds a free loopback port and starts serving.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = SharedState::default();
        let server = tokio::spawn(serve(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `allowed_hosts` entry that lets a plugin reach this server.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Answers with `response` from now on (`None`: a 500 naming the
    /// missing fixture) and forgets what was received.
    pub fn answer_with(&self, response: Option<FixtureResponse>) {
        let mut shared = self.lock();
        shared.answer = response;
        shared.received.clear();
    }

    /// What was received since the last [`MockProvider::answer_with`].
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Accepts connections until the task is aborted; each is served on its own
/// task so a slow case never holds up the next connection.
async fn serve(listener: tokio::net::TcpListener, shared: SharedState) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "harness mock provider: accept failed");
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&shared, request).await) }
            });
            // A plugin that gives up on a slow answer closes the connection
            // mid-way; that is a case's business, not an error here.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Answer = Response<Full<Bytes>>;

async fn answer(shared: &SharedState, request: Request<Incoming>) -> Answer {
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, MAX_RECORDED_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    let answer = {
        let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
        shared.received.push(Received {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            headers,
            body,
        });
        shared.answer.clone()
    };
    let Some(answer) = answer else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "paygate harness: no fixture for this call",
        );
    };
    if answer.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(answer.delay_ms)).await;
    }
    let (body, content_type) = answer.body_bytes();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if let Some(content_type) = content_type {
        headers.insert("content-type", HeaderValue::from_static(content_type));
    }
    for (name, value) in &answer.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.insert(name, value);
        }
    }
    response
}

fn plain(status: StatusCode, text: &'static str) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}
