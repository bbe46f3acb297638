//! The client behind the `http` import: hyper's pooled HTTP/1.1 client over
//! rustls, and nothing a plugin could use to reach past its allow-list: no
//! redirects followed, no proxy from the environment, no cookies. It used to
//! be `reqwest`, whose layers (its request builder, its own timeout and
//! redirect handling, a second URL-to-URI conversion) cost a create about a
//! third of the provider exchange's host CPU, a twentieth of the host's, for
//! features the import never used (docs/benchmarks/notes/api.md, session 34).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::CertificateDer;

/// How long an idle connection to a provider is kept for the next call.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// An outbound HTTP(S) client for plugins. Cloning shares its connections.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// The request type [`HttpClient::send`] takes.
pub(crate) type OutboundRequest = http::Request<Full<Bytes>>;

impl HttpClient {
    /// A client trusting the system's roots and `extra_roots` besides (the
    /// operator's CA, for providers behind a private PKI). A certificate
    /// that does not parse is skipped, as a system root that does not is.
    pub fn new(extra_roots: Vec<CertificateDer<'static>>) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::debug!(%error, "a system root certificate could not be read");
        }
        roots.add_parsable_certificates(native.certs);
        roots.add_parsable_certificates(extra_roots);
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports rustls's default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();

        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self { client }
    }

    /// Sends `request` (an absolute URI) and answers the response's head
    /// with its body still to read.
    pub(crate) async fn send(
        &self,
        request: OutboundRequest,
    ) -> Result<http::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error> {
        self.client.request(request).await
    }
}
