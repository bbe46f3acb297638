//! Return URLs and metadata (API.md, "Return URLs and metadata"): checked,
//! stored, part of the idempotency fingerprint, passed to the adapter, used
//! by the sandbox provider's page, echoed in the payment.

use serde_json::{Value, json};

use super::app::{TestApp, clicker, spawn_app};

/// Clicks `button` (`pay` or `decline`) on the payment page at `url` and
/// returns where the provider sends the buyer.
async fn click(url: &str, button: &str) -> String {
    let clicked = clicker()
        .post(format!("{url}/{button}"))
        .send()
        .await
        .unwrap();
    assert_eq!(clicked.status(), 303, "{button} did not redirect");
    clicked.headers()["location"].to_str().unwrap().to_owned()
}

async fn show(app: &TestApp, id: i64) -> Value {
    let key = app.merchant.read_api_key.clone();
    let shown = app
        .get(&format!("/api/v1/payments/{id}/show"), Some(&key))
        .await;
    assert_eq!(shown.status, 200, "{:?}", shown.body);
    shown.body
}

fn fields(reply: &super::app::Reply) -> Vec<String> {
    reply.body["fields"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|e| e["field"].as_str().unwrap().into())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn bad_urls_and_metadata_are_named_and_store_nothing() {
    let app = spawn_app().await;
    let many: serde_json::Map<String, Value> =
        (0..21).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        ("return_url", json!("http://shop.example/back")),
        ("return_url", json!("javascript:alert(1)")),
        ("return_url", json!("/orders/1")),
        ("return_url", json!("https://user:pw@shop.example/")),
        ("return_url", json!(7)),
        (
            "cancel_url",
            json!(format!("https://shop.example/{}", "a".repeat(2048))),
        ),
        ("cancel_url", json!("https://shop.example/a\nb")),
        // Not ASCII: accepted, then refused by the provider as a 502, until
        // schemathesis found it.
        ("cancel_url", json!("https://\u{a3}")),
        ("return_url", json!("https://shop.example/caf\u{e9}")),
        ("metadata", json!(many)),
        ("metadata", json!({"k": 1})),
        ("metadata", json!({"": "v"})),
        ("metadata", json!({"k".repeat(41): "v"})),
        ("metadata", json!({"k": "v".repeat(501)})),
        ("metadata", json!(["k", "v"])),
        // PostgreSQL's text and jsonb cannot hold U+0000: found by
        // schemathesis as a 500.
        ("metadata", json!({"k": "a\u{0}b"})),
        ("metadata", json!({"k\u{0}": "v"})),
    ];
    for (i, (field, value)) in cases.into_iter().enumerate() {
        let mut body = app.body(100 + i as i64);
        body[field] = value.clone();
        let r = app.create(&body).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_request"),
            "{field} {value}"
        );
        assert_eq!(fields(&r), [field], "{value}");
    }
    // Every bad field at once is named at once.
    let mut body = app.body(200);
    body["return_url"] = json!("ftp://shop.example/");
    body["cancel_url"] = json!("http://shop.example/");
    body["metadata"] = json!("cart=1");
    let r = app.create(&body).await;
    assert_eq!(fields(&r), ["return_url", "cancel_url", "metadata"]);
    assert_eq!(app.payment_count().await, 0);
    assert_eq!(app.tokens_used().await, 0);
}

#[tokio::test]
async fn a_stripe_payment_carries_its_urls_and_metadata_to_the_provider_and_back() {
    let app = spawn_app().await;
    let mut body = app.body(7);
    body["alias"] = json!("stripe");
    // Stripe fills the placeholder in: it must reach it unencoded.
    let success = "https://shop.example/orders/7?session={CHECKOUT_SESSION_ID}";
    body["return_url"] = json!(success);
    body["cancel_url"] = json!("https://shop.example/orders/7/cancelled");
    body["metadata"] = json!({"cart": "c-7", "note": "gift & wrap", "payment_id": "spoof"});
    let created = app.create(&body).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let id = created.body["payment_id"].as_i64().unwrap();
    let url = created.body["payment_url"].as_str().unwrap().to_owned();

    let shown = show(&app, id).await;
    assert_eq!(shown["return_url"], success);
    assert_eq!(
        shown["cancel_url"],
        "https://shop.example/orders/7/cancelled"
    );
    assert_eq!(
        shown["metadata"],
        json!({"cart": "c-7", "note": "gift & wrap", "payment_id": "spoof"})
    );
    let key = app.merchant.read_api_key.clone();
    let listed = app.get("/api/v1/payments", Some(&key)).await;
    assert_eq!(listed.body["items"][0]["metadata"]["cart"], "c-7");

    // The sandbox's Checkout Session holds what the adapter sent: the
    // merchant's metadata beside the adapter's own keys, which it keeps.
    let session = url.rsplit('/').next().unwrap().to_owned();
    let seen: Value = app
        .client
        .get(format!(
            "{}/v1/checkout/sessions/{session}",
            app.sandbox_url
        ))
        .bearer_auth("sk_test_123")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["success_url"], success);
    assert_eq!(
        seen["cancel_url"],
        "https://shop.example/orders/7/cancelled"
    );
    let metadata = &seen["metadata"];
    assert_eq!(
        (&metadata["cart"], &metadata["note"]),
        (&json!("c-7"), &json!("gift & wrap"))
    );
    assert_eq!(
        metadata["payment_id"],
        id.to_string(),
        "the adapter's own key is kept"
    );
    let back = click(&url, "pay").await;
    assert_eq!(
        back,
        format!("https://shop.example/orders/7?session={session}")
    );

    // A retry under the same key with other metadata is another request.
    let mut first = app.body(8);
    first["metadata"] = json!({"cart": "c-8"});
    first["event_id"] = json!("redirects-8");
    let r = app.create(&first).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let again = app.create(&first).await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    first["metadata"] = json!({"cart": "c-9"});
    let other = app.create(&first).await;
    assert_eq!((other.status, other.code()), (409, "idempotency_conflict"));
    first["metadata"] = json!({"cart": "c-8"});
    first["return_url"] = json!("https://shop.example/else");
    let other = app.create(&first).await;
    assert_eq!((other.status, other.code()), (409, "idempotency_conflict"));
}

#[tokio::test]
async fn the_sandbox_sends_the_buyer_back_to_the_payments_own_urls() {
    let app = spawn_app().await;
    // Loopback http is allowed: a shop on a developer's machine.
    let mut body = app.body(1);
    body["return_url"] = json!("http://127.0.0.1:8001/orders/1");
    body["cancel_url"] = json!("http://localhost:8001/orders/1?cancelled=1");
    let created = app.create(&body).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let url = created.body["payment_url"].as_str().unwrap().to_owned();
    assert_eq!(
        click(&url, "decline").await,
        "http://localhost:8001/orders/1?cancelled=1"
    );

    let mut body = app.body(2);
    body["return_url"] = json!("https://shop.example/orders/2");
    let created = app.create(&body).await;
    let id = created.body["payment_id"].as_i64().unwrap();
    let url = created.body["payment_url"].as_str().unwrap().to_owned();
    assert_eq!(click(&url, "pay").await, "https://shop.example/orders/2");
    let shown = show(&app, id).await;
    assert_eq!(shown["cancel_url"], Value::Null);
    assert_eq!(shown["metadata"], json!({}));

    // Without a cancel URL, a decline goes back to the return URL.
    let mut body = app.body(3);
    body["return_url"] = json!("https://shop.example/orders/3");
    let created = app.create(&body).await;
    let url = created.body["payment_url"].as_str().unwrap().to_owned();
    assert_eq!(
        click(&url, "decline").await,
        "https://shop.example/orders/3"
    );
}
