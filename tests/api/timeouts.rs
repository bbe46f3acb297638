//! Security review, finding 7: no listener had server-side timeouts, so a
//! client that opened connections and sent nothing, half a request head,
//! or a trickle of body held them (and their tasks) forever. Each test
//! plays that client against a host whose deadlines are one second.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::app::{ExtraPlugin, LAX_RATE_LIMIT, TestApp, bind, provider_spec, spawn_app_with};

/// Far longer than any deadline here: a connection still open after it
/// was never going to be closed.
const NEVER: Duration = Duration::from_secs(30);

async fn app_with_short_deadlines(extra: Vec<ExtraPlugin>) -> TestApp {
    spawn_app_with(LAX_RATE_LIMIT, extra, |mut c| {
        c.http.header = Duration::from_secs(1);
        c.http.body = Duration::from_secs(1);
        c.http.idle = Duration::from_secs(1);
        c.http.request = Duration::from_secs(2);
        c
    })
    .await
}

fn addr(url: &str) -> &str {
    url.trim_start_matches("http://")
}

/// Reads until the server closes the connection; what it sent, or a panic
/// if it kept the connection open.
async fn until_closed(stream: &mut TcpStream, what: &str) -> String {
    let mut received = Vec::new();
    match tokio::time::timeout(NEVER, stream.read_to_end(&mut received)).await {
        Ok(_) => String::from_utf8_lossy(&received).into_owned(),
        Err(_) => panic!("{what}: the connection was still open after {NEVER:?}"),
    }
}

#[tokio::test]
async fn a_connection_that_sends_nothing_or_half_a_head_is_closed() {
    let app = app_with_short_deadlines(Vec::new()).await;
    for url in [&app.url, &app.admin_url] {
        let mut silent = TcpStream::connect(addr(url)).await.unwrap();
        let said = until_closed(&mut silent, "a silent connection").await;
        assert!(!said.contains("200 OK"), "{said}");

        let mut slow = TcpStream::connect(addr(url)).await.unwrap();
        slow.write_all(b"GET /health HTTP/1.1\r\nHost: paygate\r\nX-Slow: ")
            .await
            .unwrap();
        let said = until_closed(&mut slow, "half a request head").await;
        assert!(!said.contains("200 OK"), "{said}");
    }
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_its_answer() {
    let app = app_with_short_deadlines(Vec::new()).await;
    let mut stream = TcpStream::connect(addr(&app.url)).await.unwrap();
    stream
        .write_all(b"GET /openapi.json HTTP/1.1\r\nHost: paygate\r\n\r\n")
        .await
        .unwrap();
    // The answer comes, then the connection, kept alive, is closed idle.
    let said = until_closed(&mut stream, "an idle connection").await;
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");
}

#[tokio::test]
async fn a_trickled_body_is_answered_408_request_timeout() {
    let app = app_with_short_deadlines(Vec::new()).await;
    let mut stream = TcpStream::connect(addr(&app.url)).await.unwrap();
    let head = format!(
        "POST /api/v1/payments HTTP/1.1\r\nHost: paygate\r\nX-Api-Key: {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"order_id\"",
        app.merchant.api_key
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let said = until_closed(&mut stream, "a trickled body").await;
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    let body: Value = serde_json::from_str(said.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"], "request_timeout", "{body}");
    assert_eq!(app.payment_count().await, 0, "nothing was created");
}

#[tokio::test]
async fn a_request_past_its_deadline_is_answered_503() {
    // A provider that accepts connections and never answers.
    let provider = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let provider_addr = provider.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = provider.accept().await {
            held.push(stream);
        }
    });
    let spec = format!(
        "{}[limits]\ntimeout_ms = 20000\nhttp_timeout_ms = 20000\n",
        provider_spec(&provider_addr)
    );
    let app = app_with_short_deadlines(vec![("silent", "sandbox_adapter", spec)]).await;
    bind(&app.providers, "silent", "silent").await;
    let mut body = app.body(7);
    body["alias"] = "silent".into();
    let created = tokio::time::timeout(NEVER, app.create(&body))
        .await
        .expect("answered within the request deadline");
    assert_eq!(created.status, 503, "{}", created.body);
    assert_eq!(
        created.body["error"], "service_unavailable",
        "{}",
        created.body
    );
    // The deadline's own answer still names the request, in its header and
    // its body, as every other answer does.
    let id = created.headers["x-request-id"].to_str().unwrap();
    assert!(!id.is_empty());
    assert_eq!(created.body["request_id"], id, "{}", created.body);
    // And the headers every answer carries (API.md, "Conventions").
    assert_eq!(created.headers["x-content-type-options"], "nosniff");
    assert_eq!(created.headers["x-frame-options"], "DENY");
    assert_eq!(created.headers["cache-control"], "no-store");
}
