//! The API benchmark's load generator (host/benches/api/wire.rs) against a
//! real host and against answers it must refuse: what the bench counts as
//! answered was answered, on one keep-alive connection per client, and an
//! answer it cannot frame is an error rather than a hang or a miscount.

#[path = "../../host/benches/api/wire.rs"]
mod wire;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wire::{Wire, WireError, write_request};

use super::app::spawn_app;

const WAIT: Duration = Duration::from_secs(10);

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("a JSON body")
}

#[tokio::test]
async fn the_bench_client_reads_the_hosts_answers_on_one_connection() {
    let app = spawn_app().await;
    let addr: SocketAddr = app.url.trim_start_matches("http://").parse().unwrap();
    let mut wire = Wire::connect(addr).await.unwrap();
    let mut request = Vec::new();

    let body = app.body(1).to_string();
    let write_key = app.merchant.api_key.as_str();
    let headers = [
        ("content-type", "application/json"),
        ("x-api-key", write_key),
    ];
    write_request(
        &mut request,
        "POST",
        "/api/v1/payments",
        addr,
        &headers,
        &body,
    );
    let (status, created) = wire.exchange(&request, WAIT).await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&created));
    let id = json(&created)["payment_id"].as_i64().expect("a payment id");

    // The same connection carries the reads, a refusal among them.
    let read_key = app.merchant.read_api_key.as_str();
    for (path, want) in [
        (format!("/api/v1/payments/{id}/show"), 200),
        (format!("/api/v1/payments/{}/show", id + 1_000_000), 404),
        (format!("/api/v1/payments/{id}/show"), 200),
    ] {
        request.clear();
        write_request(
            &mut request,
            "GET",
            &path,
            addr,
            &[("x-api-key", read_key)],
            "",
        );
        let (status, answer) = wire.exchange(&request, WAIT).await.unwrap();
        assert_eq!(status, want, "{path}: {}", String::from_utf8_lossy(&answer));
        let answer = json(&answer);
        if want == 200 {
            assert_eq!(answer["payment_id"], id, "{answer}");
        } else {
            assert_eq!(answer["error"], "not_found", "{answer}");
        }
        assert!(wire.reusable());
    }
}

/// A server on loopback that answers each connection's first request with
/// `answer`, then closes it.
async fn answering(answer: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(answer).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_answer_the_bench_client_cannot_frame_is_an_error() {
    let mut request = Vec::new();
    let cases: [(&[u8], &str); 4] = [
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            "chunked",
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n{}", "no Content-Length"),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}",
            "cut short",
        ),
        (b"not http at all\r\n\r\n", "not HTTP"),
    ];
    for (answer, what) in cases {
        let addr = answering(answer).await;
        request.clear();
        write_request(&mut request, "GET", "/", addr, &[], "");
        let mut wire = Wire::connect(addr).await.unwrap();
        let outcome = wire.exchange(&request, WAIT).await;
        // Counted as the bench counts it: a body it could not read.
        let kind = outcome.as_ref().map_err(WireError::kind);
        assert!(
            matches!(kind, Err("body" | "request")),
            "{what}: {outcome:?}"
        );
    }

    // A framed answer that closes the connection is read, and the
    // connection is not used again.
    let addr = answering(
        b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}",
    )
    .await;
    request.clear();
    write_request(&mut request, "GET", "/", addr, &[], "");
    let mut wire = Wire::connect(addr).await.unwrap();
    let (status, body) = wire.exchange(&request, WAIT).await.unwrap();
    assert_eq!((status, &body[..]), (503, &b"{}"[..]));
    assert!(!wire.reusable());
}
