//! Bad input, authentication, rate limiting and response headers: each
//! refusal has its status and code, and nothing is written or charged.

use hmac::{Hmac, Mac};
use paygate::SubscriptionId;
use paygate::merchants::CreatedMerchant;
use serde_json::json;
use sha2::Sha256;

use super::app::{LAX_RATE_LIMIT, TestApp, new_merchant, spawn_app, spawn_app_with};

/// Asserts the refusal and that it wrote and charged nothing.
async fn refused(
    app: &TestApp,
    reply: super::app::Reply,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(
        (reply.status, reply.code()),
        (status, code),
        "{:?}",
        reply.body
    );
    assert!(
        reply.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(
        reply.body["request_id"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(app.tokens_used().await, 0);
    assert_eq!(app.payment_count().await, 0);
    reply.body
}

#[tokio::test]
async fn invalid_bodies_name_their_fields() {
    let app = spawn_app().await;
    let key = app.merchant.api_key.clone();
    let json_h = [("content-type", "application/json")];

    let r = app
        .post_raw(
            "/api/v1/payments",
            Some(&key),
            &json_h,
            b"{not json".to_vec(),
        )
        .await;
    let body = refused(&app, r, 400, "invalid_request").await;
    assert!(body.get("fields").is_none(), "malformed JSON has no fields");

    let r = app.create(&json!({})).await;
    let body = refused(&app, r, 400, "invalid_request").await;
    let fields: Vec<&str> = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    for f in ["order_id", "subscription_id", "amount", "price", "alias"] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }

    for (field, value) in [
        ("amount", json!(-1)),
        ("amount", json!(0)),
        ("amount", json!("1000000000000")),
        ("price", json!("0.000000001")),
        ("price", json!("ten")),
        ("price", json!(true)),
        ("order_id", json!("123")),
        ("order_id", json!(1.5)),
        ("order_id", json!(-3)),
        ("currency", json!("EURO")),
        ("event_id", json!(42)),
        ("alias", json!(7)),
    ] {
        let mut body = app.body(1);
        body[field] = value.clone();
        let r = app.create(&body).await;
        let body = refused(&app, r, 400, "invalid_request").await;
        assert_eq!(body["fields"][0]["field"], field, "{field}={value}");
    }

    // Finer than the currency's minor unit: no provider could charge it.
    for (price, currency) in [("10.001", "EUR"), ("100.5", "JPY"), ("1.0001", "KWD")] {
        let mut body = app.body(1);
        body["price"] = json!(price);
        body["currency"] = json!(currency);
        let r = app.create(&body).await;
        let body = refused(&app, r, 400, "invalid_request").await;
        assert_eq!(body["fields"][0]["field"], "price", "{price} {currency}");
    }

    let mut body = app.body(1);
    body["alias"] = json!("nosuchprovider");
    let r = app.create(&body).await;
    refused(&app, r, 400, "unknown_alias").await;
}

#[tokio::test]
async fn size_type_and_path_guards() {
    let app = spawn_app().await;
    let key = app.merchant.api_key.clone();
    let big = vec![b' '; (1 << 20) + 1];
    let r = app
        .post_raw(
            "/api/v1/payments",
            Some(&key),
            &[("content-type", "application/json")],
            big,
        )
        .await;
    refused(&app, r, 413, "payload_too_large").await;

    let body = app.body(1).to_string().into_bytes();
    let r = app
        .post_raw(
            "/api/v1/payments",
            Some(&key),
            &[("content-type", "text/plain")],
            body.clone(),
        )
        .await;
    refused(&app, r, 415, "unsupported_media_type").await;
    let r = app
        .post_raw("/api/v1/payments", Some(&key), &[], body)
        .await;
    refused(&app, r, 415, "unsupported_media_type").await;

    let read = app.merchant.read_api_key.clone();
    let r = app.get("/api/v1/payments/abc/show", Some(&read)).await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
    let r = app
        .get("/api/v1/payments/999999999/show", Some(&read))
        .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    for q in ["page=0", "limit=0", "limit=101", "page=x"] {
        let r = app.get(&format!("/api/v1/payments?{q}"), Some(&read)).await;
        assert_eq!((r.status, r.code()), (400, "invalid_request"), "{q}");
    }
    let r = app.get("/no/such/route", None).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
}

#[tokio::test]
async fn keys_scopes_and_merchant_isolation() {
    let app = spawn_app().await;
    let body = app.body(1).to_string().into_bytes();
    let json_h = [("content-type", "application/json")];
    let r = app
        .post_raw("/api/v1/payments", None, &json_h, body.clone())
        .await;
    refused(&app, r, 401, "unauthorized").await;
    let r = app
        .post_raw(
            "/api/v1/payments",
            Some("pk_unknown"),
            &json_h,
            body.clone(),
        )
        .await;
    refused(&app, r, 401, "invalid_api_key").await;
    let read = app.merchant.read_api_key.clone();
    let r = app
        .post_raw("/api/v1/payments", Some(&read), &json_h, body)
        .await;
    refused(&app, r, 403, "forbidden").await;

    // Another merchant's payment is not found, on every read path (the
    // retry write path is in notifications.rs, the list in create.rs).
    let created = app.create(&app.body(2)).await;
    let id = created.body["payment_id"].as_i64().unwrap();
    let other = new_merchant(&app.merchants, 10, false).await;
    for path in ["show", "tracking", "notifications"] {
        let r = app
            .get(
                &format!("/api/v1/payments/{id}/{path}"),
                Some(&other.read_api_key),
            )
            .await;
        assert_eq!((r.status, r.code()), (404, "not_found"), "{path}");
    }
}

/// Idempotency keys belong to the merchant: the same key from another
/// merchant is a new request, neither a replay of the first merchant's
/// answer nor a conflict with it, and it reaches the provider as a key of
/// its own.
#[tokio::test]
async fn idempotency_keys_are_per_merchant() {
    let app = spawn_app().await;
    let other = new_merchant(&app.merchants, 10, false).await;
    let post = |key: String, subscription_id: SubscriptionId| {
        let body = json!({"order_id": 31, "amount": 1, "price": "10.00", "alias": "sandbox",
                          "subscription_id": subscription_id});
        let app = &app;
        async move {
            let h = [
                ("content-type", "application/json"),
                ("idempotency-key", "shared-key-1"),
            ];
            let body = body.to_string().into_bytes();
            app.post_raw("/api/v1/payments", Some(&key), &h, body).await
        }
    };
    let mine = post(app.merchant.api_key.clone(), app.merchant.subscription_id).await;
    let theirs = post(other.api_key.clone(), other.subscription_id).await;
    assert_eq!(
        (mine.status, theirs.status),
        (200, 200),
        "{:?}",
        theirs.body
    );
    assert!(!theirs.headers.contains_key("idempotent-replayed"));
    assert_ne!(mine.body["payment_id"], theirs.body["payment_id"]);
    assert_ne!(mine.body["payment_url"], theirs.body["payment_url"]);
    // Each merchant's retry replays its own answer.
    let again = post(other.api_key.clone(), other.subscription_id).await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body, theirs.body);
    assert_eq!(app.tokens_used().await, 1);
    let their_tokens = app.merchants.tokens_used(other.subscription_id);
    assert_eq!(their_tokens.await.unwrap(), 1);
}

#[tokio::test]
async fn revoked_and_rotated_keys_stop_working() {
    let app = spawn_app().await;
    let read = app.merchant.read_api_key.clone();
    assert_eq!(app.get("/api/v1/payments", Some(&read)).await.status, 200);
    assert!(app.merchants.revoke_key(&read).await.unwrap());
    tokio::time::sleep(paygate::merchants::AUTH_CACHE_TTL + std::time::Duration::from_millis(200))
        .await;
    let r = app.get("/api/v1/payments", Some(&read)).await;
    assert_eq!((r.status, r.code()), (401, "invalid_api_key"));

    let rotated = app
        .merchants
        .rotate_keys(app.merchant.merchant_id, std::time::Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    let (write, new_read) = (rotated.api_key, rotated.read_api_key);
    assert_eq!(
        app.get("/api/v1/payments", Some(new_read.expose()))
            .await
            .status,
        200
    );
    assert!(write.expose().starts_with("pk_"));
}

fn sign(secret: &str, t: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A merchant of `app` with signed writes on, its signing secret, and now
/// in Unix seconds.
async fn signing_merchant(app: &TestApp) -> (CreatedMerchant, String, u64) {
    let signed = new_merchant(&app.merchants, 10, true).await;
    let secret = signed
        .request_signing_secret
        .clone()
        .expect("signing secret");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (signed, secret, now)
}

#[tokio::test]
async fn merchants_may_require_signed_writes() {
    let app = spawn_app().await;
    let (signed, secret, now) = signing_merchant(&app).await;
    let body = json!({"order_id": 1, "amount": 1, "price": "1", "alias": "sandbox", "subscription_id": signed.subscription_id})
        .to_string()
        .into_bytes();
    let post = |headers: Vec<(&'static str, String)>| {
        let (client, url, key, body) = (
            app.client.clone(),
            app.url.clone(),
            signed.api_key.clone(),
            body.clone(),
        );
        async move {
            let mut req = client
                .post(format!("{url}/api/v1/payments"))
                .header("x-api-key", key)
                .header("content-type", "application/json");
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let r = req.body(body).send().await.unwrap();
            let status = r.status().as_u16();
            let json: serde_json::Value = r.json().await.unwrap();
            (
                status,
                json["error"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    assert_eq!(post(vec![]).await, (403, "forbidden".into()));
    assert_eq!(
        post(vec![("x-signature", sign("wrong", now, &body))]).await,
        (403, "invalid_signature".into())
    );
    assert_eq!(
        post(vec![("x-signature", sign(&secret, now - 1000, &body))]).await,
        (403, "signature_expired".into())
    );
    assert_eq!(
        post(vec![("x-signature", sign(&secret, now, &body))])
            .await
            .0,
        200
    );
}

/// Security review, finding 12: a signed write bound only its body, so the
/// signature a merchant made to retry one payment's notifications (an empty
/// body) retried any other payment's too. The `v2` form binds the method
/// and the target, and is the only form accepted beyond a payment's
/// creation.
#[tokio::test]
async fn a_signed_write_is_bound_to_its_method_and_target() {
    let app = spawn_app().await;
    let (signed, secret, now) = signing_merchant(&app).await;
    let sign_v2 = |target: &str, body: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{now}.POST.{target}.").as_bytes());
        mac.update(body);
        format!("t={now},v2={}", hex::encode(mac.finalize().into_bytes()))
    };
    // Two payments of the signed merchant, created with v2 signatures.
    let mut ids = Vec::new();
    for order_id in [1, 2] {
        let body = json!({"order_id": order_id, "amount": 1, "price": "1", "alias": "sandbox", "subscription_id": signed.subscription_id})
            .to_string()
            .into_bytes();
        let signature = sign_v2("/api/v1/payments", &body);
        let headers = [
            ("content-type", "application/json"),
            ("x-signature", signature.as_str()),
        ];
        let created = app
            .post_raw("/api/v1/payments", Some(&signed.api_key), &headers, body)
            .await;
        assert_eq!(created.status, 200, "{}", created.body);
        ids.push(created.body["payment_id"].as_i64().unwrap());
    }
    let retry = |id: i64| format!("/api/v1/payments/{id}/notifications/retry");
    let attempt = |target: String, signature: String| {
        let key = signed.api_key.clone();
        let app = &app;
        async move {
            let headers = [("x-signature", signature.as_str())];
            app.post_raw(&target, Some(&key), &headers, Vec::new())
                .await
        }
    };
    // Signed for payment 1: it reaches the handler there (nothing failed
    // yet, so nothing to retry) and is refused for payment 2.
    let for_first = sign_v2(&retry(ids[0]), b"");
    assert_eq!(
        attempt(retry(ids[0]), for_first.clone()).await.code(),
        "nothing_to_retry"
    );
    assert_eq!(
        attempt(retry(ids[1]), for_first).await.code(),
        "invalid_signature"
    );
    // The body-only form, which would fit both, signs neither.
    let body_only = sign(&secret, now, b"");
    for id in ids {
        let refused = attempt(retry(id), body_only.clone()).await;
        assert_eq!(refused.code(), "invalid_signature", "{}", refused.body);
    }
}

#[tokio::test]
async fn rate_limit_answers_429_before_authentication() {
    let policy = "[config]\nip-rate = \"1\"\nip-burst = \"3\"\n";
    let app = spawn_app_with(policy, Vec::new(), |c| c).await;
    let mut codes = Vec::new();
    for _ in 0..4 {
        // No key at all: a limited client is refused before auth is tried.
        codes.push(app.get("/api/v1/payments", None).await);
    }
    assert!(codes[..3].iter().all(|r| r.code() == "unauthorized"));
    let limited = &codes[3];
    assert_eq!((limited.status, limited.code()), (429, "rate_limited"));
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(limited.headers["ratelimit-limit"], "3");
    assert_eq!(limited.headers["ratelimit-remaining"], "0");
    assert!(codes[0].headers.contains_key("ratelimit-reset"));
}

/// The rate limit runs on exactly the routes a merchant calls with its key:
/// every operation the OpenAPI document secures with `api_key` answers
/// with the policy's `RateLimit-*` headers, and no other route does (the
/// webhooks have limits of their own; the health checks and the documents
/// none). A merchant route added without the limit fails here.
#[tokio::test]
async fn the_rate_limit_runs_on_every_merchant_route_and_on_no_other() {
    let app = spawn_app().await;
    let spec = app.get("/openapi.json", None).await.body;
    let mut checked = Vec::new();
    for (path, operations) in spec["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "1").replace("{refund_id}", "1");
        for (method, operation) in operations.as_object().unwrap() {
            let merchant = operation["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("api_key").is_some()));
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = app
                .client
                .request(method.clone(), format!("{}{concrete}", app.url))
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.headers().contains_key("ratelimit-limit"),
                merchant,
                "{method} {path}: {}",
                r.status()
            );
            checked.push((merchant, format!("{method} {path}")));
        }
    }
    let merchant_operations = checked.iter().filter(|(m, _)| *m).count();
    assert!(merchant_operations >= 13, "{checked:?}");
    assert!(
        checked
            .iter()
            .any(|(m, what)| !m && what.contains("webhook")),
        "{checked:?}"
    );
    for path in [
        "/health",
        "/readyz",
        "/livez",
        "/openapi.json",
        "/api/v1/nowhere",
    ] {
        let r = app.get(path, None).await;
        assert!(!r.headers.contains_key("ratelimit-limit"), "{path}");
    }
}

#[tokio::test]
async fn every_response_carries_request_id_and_security_headers() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(format!("{}/api/v1/payments", app.url))
        .header("x-request-id", "req-abc-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "req-abc-1");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["request_id"], "req-abc-1");

    let r = app
        .client
        .get(format!("{}/health", app.url))
        .send()
        .await
        .unwrap();
    assert!(uuid::Uuid::parse_str(r.headers()["x-request-id"].to_str().unwrap()).is_ok());
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["checks"],
        json!({"postgres": "ok", "redis": "ok", "rabbitmq": "ok", "plugins": "ok"})
    );
}

/// Security review, finding 3: a host given an empty admin token (by an
/// embedder, past the flag's parser) refuses to start instead of serving an
/// admin API that an empty bearer opens.
#[tokio::test]
async fn a_host_with_an_empty_admin_token_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = paygate::Config::for_tests(
        super::app::databases().await,
        dir.path().to_owned(),
        super::app::cache_dir(),
        format!("paygate-test-{}:", uuid::Uuid::new_v4()),
    );
    config.admin_token = Some(paygate::plugins::Secret::new(""));
    let error = match paygate::App::build(&config).await {
        Ok(_) => panic!("a host with an empty admin token started"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("PAYGATE_ADMIN_TOKEN"), "{error}");
}

/// Security review, finding 11: any error of the rate-limit policy let the
/// request through. An operator may now choose to refuse instead; here the
/// policy runs out of fuel on every call.
#[tokio::test]
async fn a_failing_rate_limit_policy_refuses_when_set_closed() {
    let starved = format!("[limits]\nfuel = 1\n{LAX_RATE_LIMIT}");
    for (policy, expected) in [
        (paygate::config::RedisDownPolicy::Open, 200),
        (paygate::config::RedisDownPolicy::Closed, 503),
    ] {
        let app = spawn_app_with(&starved, Vec::new(), |mut c| {
            c.rate_limit.on_policy_error = policy;
            c
        })
        .await;
        let key = app.merchant.read_api_key.clone();
        let r = app.get("/api/v1/payments", Some(&key)).await;
        assert_eq!(r.status, expected, "{policy:?}: {:?}", r.body);
        if expected == 503 {
            assert_eq!(r.code(), "service_unavailable");
        }
    }
}

/// Security review, finding 18: a merchant's webhook secret and request
/// signing secret were stored as they are, so whoever read the merchants
/// database could sign notifications and writes as paygate and the
/// merchant. They are sealed, and still sign (the signed-write and
/// notification tests use them).
#[tokio::test]
async fn merchants_secrets_are_sealed_at_rest() {
    let app = spawn_app().await;
    let merchant = new_merchant(&app.merchants, 1, true).await;
    let (webhook, signing): (String, Option<String>) = sqlx::query_as(
        "SELECT webhook_secret, request_signing_secret FROM merchants WHERE id = $1",
    )
    .bind(merchant.merchant_id.get())
    .fetch_one(&app.dbs.merchants)
    .await
    .unwrap();
    let signing = signing.expect("signed writes are on");
    let plain_signing = merchant.request_signing_secret.clone().unwrap();
    for (stored, plain) in [
        (&webhook, &merchant.webhook_secret),
        (&signing, &plain_signing),
    ] {
        assert!(stored.starts_with("sealed:v1:"), "{stored}");
        assert!(!stored.contains(plain.as_str()), "stored as it is");
    }
    let opened = app
        .merchants
        .webhook_secret(merchant.merchant_id)
        .await
        .unwrap();
    assert_eq!(opened.unwrap().expose(), merchant.webhook_secret);
}
