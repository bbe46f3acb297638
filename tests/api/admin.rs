//! The admin API's merchants and audit log (API.md, "Admin API"), on the
//! admin listener, behind the admin token.

use serde_json::{Value, json};

use super::app::{Reply, TestApp, reply, spawn_app};

pub(crate) const TOKEN: &str = "test-admin-token";

pub(crate) async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.admin_url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    reply(request.send().await.unwrap()).await
}

pub(crate) async fn get(app: &TestApp, path: &str) -> Reply {
    admin(app, reqwest::Method::GET, path, Some(TOKEN), None).await
}

pub(crate) async fn post(app: &TestApp, path: &str, body: Value) -> Reply {
    admin(app, reqwest::Method::POST, path, Some(TOKEN), Some(body)).await
}

async fn patch(app: &TestApp, path: &str, body: Value) -> Reply {
    admin(app, reqwest::Method::PATCH, path, Some(TOKEN), Some(body)).await
}

pub(crate) fn field_names(reply: &Reply) -> Vec<&str> {
    (reply.body["fields"].as_array())
        .map(|f| f.iter().map(|e| e["field"].as_str().unwrap()).collect())
        .unwrap_or_default()
}

/// The audit entries about `target`, oldest first.
pub(crate) async fn audited(app: &TestApp, target: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut after: Option<i64> = None;
    loop {
        let path = match after {
            Some(id) => format!("/admin/v1/audit?limit=100&starting_after={id}"),
            None => "/admin/v1/audit?limit=100".to_owned(),
        };
        let page = get(app, &path).await;
        assert_eq!(page.status, 200, "{:?}", page.body);
        let listed = page.body["entries"].as_array().unwrap().clone();
        after = listed.last().and_then(|e| e["id"].as_i64());
        entries.extend(listed.into_iter().filter(|e| e["target"] == target));
        if page.body["has_more"] != true {
            break;
        }
    }
    entries.reverse();
    entries
}

#[tokio::test]
async fn admin_answers_carry_the_request_id_as_every_answer_does() {
    // API.md: every response carries `X-Request-ID`, the client's or a new
    // one; an error's body names it too, so an operator can find its log line.
    let app = spawn_app().await;
    let refused = app
        .client
        .get(format!("{}/admin/v1/merchants", app.admin_url))
        .header("x-request-id", "op-req-7")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.headers()["x-request-id"], "op-req-7");
    let refused = reply(refused).await;
    assert_eq!((refused.status, refused.code()), (401, "unauthorized"));
    assert_eq!(refused.body["request_id"], "op-req-7", "{}", refused.body);

    let listed = get(&app, "/admin/v1/merchants").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let id = listed.headers["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "a new id: {id}");
}

#[tokio::test]
async fn an_operator_creates_lists_changes_and_disables_a_merchant_and_each_step_is_audited() {
    let app = spawn_app().await;

    // Every route needs the token.
    for token in [None, Some("wrong-token")] {
        let r = admin(
            &app,
            reqwest::Method::GET,
            "/admin/v1/merchants",
            token,
            None,
        )
        .await;
        assert_eq!((r.status, r.code()), (401, "unauthorized"));
        let r = admin(
            &app,
            reqwest::Method::POST,
            "/admin/v1/merchants",
            token,
            Some(json!({"name": "intruder"})),
        )
        .await;
        assert_eq!((r.status, r.code()), (401, "unauthorized"));
    }

    let bad = post(
        &app,
        "/admin/v1/merchants",
        json!({"name": "", "tokens": -1, "currency": "XXX", "callback_url": "ftp://x", "owner": "me"}),
    )
    .await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_request"));
    assert_eq!(
        field_names(&bad),
        ["owner", "name", "callback_url", "tokens", "currency"]
    );

    let created = post(
        &app,
        "/admin/v1/merchants",
        json!({"name": "Acme", "tokens": 5, "currency": "USD"}),
    )
    .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let id = created.body["merchant_id"].as_i64().unwrap();
    let key = created.body["api_key"].as_str().unwrap().to_owned();
    let read = created.body["read_api_key"].as_str().unwrap().to_owned();
    assert!(
        created.body["webhook_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    // The new merchant's own keys work on the merchant API.
    let own = app.get("/api/v1/merchant", Some(&read)).await;
    assert_eq!((own.status, &own.body["name"]), (200, &json!("Acme")));

    // Shown and listed without a secret; the list pages newest first.
    let shown = get(&app, &format!("/admin/v1/merchants/{id}")).await;
    assert_eq!(shown.status, 200, "{:?}", shown.body);
    assert_eq!(
        (&shown.body["currency"], &shown.body["disabled"]),
        (&json!("USD"), &json!(false))
    );
    assert_eq!(shown.body["subscriptions"][0]["tokens_total"], 5);
    for secret in ["whsec_", "pk_", "rk_", "rss_"] {
        assert!(!shown.body.to_string().contains(secret), "{secret}");
    }
    // Other tests make merchants meanwhile: page from just above this one.
    let first = get(
        &app,
        &format!("/admin/v1/merchants?limit=1&starting_after={}", id + 1),
    )
    .await;
    assert_eq!(first.body["merchants"][0]["merchant_id"], id);
    assert_eq!(first.body["has_more"], true);
    let next = get(
        &app,
        &format!("/admin/v1/merchants?limit=1&starting_after={id}"),
    )
    .await;
    assert!(next.body["merchants"][0]["merchant_id"].as_i64().unwrap() < id);
    for query in ["limit=0", "limit=101", "limit=x", "starting_after=-1"] {
        let r = get(&app, &format!("/admin/v1/merchants?{query}")).await;
        assert_eq!((r.status, r.code()), (400, "invalid_request"), "{query}");
    }
    for missing in ["999999999", "x", "0"] {
        let r = get(&app, &format!("/admin/v1/merchants/{missing}")).await;
        assert_eq!((r.status, r.code()), (404, "not_found"), "{missing}");
    }

    // Tokens added to its subscription can be spent.
    let sid = created.body["subscription_id"].as_i64().unwrap();
    let tokens = format!("/admin/v1/merchants/{id}/subscriptions/{sid}/tokens");
    for add in [json!(0), json!(-5), json!("5"), json!(1_000_000_001)] {
        let r = post(&app, &tokens, json!({"add": add})).await;
        assert_eq!(field_names(&r), ["add"], "{add}");
    }
    let r = post(&app, &tokens, json!({"add": 37})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        (&r.body["tokens_total"], &r.body["tokens_used"]),
        (&json!(42), &json!(0))
    );
    let theirs = app.merchant.subscription_id.get();
    let r = post(
        &app,
        &format!("/admin/v1/merchants/{id}/subscriptions/{theirs}/tokens"),
        json!({"add": 1}),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (404, "not_found"),
        "another merchant's subscription"
    );
    // The limit and its quota slots' caps move together or not at all.
    let bare = sqlx::query("UPDATE subscriptions SET token_limit = token_limit + 1 WHERE id = $1")
        .bind(sid)
        .execute(&app.dbs.merchants)
        .await;
    assert!(bare.is_err(), "a limit changed without its slots");
    let app_ref = &app;
    let payments: Vec<u16> = futures_util::future::join_all((1..=42).map(|order| {
        let body = json!({"order_id": order, "amount": 1, "price": "1.00", "alias": "sandbox",
                          "subscription_id": sid});
        let key = key.clone();
        let app = app_ref;
        async move {
            app.post_raw(
                "/api/v1/payments",
                Some(&key),
                &[("content-type", "application/json")],
                body.to_string().into_bytes(),
            )
            .await
            .status
        }
    }))
    .await;
    assert!(payments.iter().all(|s| *s == 200), "{payments:?}");
    let body = json!({"order_id": 43, "amount": 1, "price": "1.00", "alias": "sandbox",
                      "subscription_id": sid});
    let r = app
        .post_raw(
            "/api/v1/payments",
            Some(&key),
            &[("content-type", "application/json")],
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!((r.status, r.code()), (429, "quota_exceeded"));

    // Renamed, then disabled: its keys stop at once on this replica, and
    // work again once it is enabled.
    let r = patch(
        &app,
        &format!("/admin/v1/merchants/{id}"),
        json!({"api_key": "x", "disabled": "yes"}),
    )
    .await;
    assert_eq!(field_names(&r), ["api_key", "disabled"]);
    let r = patch(
        &app,
        &format!("/admin/v1/merchants/{id}"),
        json!({"name": "Acme Ltd", "disabled": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        (&r.body["name"], &r.body["disabled"]),
        (&json!("Acme Ltd"), &json!(true))
    );
    let r = app.get("/api/v1/merchant", Some(&read)).await;
    assert_eq!((r.status, r.code()), (401, "invalid_api_key"));
    let r = patch(
        &app,
        &format!("/admin/v1/merchants/{id}"),
        json!({"disabled": false}),
    )
    .await;
    assert_eq!(r.body["disabled"], false);
    assert_eq!(app.get("/api/v1/merchant", Some(&read)).await.status, 200);
    let r = patch(
        &app,
        "/admin/v1/merchants/999999999",
        json!({"disabled": true}),
    )
    .await;
    assert_eq!((r.status, r.code()), (404, "not_found"));

    // Every change is in the audit log: who, what, before and after, and
    // no secret anywhere.
    let entries = audited(&app, &format!("merchant:{id}")).await;
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["merchant.create", "merchant.update", "merchant.update"]
    );
    let fingerprint = entries[0]["actor"].as_str().unwrap();
    assert!(
        fingerprint.starts_with("token:") && fingerprint.len() == 18,
        "{fingerprint}"
    );
    assert!(!entries.iter().any(|e| e.to_string().contains(TOKEN)));
    assert_eq!(entries[0]["before"], Value::Null);
    assert_eq!(entries[0]["after"]["name"], "Acme");
    assert_eq!(
        (
            &entries[1]["before"]["disabled"],
            &entries[1]["after"]["disabled"]
        ),
        (&json!(false), &json!(true))
    );
    assert_eq!(entries[1]["after"]["name"], "Acme Ltd");
    let tokens = audited(&app, &format!("merchant:{id}/subscription:{sid}")).await;
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0]["before"]["subscription"]["tokens_total"], 5);
    assert_eq!(tokens[0]["after"]["subscription"]["tokens_total"], 42);
    for entry in entries.iter().chain(&tokens) {
        for secret in ["whsec_", "pk_", "rk_", "rss_"] {
            assert!(!entry.to_string().contains(secret), "{secret} in {entry}");
        }
    }
}

/// The admin listener guards its bodies as the merchant API does.
#[tokio::test]
async fn the_admin_api_refuses_bodies_it_cannot_take() {
    let app = spawn_app().await;
    let url = format!("{}/admin/v1/merchants", app.admin_url);
    let huge = app
        .client
        .post(&url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(vec![b' '; (1 << 20) + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    let text = app
        .client
        .post(&url)
        .bearer_auth(TOKEN)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    let r = reply(
        app.client
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
}

/// The admin API has its own OpenAPI document, behind the token, listing
/// exactly the routes the admin listener serves.
#[tokio::test]
async fn the_admin_api_documents_exactly_its_routes() {
    let app = spawn_app().await;
    let r = admin(
        &app,
        reqwest::Method::GET,
        "/admin/openapi.json",
        None,
        None,
    )
    .await;
    assert_eq!((r.status, r.code()), (401, "unauthorized"));
    let spec = get(&app, "/admin/openapi.json").await;
    assert_eq!(spec.status, 200, "{:?}", spec.body);
    let served = [
        "GET /admin/v1/plugins",
        "POST /admin/v1/plugins/{name}/activate",
        "POST /admin/v1/plugins/{name}/rollback",
        "GET /metrics",
        "POST /admin/v1/merchants",
        "GET /admin/v1/merchants",
        "GET /admin/v1/merchants/{id}",
        "PATCH /admin/v1/merchants/{id}",
        "POST /admin/v1/merchants/{id}/subscriptions/{sid}/tokens",
        "GET /admin/v1/audit",
        "GET /admin/v1/notifications",
        "POST /admin/v1/notifications/retry",
        "POST /admin/v1/notifications/{id}/retry",
        "PUT /admin/v1/merchants/{id}/providers/{alias}",
        "GET /admin/v1/merchants/{id}/providers/{alias}",
        "DELETE /admin/v1/merchants/{id}/providers/{alias}",
        "GET /admin/v1/providers",
        "GET /admin/v1/outbox",
    ];
    let served = super::docs::assert_documents_exactly(&spec.body, &served);
    // Each is routed: an empty request is refused by the route, never by
    // the router's fallback. Replays are scoped to nothing, so that other
    // tests' failed notifications stay failed.
    for op in &served {
        let (method, path) = op.split_once(' ').unwrap();
        let (path, body) = match path {
            "/admin/v1/notifications/retry" => (
                path.to_owned(),
                Some(json!({"since": "2999-01-01T00:00:00Z"})),
            ),
            _ => (
                (path.replace("{name}", "stripe"))
                    .replace("{alias}", "stripe")
                    .replace("{id}", "999999999999")
                    .replace("{sid}", "1"),
                None,
            ),
        };
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = admin(&app, method, &path, Some(TOKEN), body).await;
        assert_ne!(r.status, 405, "{op}");
        assert!(
            r.code() != "not_found" || op.contains('{'),
            "{op} is not routed: {:?}",
            r.body
        );
    }
    let schemes = &spec.body["components"]["securitySchemes"]["admin_token"];
    assert_eq!(schemes["scheme"], "bearer", "{schemes}");
}
