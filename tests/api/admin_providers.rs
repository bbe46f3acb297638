//! Merchants' own accounts at a provider (API.md, "Admin API"): an
//! operator gives two merchants their own Stripe keys; each merchant's
//! payments and refunds on the `stripe` alias reach the sandbox provider
//! (which keeps each key's objects apart, as Stripe keeps accounts apart)
//! with its own key, and the keys are never shown again.

use reqwest::Method;
use serde_json::{Value, json};

use super::admin::{TOKEN, admin, audited, field_names, get};
use super::app::{TestApp, new_merchant, spawn_app};
use super::refunds::{paid_through, refund};

async fn put(app: &TestApp, path: &str, body: Value) -> super::app::Reply {
    admin(app, Method::PUT, path, Some(TOKEN), Some(body)).await
}

/// The checkout session a payment URL of the sandbox names.
fn session_of(payment_url: &str) -> String {
    let (_, tail) = payment_url.split_once("/pay/").unwrap();
    tail.trim_end_matches('/').to_owned()
}

/// What the sandbox answers `key` about session `id`.
async fn session_status(app: &TestApp, id: &str, key: &str) -> u16 {
    (app.client)
        .get(format!("{}/v1/checkout/sessions/{id}", app.sandbox_url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Creates a `stripe` payment for the app's current merchant: its session.
async fn stripe_session(app: &TestApp, order: i64) -> String {
    let mut body = app.body(order);
    body["alias"] = json!("stripe");
    let created = app.create(&body).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    session_of(created.body["payment_url"].as_str().unwrap())
}

#[tokio::test]
async fn two_merchants_on_the_stripe_alias_reach_the_provider_with_their_own_keys() {
    let mut app = spawn_app().await;
    let shared = app.merchant.clone();
    let a = new_merchant(&app.merchants, 100, false).await;
    let b = new_merchant(&app.merchants, 100, false).await;
    let (key_a, key_b) = ("sk_test_own_key_of_a", "sk_test_own_key_of_b");
    for (merchant, key) in [(&a, key_a), (&b, key_b)] {
        let path = format!(
            "/admin/v1/merchants/{}/providers/stripe",
            merchant.merchant_id
        );
        let r = put(
            &app,
            &path,
            json!({"config": {"statement-descriptor": "SHOP"}, "secrets": {"secret-key": key}}),
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["merchant_id"], merchant.merchant_id.get());
        assert_eq!(r.body["alias"], "stripe");
        assert_eq!(r.body["config"], json!({"statement-descriptor": "SHOP"}));
        assert_eq!(r.body["secrets"], json!(["secret-key"]));
        assert!(!r.body.to_string().contains(key), "{}", r.body);
        let shown = get(&app, &path).await;
        assert_eq!((shown.status, &shown.body), (200, &r.body));
    }

    // Each merchant's session is opened with its own key: the provider
    // shows it to that key only.
    app.merchant = a.clone();
    let of_a = stripe_session(&app, 1).await;
    app.merchant = b.clone();
    let of_b = stripe_session(&app, 1).await;
    app.merchant = shared.clone();
    let of_shared = stripe_session(&app, 1).await;
    assert_eq!(session_status(&app, &of_a, key_a).await, 200);
    assert_eq!(session_status(&app, &of_a, key_b).await, 404);
    assert_eq!(session_status(&app, &of_b, key_b).await, 200);
    assert_eq!(session_status(&app, &of_b, key_a).await, 404);
    assert_eq!(session_status(&app, &of_shared, key_a).await, 404);
    assert_eq!(session_status(&app, &of_shared, key_b).await, 404);

    // A's refund goes through A's account too: the provider knows A's
    // payment only under A's key.
    app.merchant = a.clone();
    let paid = paid_through(&app, 2, "stripe").await;
    let r = refund(&app, paid, json!({"price": "2.50"})).await;
    assert_eq!(
        (r.status, &r.body["status"]),
        (200, &json!("REFUND_SUCCEEDED")),
        "{:?}",
        r.body
    );

    // Removed: A's next payment is on the alias's shared account again.
    let path = format!("/admin/v1/merchants/{}/providers/stripe", a.merchant_id);
    let r = admin(&app, Method::DELETE, &path, Some(TOKEN), None).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(get(&app, &path).await.status, 404);
    let again = stripe_session(&app, 3).await;
    assert_eq!(session_status(&app, &again, key_a).await, 404);
    let r = admin(&app, Method::DELETE, &path, Some(TOKEN), None).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));

    // Audited by name, never by value.
    let target = format!("merchant:{}/provider:stripe", a.merchant_id);
    let entries = audited(&app, &target).await;
    let actions: Vec<&Value> = entries.iter().map(|e| &e["action"]).collect();
    assert_eq!(
        actions,
        ["merchant.provider.put", "merchant.provider.delete"]
    );
    assert_eq!(entries[0]["after"]["secrets"], json!(["secret-key"]));
    assert!(!Value::Array(entries).to_string().contains(key_a));

    // Stored sealed: the database holds neither key.
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT secrets::text FROM merchant_provider_accounts")
            .fetch_all(&app.dbs.merchants)
            .await
            .unwrap();
    assert!(
        stored.iter().any(|s| s.contains("sealed:v1:")),
        "{stored:?}"
    );
    assert!(!stored.iter().any(|s| s.contains(key_b)), "{stored:?}");
}

/// A merchant's account whose secret does not open (put there by hand, or
/// sealed under a key since lost) fails that merchant's payments and
/// refunds on the alias before anything is charged or stored: a 500, no
/// payment, no refund, no token spent, and never the shared account.
#[tokio::test]
async fn an_account_that_does_not_open_stores_nothing_for_its_merchant() {
    let mut app = spawn_app().await;
    let merchant = new_merchant(&app.merchants, 100, false).await;
    let id = merchant.merchant_id;
    let path = format!("/admin/v1/merchants/{id}/providers/stripe");
    let account = json!({"secrets": {"secret-key": "sk_test_own_key_broken_later"}});
    let r = put(&app, &path, account.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    app.merchant = merchant.clone();
    let paid = paid_through(&app, 1, "stripe").await;

    // Put again (this host forgets what it read), then broken by hand.
    assert_eq!(put(&app, &path, account).await.status, 200);
    sqlx::query(
        "UPDATE merchant_provider_accounts
         SET secrets = '{\"secret-key\": \"sk_test_not_sealed\"}' WHERE merchant_id = $1",
    )
    .bind(id.get())
    .execute(&app.dbs.merchants)
    .await
    .unwrap();
    let tokens = app.tokens_used().await;

    let mut body = app.body(2);
    body["alias"] = json!("stripe");
    let created = app.create(&body).await;
    assert_eq!((created.status, created.code()), (500, "internal_error"));
    assert_eq!(app.payment_count().await, 1);
    assert_eq!(app.tokens_used().await, tokens);

    let r = refund(&app, paid, json!({"price": "1.00"})).await;
    assert_eq!((r.status, r.code()), (500, "internal_error"));
    let refunds: i64 = sqlx::query_scalar("SELECT count(*) FROM refunds WHERE payment_id = $1")
        .bind(paid)
        .fetch_one(&app.dbs.payments)
        .await
        .unwrap();
    assert_eq!(refunds, 0);
}

#[tokio::test]
async fn provider_accounts_need_the_token_a_merchant_an_alias_and_sane_settings() {
    let app = spawn_app().await;
    let m = app.merchant.merchant_id;
    let path = format!("/admin/v1/merchants/{m}/providers/stripe");
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        for token in [None, Some("wrong-token")] {
            let r = admin(&app, method.clone(), &path, token, Some(json!({}))).await;
            assert_eq!((r.status, r.code()), (401, "unauthorized"), "{method}");
        }
    }
    let secrets = json!({"secrets": {"secret-key": "sk_test_x"}});
    for missing in [
        "/admin/v1/merchants/999999999999/providers/stripe".to_owned(),
        format!("/admin/v1/merchants/{m}/providers/no-such-alias"),
        "/admin/v1/merchants/x/providers/stripe".to_owned(),
    ] {
        let r = put(&app, &missing, secrets.clone()).await;
        assert_eq!((r.status, r.code()), (404, "not_found"), "{missing}");
    }
    assert_eq!(get(&app, &path).await.status, 404, "no account yet");
    let many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    for (body, field) in [
        (json!({"secrets": {"secret-key": 7}}), "secrets"),
        (json!({"secrets": {"secret-key": ""}}), "secrets"),
        (json!({"secrets": {"bad name": "x"}}), "secrets"),
        (json!({"secrets": {"k": "a\nb"}}), "secrets"),
        (json!({"secrets": ["secret-key"]}), "secrets"),
        (json!({"config": Value::Object(many)}), "config"),
        (json!({"config": {"base-url": "x".repeat(2049)}}), "config"),
        (json!({"owner": "me"}), "owner"),
    ] {
        let r = put(&app, &path, body.clone()).await;
        assert_eq!((r.status, r.code()), (400, "invalid_request"), "{body}");
        assert_eq!(field_names(&r), [field], "{body}");
    }
    assert_eq!(get(&app, &path).await.status, 404, "nothing was stored");
}
