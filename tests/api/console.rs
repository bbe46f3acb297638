//! The operator console on the admin listener: its page is served without
//! the token and under a strict content security policy, the reads it
//! needs sit behind the token, and in headless Chromium an operator signs
//! in, activates a plugin version, sees it serving, rolls it back and
//! retries a failed notification, all through the page.

use std::time::{Duration, Instant};

use paygate_plugin_registry::Registry;
use serde_json::json;

use super::admin::{TOKEN, admin, audited, get};
use super::app::TestApp;
use super::notifications::{
    Answer, MerchantEndpoint, app_notifying_alone, settle_payment, wait_for_status,
};
use super::registry::publish_stripe;
use crate::webdriver::{self, Browser};

#[tokio::test]
async fn the_console_page_needs_no_token_holds_no_data_and_allows_only_its_own_code() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = app_notifying_alone(&endpoint, "console_page", |c| c).await;
    let mut page = String::new();
    for (path, content_type) in [
        ("/console", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let r = (app.client)
            .get(format!("{}{path}", app.admin_url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let headers = r.headers().clone();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type)
        );
        let policy = headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "script-src 'self'",
            "frame-ancestors 'none'",
            "connect-src 'self'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["cache-control"], "no-store");
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("test merchant") && !body.contains(TOKEN),
            "{path}"
        );
        if path == "/console" {
            page = body;
        }
    }
    assert!(!page.contains("<script>"), "no inline script");
    assert!(
        !page.contains("onclick") && !page.contains("onsubmit"),
        "no inline handlers"
    );

    // What the page reads needs the token like every admin route.
    for path in ["/admin/v1/providers", "/admin/v1/outbox"] {
        let r = admin(&app, reqwest::Method::GET, path, None, None).await;
        assert_eq!((r.status, r.code()), (401, "unauthorized"), "{path}");
    }
    let providers = get(&app, "/admin/v1/providers").await;
    assert_eq!(providers.status, 200, "{:?}", providers.body);
    let sandbox = (providers.body["providers"].as_array().unwrap().iter())
        .find(|p| p["alias"] == "sandbox")
        .unwrap()
        .clone();
    assert_eq!(sandbox["circuit"]["state"], "closed", "{sandbox}");
    assert_eq!(sandbox["provider_plugin"], "sandbox");
    let outbox = get(&app, "/admin/v1/outbox").await;
    assert_eq!(outbox.status, 200, "{:?}", outbox.body);
    for count in ["pending", "retrying", "processing", "delivered", "failed"] {
        assert!(outbox.body[count].is_i64(), "{count}: {:?}", outbox.body);
    }
}

/// An app following its own registry, on databases of its own, whose
/// merchant's endpoint refuses the first notification (no retries).
async fn console_app(endpoint: &MerchantEndpoint) -> (TestApp, tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let app = app_notifying_alone(endpoint, "console", move |mut c| {
        c.registry_dir = Some(root);
        c.notifier.retry_schedule = Vec::new();
        c
    })
    .await;
    let registry = Registry::open(dir.path()).unwrap();
    (app, dir, registry)
}

#[tokio::test]
async fn an_operator_activates_rolls_back_and_retries_through_the_console() {
    if !webdriver::wanted() {
        return;
    }
    let endpoint = MerchantEndpoint::start(&[Answer::Status(500)]).await;
    let (app, _dir, registry) = console_app(&endpoint).await;
    publish_stripe(&registry, &app, "1.0.0", "stripe_adapter", true);
    publish_stripe(&registry, &app, "2.0.0", "stripe_adapter", false);
    let paid = settle_payment(&app, 1, "finished").await;
    let failed = wait_failed(&app).await;

    let browser = Browser::start().await;
    browser.open(&format!("{}/console", app.admin_url)).await;
    browser.type_into("#token", TOKEN).await;
    browser.click("#sign-in-button").await;
    let serving = "td[data-serving=\"stripe\"]";
    browser.wait_text(serving, "1.0.0").await.unwrap();
    screenshot(&browser, "plugins").await;

    browser
        .click("button[data-activate=\"stripe@2.0.0\"]")
        .await;
    browser.wait_text(serving, "2.0.0").await.unwrap();
    browser.click("button[data-rollback=\"stripe\"]").await;
    browser.wait_text(serving, "1.0.0").await.unwrap();

    for view in ["providers", "merchants", "audit"] {
        browser.click(&format!("#tab-{view}")).await;
        screenshot(&browser, view).await;
    }
    browser.click("#tab-outbox").await;
    let row = format!("tr[data-notification=\"{failed}\"] td");
    browser.wait_text(&row, &failed.to_string()).await.unwrap();
    screenshot(&browser, "outbox").await;
    browser
        .click(&format!("button[data-retry=\"{failed}\"]"))
        .await;
    let started = Instant::now();
    while endpoint.received().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the retried notification never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The endpoint counts a delivery before it answers; the notifier
    // records it once the answer is in.
    wait_for_status(&app, paid, "LOG_SUCCESS").await;
    let delivered = get(&app, "/admin/v1/notifications?status=LOG_SUCCESS").await;
    assert_eq!(delivered.body["notifications"][0]["payment_id"], paid);
    browser.close().await;

    // The console's actions are the admin API's, audited as such.
    let plugin = audited(&app, "plugin:stripe").await;
    let actions: Vec<&str> = plugin
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["plugin.activate", "plugin.rollback"]);
    assert_eq!(plugin[0]["after"]["version"], "2.0.0");
    assert_eq!(plugin[1]["after"]["version"], "1.0.0");
    let retried = audited(&app, &format!("notification:{failed}")).await;
    assert_eq!(retried[0]["after"], json!({"queued": 1}));
}

/// The id of the app's one failed notification, once it failed.
async fn wait_failed(app: &TestApp) -> i64 {
    let started = Instant::now();
    loop {
        let listed = get(app, "/admin/v1/notifications").await;
        if let Some(id) = listed.body["notifications"][0]["notification_id"].as_i64() {
            return id;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no notification failed: {:?}",
            listed.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Saves the page as `docs/console/<view>.png` when
/// `PAYGATE_CONSOLE_SCREENSHOTS` is set (the README shows them).
async fn screenshot(browser: &Browser, view: &str) {
    if std::env::var("PAYGATE_CONSOLE_SCREENSHOTS").is_err() {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/console");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{view}.png")), browser.screenshot().await).unwrap();
}
