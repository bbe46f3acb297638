//! The sandbox's Adyen dialect over HTTP (notes/adyen-wire.md): Checkout
//! API payments and refunds behind `X-API-Key`, Adyen's error bodies, the
//! hosted page's `AUTHORISATION` notifications and the `REFUND` ones.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{ADYEN_KEY, Sandbox, adyen_item, client, gateway, received};

pub(super) fn payment_body(reference: &str) -> Value {
    json!({"merchantAccount": "PaygateTests", "reference": reference,
           "amount": {"value": 1000, "currency": "EUR"},
           "paymentMethod": {"type": "ideal"}, "returnUrl": "https://shop.example/return",
           "channel": "Web", "merchantOrderReference": "1042",
           "metadata": {"order": "A-1"}})
}

/// `POST path` with Adyen's headers: the API key `key` and, if given, an
/// idempotency key.
async fn post(
    sandbox: &Sandbox,
    path: &str,
    key: Option<&str>,
    idempotency: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = client().post(sandbox.at(path)).json(body);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    if let Some(idempotency) = idempotency {
        request = request.header("idempotency-key", idempotency);
    }
    request.send().await.unwrap()
}

/// Opens a payment and returns Adyen's answer.
async fn open(sandbox: &Sandbox, reference: &str) -> Value {
    let answer = post(
        sandbox,
        "/v71/payments",
        Some(ADYEN_KEY),
        Some(&format!("idem-{reference}")),
        &payment_body(reference),
    )
    .await;
    assert_eq!(answer.status(), 200);
    answer.json().await.unwrap()
}

/// Opens a payment and clicks `button` on its page; returns its
/// `pspReference`.
async fn open_and_click(sandbox: &Sandbox, reference: &str, button: &str) -> String {
    let opened = open(sandbox, reference).await;
    let url = opened["action"]["url"].as_str().unwrap();
    let clicked = client()
        .post(format!("{url}/{button}"))
        .send()
        .await
        .unwrap();
    assert_eq!(clicked.status(), 303);
    assert_eq!(clicked.headers()["location"], "https://shop.example/return");
    opened["pspReference"].as_str().unwrap().to_owned()
}

/// Asserts an Adyen error body of `status` and `kind`; returns its message.
async fn adyen_error(response: reqwest::Response, status: u16, kind: &str) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["errorType"], kind, "{body}");
    assert!(body["errorCode"].is_string(), "{body}");
    body["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_missing_or_wrong_api_key_gets_adyens_401() {
    let sandbox = Sandbox::start("http://127.0.0.1:9").await;
    for key in [None, Some("adyen_someone_elses_key"), Some("")] {
        let refused = post(&sandbox, "/v71/payments", key, None, &payment_body("1")).await;
        adyen_error(refused, 401, "security").await;
        let refund = json!({"merchantAccount": "PaygateTests",
                            "amount": {"value": 100, "currency": "EUR"}});
        let path = "/v71/payments/ABCDEFGHIJKLMNOP/refunds";
        let refused = post(&sandbox, path, key, None, &refund).await;
        adyen_error(refused, 401, "security").await;
    }
}

#[tokio::test]
async fn a_payment_redirects_the_shopper_to_the_sandboxs_page_once_per_key() {
    let sandbox = Sandbox::start("http://127.0.0.1:9").await;
    let first = post(
        &sandbox,
        "/v71/payments",
        Some(ADYEN_KEY),
        Some("key-1"),
        &payment_body("41"),
    )
    .await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["idempotency-key"], "key-1");
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["resultCode"], "RedirectShopper");
    let psp = first["pspReference"].as_str().unwrap();
    assert_eq!(psp.len(), 16, "{psp}");
    assert!(
        psp.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
        "{psp}"
    );
    assert_eq!(
        (&first["action"]["type"], &first["action"]["method"]),
        (&json!("redirect"), &json!("GET"))
    );
    assert_eq!(first["action"]["url"], sandbox.at(&format!("/pay/{psp}")));
    let page = client()
        .get(first["action"]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let page = page.text().await.unwrap();
    assert!(
        page.contains("10.00 EUR") && page.contains("1042"),
        "{page}"
    );

    // The same key and body: the first answer again. Another body: refused.
    let again = post(
        &sandbox,
        "/v71/payments",
        Some(ADYEN_KEY),
        Some("key-1"),
        &payment_body("41"),
    )
    .await;
    assert_eq!(again.json::<Value>().await.unwrap()["pspReference"], psp);
    let other = post(
        &sandbox,
        "/v71/payments",
        Some(ADYEN_KEY),
        Some("key-1"),
        &payment_body("42"),
    )
    .await;
    adyen_error(other, 422, "validation").await;
    let fresh = open(&sandbox, "41").await;
    assert_ne!(fresh["pspReference"], psp);
}

#[tokio::test]
async fn invalid_input_gets_adyens_422_naming_the_field() {
    let sandbox = Sandbox::start("http://127.0.0.1:9").await;
    let mut cases = Vec::new();
    for field in ["returnUrl", "reference", "paymentMethod"] {
        let mut body = payment_body("1");
        body.as_object_mut().unwrap().remove(field);
        cases.push((body, field));
    }
    let mut zero = payment_body("1");
    zero["amount"]["value"] = json!(0);
    cases.push((zero, "amount"));
    let mut script = payment_body("1");
    script["returnUrl"] = json!("javascript:alert(1)");
    cases.push((script, "returnUrl"));
    for (body, field) in cases {
        let refused = post(&sandbox, "/v71/payments", Some(ADYEN_KEY), None, &body).await;
        let message = adyen_error(refused, 422, "validation").await;
        assert!(message.contains(field), "{field}: {message}");
    }
    let not_json = client()
        .post(sandbox.at("/v71/payments"))
        .header("x-api-key", ADYEN_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    adyen_error(not_json, 422, "validation").await;
    let long_key = "k".repeat(65);
    let refused = post(
        &sandbox,
        "/v71/payments",
        Some(ADYEN_KEY),
        Some(&long_key),
        &payment_body("1"),
    )
    .await;
    adyen_error(refused, 422, "validation").await;
}

#[tokio::test]
async fn the_page_sends_signed_authorisation_notifications() {
    let gateway = gateway().await;
    let sandbox = Sandbox::start(&gateway.url()).await;
    let paid = open_and_click(&sandbox, "51", "pay").await;
    let item = adyen_item(&received(&gateway, 1).await[0]);
    assert_eq!(item["eventCode"], "AUTHORISATION");
    assert_eq!(item["success"], "true");
    assert_eq!(item["pspReference"], paid.as_str());
    assert_eq!(item["merchantReference"], "51");
    assert_eq!(item["merchantAccountCode"], "PaygateTests");
    assert_eq!(item["amount"], json!({"value": 1000, "currency": "EUR"}));
    assert_eq!(item["paymentMethod"], "ideal");

    let declined = open_and_click(&sandbox, "52", "decline").await;
    let item = adyen_item(&received(&gateway, 2).await[1]);
    assert_eq!(
        (&item["pspReference"], &item["success"]),
        (&json!(declined), &json!("false"))
    );

    // A lost notification: the payment settles, nothing is sent.
    let opened = open(&sandbox, "53").await;
    let url = opened["action"]["url"].as_str().unwrap();
    let skipped = client()
        .post(format!("{url}/pay?webhook=skip"))
        .send()
        .await
        .unwrap();
    assert_eq!(skipped.status(), 303);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gateway.requests().len(), 2);
}

/// Refunds a part of `psp` as paygate's refund `refund_id`.
async fn refund(sandbox: &Sandbox, psp: &str, value: u64, refund_id: u64) -> reqwest::Response {
    let body = json!({"merchantAccount": "PaygateTests",
                      "amount": {"value": value, "currency": "EUR"},
                      "reference": format!("paygate-refund-{refund_id}"),
                      "merchantRefundReason": "CUSTOMER REQUEST"});
    let key = format!("paygate-refund-{refund_id}");
    let path = format!("/v71/payments/{psp}/refunds");
    post(sandbox, &path, Some(ADYEN_KEY), Some(&key), &body).await
}

#[tokio::test]
async fn refunds_are_received_then_announced_by_signed_refund_notifications() {
    let gateway = gateway().await;
    let sandbox = Sandbox::start(&gateway.url()).await;
    let psp = open_and_click(&sandbox, "61", "pay").await;
    received(&gateway, 1).await;

    let taken = refund(&sandbox, &psp, 250, 9).await;
    assert_eq!(taken.status(), 201);
    // As Adyen may, the notification came before the answer.
    assert_eq!(gateway.requests().len(), 2, "{:?}", gateway.requests());
    let taken: Value = taken.json().await.unwrap();
    assert_eq!(taken["status"], "received");
    assert_eq!(taken["paymentPspReference"], psp.as_str());
    assert_eq!(taken["reference"], "paygate-refund-9");
    assert_eq!(taken["amount"], json!({"value": 250, "currency": "EUR"}));
    let refund_psp = taken["pspReference"].as_str().unwrap().to_owned();
    assert_eq!(refund_psp.len(), 16);
    // The adapter's retry gets the same refund back.
    let again: Value = refund(&sandbox, &psp, 250, 9).await.json().await.unwrap();
    assert_eq!(again["pspReference"], refund_psp.as_str());

    let item = adyen_item(&received(&gateway, 2).await[1]);
    assert_eq!(item["eventCode"], "REFUND");
    assert_eq!(item["success"], "true");
    assert_eq!(item["pspReference"], refund_psp.as_str());
    assert_eq!(item["originalReference"], psp.as_str());
    assert_eq!(item["merchantReference"], "paygate-refund-9");
    assert_eq!(item["amount"], json!({"value": 250, "currency": "EUR"}));

    // Minor units ending in 13: received, then announced as failed.
    let declined = refund(&sandbox, &psp, 113, 10).await;
    assert_eq!(declined.status(), 201);
    let item = adyen_item(&received(&gateway, 3).await[2]);
    assert_eq!(
        (&item["merchantReference"], &item["success"]),
        (&json!("paygate-refund-10"), &json!("false"))
    );

    // Ending in 42: announced a second later.
    let started = Instant::now();
    assert_eq!(refund(&sandbox, &psp, 42, 11).await.status(), 201);
    let item = adyen_item(&received(&gateway, 4).await[3]);
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(item["success"], "true");

    // More than is left (10.00 - 2.50 - 0.42; the failed one gave nothing).
    let too_much = refund(&sandbox, &psp, 709, 12).await;
    let message = adyen_error(too_much, 422, "validation").await;
    assert!(message.contains("7.08"), "{message}");
    // A payment never paid has nothing to give back.
    let unpaid = open(&sandbox, "62").await;
    let unpaid = unpaid["pspReference"].as_str().unwrap();
    adyen_error(refund(&sandbox, unpaid, 100, 13).await, 422, "validation").await;
}
