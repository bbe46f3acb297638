//! The OpenAPI document matches what the API really does, and Swagger UI
//! renders it from assets paygate serves itself.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::app::{Reply, TestApp, new_merchant, spawn_app};

async fn spec(app: &TestApp) -> Value {
    let r = app.get("/openapi.json", None).await;
    assert_eq!(r.status, 200);
    r.body
}

/// The statuses the spec documents for one operation.
fn documented(spec: &Value, method: &str, path: &str) -> BTreeSet<u16> {
    spec["paths"][path][method]["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} is not in the spec"))
        .keys()
        .map(|k| k.parse().unwrap())
        .collect()
}

/// A generated client validates a payment's and a refund's status as the
/// server writes them: the spec lists every status, `PAYMENT_EXPIRED`
/// included, as an enum that each place a status appears refers to.
#[tokio::test]
async fn payment_statuses_are_an_enum_in_the_spec() {
    let app = spawn_app().await;
    let spec = spec(&app).await;
    let schemas = &spec["components"]["schemas"];
    assert_eq!(
        schemas["PaymentStatus"]["enum"],
        json!([
            "PAYMENT_PENDING",
            "PAYMENT_FINISHED",
            "PAYMENT_FAILED",
            "PAYMENT_EXPIRED"
        ]),
        "{}",
        schemas["PaymentStatus"]
    );
    let status = "#/components/schemas/PaymentStatus";
    for (schema, field) in [
        ("Payment", "status"),
        ("CreatedBody", "status"),
        ("Tracking", "payment_status"),
    ] {
        assert_eq!(
            schemas[schema]["properties"][field]["$ref"], status,
            "{schema}.{field}: {}",
            schemas[schema]["properties"][field]
        );
    }
    let expires = &schemas["Payment"]["properties"]["expires_at"];
    assert_eq!(expires["format"], "date-time", "{expires}");

    // A refund's status and reason too.
    assert_eq!(
        schemas["RefundStatusName"]["enum"],
        json!(["REFUND_PENDING", "REFUND_SUCCEEDED", "REFUND_FAILED"]),
        "{}",
        schemas["RefundStatusName"]
    );
    let refund = &schemas["Refund"]["properties"];
    assert_eq!(
        refund["status"]["$ref"], "#/components/schemas/RefundStatusName",
        "{refund}"
    );
    assert!(
        refund["reason"].to_string().contains("RefundReasonName"),
        "{refund}"
    );
}

/// Checks that `spec` documents exactly the operations `served`
/// (`"METHOD /path"`), and answers them as a set.
pub(crate) fn assert_documents_exactly(spec: &Value, served: &[&str]) -> BTreeSet<String> {
    let mut operations = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let served: BTreeSet<String> = served.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(operations, served);
    served
}

#[tokio::test]
async fn spec_lists_exactly_the_routes_served() {
    let app = spawn_app().await;
    let spec = spec(&app).await;
    let served = [
        "POST /api/v1/payments",
        "GET /api/v1/payments",
        "GET /api/v1/payments/{id}/show",
        "GET /api/v1/payments/{id}/tracking",
        "GET /api/v1/payments/{id}/notifications",
        "POST /api/v1/payments/{id}/notifications/retry",
        "POST /api/v1/payments/{id}/refunds",
        "GET /api/v1/payments/{id}/refunds",
        "GET /api/v1/refunds/{refund_id}",
        "GET /api/v1/merchant",
        "PATCH /api/v1/merchant",
        "POST /api/v1/merchant/webhook-secret/rotate",
        "POST /api/v1/merchant/api-keys/rotate",
        "POST /api/v1/payments/webhook",
        "POST /api/v1/payments/webhook/{alias}",
        "GET /health",
        "GET /readyz",
        "GET /livez",
    ];
    let served = assert_documents_exactly(&spec, &served);
    // And each of them answers (no 404 from the router: path shapes agree).
    for op in &served {
        let (method, path) = op.split_once(' ').unwrap();
        let path = path
            .replace("{id}", "1")
            .replace("{refund_id}", "1")
            .replace("{alias}", "sandbox");
        let r = if method == "POST" {
            app.post_raw(&path, None, &[], Vec::new()).await
        } else {
            app.get(&path, None).await
        };
        assert!(
            r.code() != "not_found" || path.contains("/1/") || path.ends_with("/1"),
            "{op} is not routed: {:?}",
            r.body
        );
    }
}

#[tokio::test]
async fn every_status_the_api_answers_is_documented() {
    let app = spawn_app().await;
    let spec = spec(&app).await;
    let key = app.merchant.api_key.clone();
    let read = app.merchant.read_api_key.clone();
    let json_h = [("content-type", "application/json")];
    let body = |b: &Value| b.to_string().into_bytes();
    let created = app.create(&app.body(1)).await;
    let id = created.body["payment_id"].as_i64().unwrap();
    let broke = new_merchant(&app.merchants, 0, false).await;
    let mut no_tokens = app.body(2);
    no_tokens["subscription_id"] = json!(broke.subscription_id);

    let mut observed: Vec<(&str, &str, Reply)> = vec![
        ("post", "/api/v1/payments", created),
        ("post", "/api/v1/payments", app.create(&json!({})).await),
        (
            "post",
            "/api/v1/payments",
            app.post_raw("/api/v1/payments", None, &json_h, body(&app.body(3)))
                .await,
        ),
        (
            "post",
            "/api/v1/payments",
            app.post_raw("/api/v1/payments", Some(&read), &json_h, body(&app.body(3)))
                .await,
        ),
        ("post", "/api/v1/payments", app.create(&app.body(1)).await),
        (
            "post",
            "/api/v1/payments",
            app.post_raw(
                "/api/v1/payments",
                Some(&key),
                &json_h,
                vec![b' '; (1 << 20) + 1],
            )
            .await,
        ),
        (
            "post",
            "/api/v1/payments",
            app.post_raw("/api/v1/payments", Some(&key), &[], body(&app.body(3)))
                .await,
        ),
        (
            "post",
            "/api/v1/payments",
            app.post_raw(
                "/api/v1/payments",
                Some(&broke.api_key),
                &json_h,
                body(&no_tokens),
            )
            .await,
        ),
        (
            "get",
            "/api/v1/payments",
            app.get("/api/v1/payments", Some(&read)).await,
        ),
        (
            "get",
            "/api/v1/payments",
            app.get("/api/v1/payments?limit=1000", Some(&read)).await,
        ),
        (
            "get",
            "/api/v1/payments",
            app.get("/api/v1/payments", None).await,
        ),
        ("get", "/health", app.get("/health", None).await),
        ("get", "/readyz", app.get("/readyz", None).await),
        ("get", "/livez", app.get("/livez", None).await),
    ];
    for (path, suffix) in [
        ("/api/v1/payments/{id}/show", "show"),
        ("/api/v1/payments/{id}/tracking", "tracking"),
        ("/api/v1/payments/{id}/notifications", "notifications"),
    ] {
        observed.push((
            "get",
            path,
            app.get(&format!("/api/v1/payments/{id}/{suffix}"), Some(&read))
                .await,
        ));
        observed.push((
            "get",
            path,
            app.get(&format!("/api/v1/payments/x/{suffix}"), Some(&read))
                .await,
        ));
        observed.push((
            "get",
            path,
            app.get(
                &format!("/api/v1/payments/{}/{suffix}", id + 1_000_000),
                Some(&read),
            )
            .await,
        ));
        observed.push((
            "get",
            path,
            app.get(&format!("/api/v1/payments/{id}/{suffix}"), Some("rk_nope"))
                .await,
        ));
    }
    let retry = "/api/v1/payments/{id}/notifications/retry";
    for (payment, key) in [
        (id.to_string(), &key),
        (id.to_string(), &read),
        ("x".into(), &key),
    ] {
        let path = format!("/api/v1/payments/{payment}/notifications/retry");
        observed.push((
            "post",
            retry,
            app.post_raw(&path, Some(key), &[], Vec::new()).await,
        ));
    }
    let merchant = "/api/v1/merchant";
    observed.push(("get", merchant, app.get(merchant, Some(&read)).await));
    observed.push(("get", merchant, app.get(merchant, None).await));
    let patch = |key: &str, content_type: &str, body: &str| {
        let request = (app.client.patch(format!("{}{merchant}", app.url)))
            .header("x-api-key", key)
            .header("content-type", content_type)
            .body(body.to_owned());
        async move { super::app::reply(request.send().await.unwrap()).await }
    };
    for (key, content_type, body) in [
        (&key, "application/json", r#"{"default_return_url": null}"#),
        (&key, "application/json", r#"{"name": "x"}"#),
        (&read, "application/json", "{}"),
        (&key, "text/plain", "{}"),
    ] {
        observed.push(("patch", merchant, patch(key, content_type, body).await));
    }
    for (what, grace) in [
        ("webhook-secret", "60"),
        ("webhook-secret", "-1"),
        ("api-keys", "60"),
    ] {
        let path = match what {
            "webhook-secret" => "/api/v1/merchant/webhook-secret/rotate",
            _ => "/api/v1/merchant/api-keys/rotate",
        };
        let body = format!(r#"{{"grace_seconds": {grace}}}"#).into_bytes();
        observed.push((
            "post",
            path,
            app.post_raw(path, Some(&read), &json_h, body.clone()).await,
        ));
        observed.push((
            "post",
            path,
            app.post_raw(path, Some(&key), &json_h, body).await,
        ));
    }
    let mut seen = BTreeSet::new();
    for (method, path, reply) in &observed {
        assert!(
            documented(&spec, method, path).contains(&reply.status),
            "{method} {path} answered {} ({:?}), which the spec does not document",
            reply.status,
            reply.body
        );
        if reply.status >= 400 {
            for field in ["error", "message", "request_id"] {
                assert!(
                    reply.body[field].is_string(),
                    "{method} {path} {}: no {field}",
                    reply.status
                );
            }
        }
        seen.insert((method.to_string(), path.to_string(), reply.status));
    }
    // The settings' routes did too.
    for (method, status) in [
        ("get", 200),
        ("get", 401),
        ("patch", 200),
        ("patch", 400),
        ("patch", 403),
        ("patch", 415),
    ] {
        assert!(
            seen.contains(&(method.into(), merchant.into(), status)),
            "{method} {merchant} never answered {status}"
        );
    }
    // The create path really produced each of these.
    for status in [200, 400, 401, 403, 409, 413, 415, 429] {
        assert!(
            seen.contains(&("post".into(), "/api/v1/payments".into(), status)),
            "create never answered {status}"
        );
    }
}

#[tokio::test]
async fn swagger_ui_is_served_without_a_cdn() {
    let app = spawn_app().await;
    let page = app
        .client
        .get(format!("{}/docs/", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("https://"),
        "the page must not load anything from elsewhere"
    );
    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-initializer.js",
    ] {
        let r = app
            .client
            .get(format!("{}/docs/{asset}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }
}

/// Opens /docs in headless Chromium and reads the rendered DOM. Set
/// PAYGATE_SKIP_BROWSER=1 to skip where Chromium cannot be installed.
#[tokio::test]
async fn docs_render_the_payment_operations_in_a_browser() {
    if std::env::var("PAYGATE_SKIP_BROWSER").is_ok() {
        eprintln!("skipped: PAYGATE_SKIP_BROWSER is set");
        return;
    }
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect(
            "Chromium is not installed (apt-get install chromium), or set PAYGATE_SKIP_BROWSER=1",
        );
    let app = spawn_app().await;
    let profile = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("{}/docs/", app.url))
        .output()
        .await
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    for rendered in [
        "/api/v1/payments/{id}/show",
        "/api/v1/payments/{id}/tracking",
        "opblock-post",
        "opblock-get",
    ] {
        assert!(
            dom.contains(rendered),
            "{rendered} not rendered; DOM starts: {}",
            &dom[..dom.len().min(2000)]
        );
    }
}
