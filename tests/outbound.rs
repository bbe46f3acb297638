//! The `http` import's client against providers on loopback: HTTPS to a
//! provider signed by the operator's CA, a certificate nobody vouched for,
//! answers over the plugin's cap, and credentials in a URL.

use std::sync::{Arc, Mutex};

use paygate::plugins::bindings::ProviderError;
use paygate::plugins::{HttpClient, http_client, http_client_trusting};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use crate::faults::services::TestPki;
use crate::helpers::{Runtime, payment};

/// The chaos guest's `http` mode GETs its `url` and names the status, or
/// fails with the import's error.
const CHAOS: &str = r#"
version = "1.0.0"
kind = "provider-adapter"
allowed_hosts = ["localhost", "127.0.0.1"]
[limits]
timeout_ms = 5000
http_timeout_ms = 4000
http_max_response_kib = 1
"#;

/// A provider on loopback answering every request with `answer`, over TLS
/// when given an acceptor, and keeping each request's head.
struct Provider {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Provider {
    async fn start(tls: Option<TlsAcceptor>, answer: impl Into<Arc<[u8]>>) -> Self {
        let answer: Arc<[u8]> = answer.into();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (tls, seen, answer) = (tls.clone(), seen.clone(), answer.clone());
                tokio::spawn(async move {
                    match tls {
                        // A client that refuses the certificate ends the
                        // handshake; nothing is answered.
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(tcp).await {
                                answer_one(stream, &answer, &seen).await;
                            }
                        }
                        None => answer_one(tcp, &answer, &seen).await,
                    }
                });
            }
        });
        Self { port, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

async fn answer_one<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    answer: &[u8],
    seen: &Mutex<Vec<String>>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    seen.lock()
        .unwrap()
        .push(String::from_utf8_lossy(&head).into_owned());
    let _ = stream.write_all(answer).await;
    let _ = stream.shutdown().await;
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";

/// The server's side of the test PKI: localhost's certificate and key.
fn acceptor(pki: &TestPki) -> TlsAcceptor {
    let (cert, key) = pki.server_files();
    let chain = certificates(&cert);
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// Every certificate in the PEM file at `path`.
fn certificates(path: &std::path::Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// The chaos guest's GET of `url` through `http`: the status it saw, or
/// the import's error as the guest names it.
async fn get(http: HttpClient, url: &str) -> Result<String, String> {
    let rt = Runtime::with_http(http);
    rt.install("chaos", "chaos", CHAOS);
    let chaos = rt.set.require("chaos").unwrap();
    let answer = chaos
        .create_payment("req-out", &payment(1, &[("chaos", "http"), ("url", url)]))
        .await
        .expect("the call itself succeeds");
    match answer {
        Ok(session) => Ok(session.reference),
        Err(ProviderError::Misconfigured(error)) => Err(error),
        Err(other) => panic!("unexpected provider error {other:?}"),
    }
}

#[tokio::test]
async fn a_provider_signed_by_the_operators_ca_is_reached_over_https() {
    let pki = TestPki::generate().await;
    let provider = Provider::start(Some(acceptor(&pki)), OK).await;
    let url = format!("https://localhost:{}/v1/sessions?x=1#frag", provider.port);

    let status = get(http_client_trusting(certificates(&pki.ca_file())), &url).await;
    assert_eq!(status, Ok("200".to_owned()));
    let heads = provider.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let head = heads[0].to_ascii_lowercase();
    // The path and query as written, never the fragment; the host named;
    // the call's request id passed on.
    assert!(
        head.starts_with("get /v1/sessions?x=1 http/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!("\r\nhost: localhost:{}\r\n", provider.port)),
        "{head}"
    );
    assert!(head.contains("\r\nx-request-id: req-out\r\n"), "{head}");
}

#[tokio::test]
async fn a_certificate_nobody_vouched_for_is_a_transport_error_without_detail() {
    let pki = TestPki::generate().await;
    let provider = Provider::start(Some(acceptor(&pki)), OK).await;
    let url = format!("https://localhost:{}/", provider.port);

    let error = get(http_client(), &url).await.unwrap_err();
    // The kind only: not the URL, not rustls's words about the chain.
    assert_eq!(
        error,
        r#"HttpError::Transport("could not connect to the host")"#
    );
    assert!(provider.heads().is_empty(), "the request was sent");
}

#[tokio::test]
async fn an_answer_over_the_plugins_cap_is_too_large_declared_or_streamed() {
    // 1 KiB is the spec's cap: a declared 4 KiB is refused before reading,
    // and a chunked answer as it passes the cap.
    let declared = [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 4096\r\n\r\n"[..],
        &[b'x'; 4096],
    ]
    .concat();
    let chunk = format!("400\r\n{}\r\n", "y".repeat(0x400));
    let chunked = |chunks: usize| {
        format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{}0\r\n\r\n",
            chunk.repeat(chunks)
        )
        .into_bytes()
    };
    for answer in [declared, chunked(2)] {
        let provider = Provider::start(None, answer).await;
        let url = format!("http://127.0.0.1:{}/", provider.port);
        assert_eq!(
            get(http_client(), &url).await,
            Err("HttpError::TooLarge".to_owned())
        );
    }
    // Exactly the cap is not over it.
    let provider = Provider::start(None, chunked(1)).await;
    let url = format!("http://127.0.0.1:{}/", provider.port);
    assert_eq!(get(http_client(), &url).await, Ok("200".to_owned()));
}

#[tokio::test]
async fn credentials_in_a_url_are_refused_and_never_sent() {
    let provider = Provider::start(None, OK).await;
    for url in [
        format!("http://user:secret@127.0.0.1:{}/", provider.port),
        format!("http://user@127.0.0.1:{}/", provider.port),
    ] {
        let error = get(http_client(), &url).await.unwrap_err();
        assert!(
            error.starts_with("HttpError::InvalidRequest(") && error.contains("credentials"),
            "{error}"
        );
        assert!(!error.contains("secret"), "{error}");
    }
    assert!(provider.heads().is_empty(), "a request was sent");
}
