//! Shared set-up: components, runtimes and loopback fakes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use paygate::plugins::bindings::{Event, PaymentRequest, WebhookEvent};
use paygate::plugins::{
    Clock, Counters, EngineSettings, HostServices, HttpClient, Loader, PluginEngine, PluginSet,
};
use paygate_plugin_registry::PluginSpec;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The bytes of a built component, e.g. `wasm("token_bucket")`.
pub fn wasm(name: &str) -> Vec<u8> {
    let path = root().join("plugins/dist").join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run plugins/build.sh first", path.display()))
}

/// The payment events of a verifier's answer; a refund event fails the test.
pub fn payment_events(events: Vec<Event>) -> Vec<WebhookEvent> {
    events
        .into_iter()
        .map(|e| match e {
            Event::Payment(event) => event,
            Event::Refund(event) => panic!("expected a payment event, got {event:?}"),
        })
        .collect()
}

/// A plugin runtime over in-memory counters and a fixed clock, with its own
/// compile cache. Keep the returned directory alive as long as the set.
pub struct Runtime {
    pub set: Arc<PluginSet>,
    pub services: Arc<HostServices>,
    _cache: tempfile::TempDir,
}

impl Runtime {
    pub fn new() -> Self {
        Self::with_counters(Counters::memory())
    }

    pub fn with_counters(counters: Counters) -> Self {
        Self::with(counters, None, paygate::plugins::http_client())
    }

    /// A runtime reading specs' `file:` secrets from `dir`.
    pub fn with_secrets_dir(dir: &std::path::Path) -> Self {
        Self::with(
            Counters::memory(),
            Some(dir.to_owned()),
            paygate::plugins::http_client(),
        )
    }

    /// A runtime whose plugins' HTTP goes through `http`.
    pub fn with_http(http: HttpClient) -> Self {
        Self::with(Counters::memory(), None, http)
    }

    fn with(counters: Counters, secrets_dir: Option<PathBuf>, http: HttpClient) -> Self {
        let engine = PluginEngine::new(&EngineSettings {
            max_concurrent_calls: 100,
            fuel: true,
        })
        .expect("engine");
        let services = Arc::new(HostServices {
            http,
            counters,
            clock: Clock::fixed(1_800_000_000_000),
            named_secrets: Default::default(),
            outgoing_headers: paygate::plugins::no_outgoing_headers,
            secrets_dir,
        });
        let cache = tempfile::tempdir().expect("tempdir");
        let loader = Loader::new(
            Arc::new(engine),
            services.clone(),
            Some(cache.path().to_owned()),
        );
        Self {
            set: Arc::new(PluginSet::new(loader)),
            services,
            _cache: cache,
        }
    }

    /// Installs a built component under `name` with the spec in TOML.
    pub fn install(
        &self,
        name: &str,
        component: &str,
        spec: &str,
    ) -> Arc<paygate::plugins::LoadedPlugin> {
        let spec = PluginSpec::from_toml(spec).expect("spec");
        self.set
            .install(name, &wasm(component), &spec)
            .unwrap_or_else(|e| panic!("installing {name}: {e}"))
    }
}

/// A payment request as the host would send it.
pub fn payment(id: u64, metadata: &[(&str, &str)]) -> PaymentRequest {
    PaymentRequest {
        payment_id: id,
        merchant_id: 7,
        order_id: 1000 + id,
        amount: "1".into(),
        price: "10.00".into(),
        currency: "EUR".into(),
        idempotency_key: format!("idem-{id}"),
        return_url: Some("https://shop.example/return".into()),
        cancel_url: Some("https://shop.example/cancel".into()),
        metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// One request a fake server received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// A real HTTP server on loopback standing in for something outside paygate
/// (a provider). It records every request.
pub struct FakeServer {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// New connections to close at once, unanswered (a peer that hangs up).
    pub drop_connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl FakeServer {
    /// Serves `router`, recording requests before they reach it.
    pub async fn start(router: Router) -> Self {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = received.clone();
        let router = router.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let log = log.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let bytes = axum::body::to_bytes(body, 1 << 20)
                        .await
                        .unwrap_or_default();
                    log.lock().unwrap().push(Received {
                        method: parts.method.to_string(),
                        path: parts.uri.path().to_owned(),
                        headers: parts
                            .headers
                            .iter()
                            .map(|(k, v)| {
                                (k.to_string(), v.to_str().unwrap_or_default().to_owned())
                            })
                            .collect(),
                        body: String::from_utf8_lossy(&bytes).into_owned(),
                    });
                    next.run(axum::extract::Request::from_parts(
                        parts,
                        axum::body::Body::from(bytes),
                    ))
                    .await
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let drop_connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let listener = HangingUp {
            inner: listener,
            remaining: drop_connections.clone(),
        };
        tokio::spawn(async move { axum::serve(listener, router).await.ok() });
        Self {
            addr,
            received,
            drop_connections,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// A listener that closes the next `remaining` connections after reading
/// what the client sent, without answering.
struct HangingUp {
    inner: tokio::net::TcpListener,
    remaining: Arc<std::sync::atomic::AtomicUsize>,
}

impl axum::serve::Listener for HangingUp {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        use std::sync::atomic::Ordering;
        use tokio::io::AsyncReadExt;
        loop {
            let Ok((mut stream, addr)) = self.inner.accept().await else {
                continue;
            };
            let hang_up = self
                .remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if !hang_up {
                return (stream, addr);
            }
            let mut buf = [0u8; 4096];
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), stream.read(&mut buf))
                .await;
            drop(stream);
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}
