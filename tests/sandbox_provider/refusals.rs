//! What the sandbox refuses or repeats: idempotent creates, bad input,
//! unknown ids, missing keys, webhook retries and shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::any;
use serde_json::{Value, json};

use super::flows::{click, create_link, create_session, get, link_body};
use super::{Sandbox, assert_internal_signature, client, received};
use crate::helpers::FakeServer;
#[tokio::test]
async fn an_idempotency_key_opens_one_payment() {
    let sandbox = Sandbox::start("http://127.0.0.1:9").await;
    let first: Value = create_link(&sandbox, &link_body(50, None))
        .await
        .json()
        .await
        .unwrap();
    // The body's key alone finds the same link; the header wins over it.
    let again = create_link(&sandbox, &link_body(50, None)).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    let by_header = client()
        .post(sandbox.at("/payment-links"))
        .header("idempotency-key", "header-key")
        .json(&link_body(51, None))
        .send()
        .await
        .unwrap();
    let by_header: Value = by_header.json().await.unwrap();
    assert_ne!(by_header["id"], first["id"]);
    let mut other = link_body(52, None);
    other["idempotency_key"] = json!("idem-50");
    let conflict = create_link(&sandbox, &other).await;
    assert_eq!(conflict.status(), 409);

    let one = create_session(&sandbox, "same-key", "60").await;
    let two = create_session(&sandbox, "same-key", "60").await;
    let three = create_session(&sandbox, "other-key", "60").await;
    assert_eq!(one["id"], two["id"]);
    assert_ne!(one["id"], three["id"]);
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let sandbox = Sandbox::start("http://127.0.0.1:9").await;
    let mut bad = link_body(1, None);
    bad["price"] = json!("-3");
    let refused = create_link(&sandbox, &bad).await;
    assert_eq!(refused.status(), 400);
    let error: Value = refused.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("price"),
        "{error}"
    );
    let (status, body) = get(&sandbox.at("/payment-links/pl_unknown")).await;
    assert_eq!(status, 404);
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"]["message"].is_string());

    for (method, path) in [
        ("GET", "/pay/pl_unknown"),
        ("POST", "/pay/nope/pay"),
        ("POST", "/pay/nope/decline"),
    ] {
        let request = client().request(method.parse().unwrap(), sandbox.at(path));
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 404, "{method} {path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(response.text().await.unwrap().contains("Payment not found"));
    }

    let sessions = sandbox.at("/v1/checkout/sessions");
    for request in [
        client()
            .post(&sessions)
            .form(&[("line_items[0][price_data][unit_amount]", "1")]),
        client()
            .post(&sessions)
            .bearer_auth("")
            .form(&[("mode", "payment")]),
        client().get(format!("{sessions}/cs_test_x")),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "invalid_request_error");
        assert!(error["error"]["message"].is_string());
    }
    let invalid = client()
        .post(&sessions)
        .bearer_auth("sk_test_x")
        .form(&[("line_items[0][price_data][currency]", "eur")])
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    let error: Value = invalid.json().await.unwrap();
    assert_eq!(
        error["error"]["param"],
        "line_items[0][price_data][unit_amount]"
    );
}

#[tokio::test]
async fn delivery_retries_until_the_gateway_accepts() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let flaky = FakeServer::start(Router::new().fallback(any(move || {
        let counter = counter.clone();
        async move {
            match counter.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::OK,
            }
        }
    })))
    .await;
    let sandbox = Sandbox::start(&flaky.url()).await;
    let link: Value = create_link(&sandbox, &link_body(70, None))
        .await
        .json()
        .await
        .unwrap();
    let id = link["id"].as_str().unwrap();
    click(&sandbox, id, "pay").await;
    let attempts = received(&flaky, 3).await;
    assert!(attempts.iter().all(|a| a.body == attempts[0].body));
    attempts.iter().for_each(assert_internal_signature);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3, "no attempt after success");
    let (_, page) = get(&sandbox.at(&format!("/pay/{id}"))).await;
    assert!(
        page.contains("delivered (HTTP 200) (attempt 3 of 4)"),
        "{page}"
    );

    // A gateway that is not there: four attempts, then the page says so.
    let unreachable = Sandbox::start("http://127.0.0.1:9").await;
    let link: Value = create_link(&unreachable, &link_body(71, None))
        .await
        .json()
        .await
        .unwrap();
    let id = link["id"].as_str().unwrap();
    click(&unreachable, id, "decline").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, page) = get(&unreachable.at(&format!("/pay/{id}"))).await;
    assert!(page.contains("gave up after 4 attempts"), "{page}");
}

#[tokio::test]
async fn stops_when_cancelled() {
    let sandbox = Sandbox::start("http://127.0.0.1:9").await;
    assert_eq!(get(&sandbox.at("/health")).await.0, 200);
    sandbox.stop.cancel();
    let served = tokio::time::timeout(Duration::from_secs(5), sandbox.served).await;
    assert!(matches!(served, Ok(Ok(Ok(())))), "{served:?}");
}
