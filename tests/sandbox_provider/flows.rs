//! Both provider APIs end to end over HTTP: create, the page, the clicks
//! and the webhooks they send.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Sandbox, assert_internal_signature, client, gateway, received, stripe_event};

pub(super) fn link_body(payment_id: u64, return_url: Option<&str>) -> Value {
    json!({"payment_id": payment_id, "merchant_id": 7, "order_id": 1000 + payment_id,
           "amount": "1", "price": "10.00", "currency": "EUR",
           "idempotency_key": format!("idem-{payment_id}"), "return_url": return_url})
}

pub(super) async fn create_link(sandbox: &Sandbox, body: &Value) -> reqwest::Response {
    client()
        .post(sandbox.at("/payment-links"))
        .json(body)
        .send()
        .await
        .unwrap()
}

pub(super) async fn create_session(
    sandbox: &Sandbox,
    key: &str,
    client_reference_id: &str,
) -> Value {
    let form = [
        ("mode", "payment"),
        ("client_reference_id", client_reference_id),
        (
            "success_url",
            "https://shop.example/ok?session={CHECKOUT_SESSION_ID}",
        ),
        ("cancel_url", "https://shop.example/cancelled"),
        ("line_items[0][quantity]", "1"),
        ("line_items[0][price_data][currency]", "eur"),
        ("line_items[0][price_data][unit_amount]", "1050"),
        ("metadata[order_id]", "1042"),
    ];
    let response = client()
        .post(sandbox.at("/v1/checkout/sessions"))
        .bearer_auth("sk_test_anything")
        .header("idempotency-key", key)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

pub(super) async fn get(url: &str) -> (u16, String) {
    let response = client().get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

pub(super) async fn click(sandbox: &Sandbox, id: &str, button: &str) -> reqwest::Response {
    let url = sandbox.at(&format!("/pay/{id}/{button}"));
    client().post(url).send().await.unwrap()
}

#[tokio::test]
async fn payment_link_paid_once_sends_one_signed_finished_webhook() {
    let gateway = gateway().await;
    let sandbox = Sandbox::start(&gateway.url()).await;

    let created = create_link(&sandbox, &link_body(42, None)).await;
    assert_eq!(created.status(), 201);
    let link: Value = created.json().await.unwrap();
    let id = link["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("pl_") && id.len() == 27, "{id}");
    assert!(id[3..].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(link["payment_url"], sandbox.at(&format!("/pay/{id}")));

    let (status, page) = get(link["payment_url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"pay\"") && page.contains("id=\"decline\""));
    assert!(
        page.contains("10.00 EUR") && page.contains("1042"),
        "{page}"
    );

    let status_url = sandbox.at(&format!("/payment-links/{id}"));
    let (_, shown) = get(&status_url).await;
    assert_eq!(
        serde_json::from_str::<Value>(&shown).unwrap()["status"],
        "pending"
    );

    // No return URL: the click answers with the result page.
    let paid = click(&sandbox, &id, "pay").await;
    assert_eq!(paid.status(), 200);
    assert!(paid.text().await.unwrap().contains("Payment completed"));
    let webhooks = received(&gateway, 1).await;
    let webhook = &webhooks[0];
    assert_eq!(
        (webhook.method.as_str(), webhook.path.as_str()),
        ("POST", "/api/v1/payments/webhook")
    );
    assert_eq!(
        webhook.body,
        format!(r#"{{"payment_id":42,"status":"finished","reference":"{id}"}}"#)
    );
    assert_internal_signature(webhook);

    // Later clicks, on either button, change nothing and send nothing.
    assert_eq!(click(&sandbox, &id, "pay").await.status(), 200);
    assert_eq!(click(&sandbox, &id, "decline").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gateway.requests().len(), 1);
    let (_, shown) = get(&status_url).await;
    assert_eq!(
        serde_json::from_str::<Value>(&shown).unwrap()["status"],
        "finished"
    );
    let (_, page) = get(&sandbox.at(&format!("/pay/{id}"))).await;
    assert!(!page.contains("id=\"pay\"") && page.contains("Payment completed"));
    assert!(page.contains("delivered (HTTP 200"), "{page}");
}

#[tokio::test]
async fn payment_link_declined_redirects_and_sends_failed() {
    let gateway = gateway().await;
    let sandbox = Sandbox::start(&gateway.url()).await;
    let body = link_body(43, Some("https://shop.example/return?order=1043"));
    let link: Value = create_link(&sandbox, &body).await.json().await.unwrap();
    let id = link["id"].as_str().unwrap();

    let declined = click(&sandbox, id, "decline").await;
    assert_eq!(declined.status(), 303);
    assert_eq!(
        declined.headers()["location"],
        "https://shop.example/return?order=1043"
    );
    let webhook = &received(&gateway, 1).await[0];
    assert_eq!(
        webhook.body,
        format!(r#"{{"payment_id":43,"status":"failed","reference":"{id}"}}"#)
    );
    assert_internal_signature(webhook);
    let (_, shown) = get(&sandbox.at(&format!("/payment-links/{id}"))).await;
    assert_eq!(
        serde_json::from_str::<Value>(&shown).unwrap()["status"],
        "failed"
    );
}

#[tokio::test]
async fn checkout_session_paid_sends_a_signed_completed_event() {
    let gateway = gateway().await;
    let sandbox = Sandbox::start(&gateway.url()).await;
    let session = create_session(&sandbox, "key-paid", "44").await;
    let id = session["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("cs_test_") && id.len() == 32, "{id}");
    assert_eq!(session["object"], "checkout.session");
    assert_eq!(session["url"], sandbox.at(&format!("/pay/{id}")));
    assert_eq!(
        (&session["status"], &session["payment_status"]),
        (&json!("open"), &json!("unpaid"))
    );
    assert_eq!(session["client_reference_id"], "44");
    assert_eq!(
        (&session["amount_total"], &session["currency"]),
        (&json!(1050), &json!("eur"))
    );
    assert_eq!(session["metadata"], json!({"order_id": "1042"}));

    let (_, page) = get(session["url"].as_str().unwrap()).await;
    assert!(
        page.contains("10.50 EUR") && page.contains("id=\"pay\""),
        "{page}"
    );

    let paid = click(&sandbox, &id, "pay").await;
    assert_eq!(paid.status(), 303);
    let location = format!("https://shop.example/ok?session={id}");
    assert_eq!(paid.headers()["location"], location.as_str());
    let webhook = &received(&gateway, 1).await[0];
    assert_eq!(webhook.path, "/api/v1/payments/webhook/stripe");
    let event = stripe_event(webhook);
    assert!(event["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(
        (&event["object"], &event["type"]),
        (&json!("event"), &json!("checkout.session.completed"))
    );
    assert!(event["created"].is_u64());
    let object = &event["data"]["object"];
    assert_eq!(
        (&object["id"], &object["client_reference_id"]),
        (&json!(id), &json!("44"))
    );
    assert_eq!(
        (&object["status"], &object["payment_status"]),
        (&json!("complete"), &json!("paid"))
    );

    assert_eq!(click(&sandbox, &id, "pay").await.status(), 303);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gateway.requests().len(), 1, "a second click sends nothing");
    let shown: Value = client()
        .get(sandbox.at(&format!("/v1/checkout/sessions/{id}")))
        .bearer_auth("sk_test_anything")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&shown["status"], &shown["payment_status"]),
        (&json!("complete"), &json!("paid"))
    );
}

#[tokio::test]
async fn checkout_session_declined_sends_an_expired_event() {
    let gateway = gateway().await;
    let sandbox = Sandbox::start(&gateway.url()).await;
    let session = create_session(&sandbox, "key-declined", "45").await;
    let id = session["id"].as_str().unwrap();
    let declined = click(&sandbox, id, "decline").await;
    assert_eq!(declined.status(), 303);
    assert_eq!(
        declined.headers()["location"],
        "https://shop.example/cancelled"
    );
    let event = stripe_event(&received(&gateway, 1).await[0]);
    assert_eq!(event["type"], "checkout.session.expired");
    let object = &event["data"]["object"];
    assert_eq!(
        (&object["status"], &object["payment_status"]),
        (&json!("expired"), &json!("unpaid"))
    );
}
