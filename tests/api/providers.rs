//! `paygate providers`: an alias is removed only when nothing through it
//! still waits for its provider.

use serde_json::json;

use super::app::{bind_verified, databases, spawn_app};
use super::webhooks::{INTERNAL_SECRET, hex_hmac, internal_webhook};

/// `paygate providers <args>` against the test databases: (success, stdout,
/// stderr).
async fn providers(args: &[&str]) -> (bool, String, String) {
    let urls = databases().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_paygate"))
        .arg("providers")
        .args(args)
        .env_clear()
        .env("PAYGATE_PAYMENTS_DATABASE_URL", &urls.payments)
        .env("PAYGATE_MERCHANTS_DATABASE_URL", &urls.merchants)
        .env("PAYGATE_PROVIDERS_DATABASE_URL", &urls.providers)
        .env("PAYGATE_LOGS_DATABASE_URL", &urls.logs)
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn an_alias_with_a_pending_payment_is_not_removed_until_it_finishes() {
    let app = spawn_app().await;
    let alias = format!(
        "remove-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    bind_verified(&app.providers, &alias, "sandbox", "internal-webhook").await;
    let mut body = app.body(1);
    body["alias"] = json!(alias);
    let created = app.create(&body).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let id = created.body["payment_id"].as_i64().unwrap();

    let (ok, _, stderr) = providers(&["remove", &alias]).await;
    assert!(!ok, "removed with a payment pending");
    assert!(stderr.contains("1 pending payments"), "{stderr}");
    assert!(app.providers.get(&alias).await.unwrap().is_some());

    let event = format!(r#"{{"payment_id": {id}, "status": "finished"}}"#);
    let signed = hex_hmac(INTERNAL_SECRET, event.as_bytes());
    let finished = internal_webhook(&app, &event, Some(signed), "rm-1").await;
    assert_eq!(finished.status, 200, "{:?}", finished.body);

    let (ok, stdout, stderr) = providers(&["remove", &alias]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&alias), "{stdout}");
    let (_, listed, _) = providers(&["list"]).await;
    assert!(!listed.contains(&format!("\"{alias}\"")), "{listed}");

    let (ok, _, stderr) = providers(&["remove", &alias]).await;
    assert!(!ok);
    assert!(stderr.contains(&format!("no alias {alias}")), "{stderr}");
}
