//! The sandbox payment provider over real HTTP on loopback, its webhooks
//! received by a fake gateway, and the real adapter and verifier plugins
//! run against it.

mod adyen;
mod flows;
mod refusals;
pub(crate) mod with_plugins;

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::any;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use paygate::plugins::Secret;
use paygate_demo::sandbox::{SandboxArgs, serve};
use serde_json::Value;
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::helpers::{FakeServer, Received};

/// The secrets the sandbox signs with in these tests; the verifier plugins
/// read the same values from the environment variables below.
const INTERNAL_SECRET: &str = "internal-secret-for-tests";
const STRIPE_SECRET: &str = "whsec_sandbox_tests";
const INTERNAL_SECRET_VAR: &str = "PAYGATE_PLUGIN_SECRET_TEST_SANDBOX_INTERNAL_SECRET";
const STRIPE_SECRET_VAR: &str = "PAYGATE_PLUGIN_SECRET_TEST_SANDBOX_STRIPE_SECRET";
const STRIPE_KEY_VAR: &str = "PAYGATE_PLUGIN_SECRET_TEST_SANDBOX_STRIPE_KEY";
/// The API key the sandbox takes as Adyen's, and Adyen's HMAC key (hex).
const ADYEN_KEY: &str = "adyen_key_for_sandbox_tests";
const ADYEN_HMAC: &str = "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF";
const ADYEN_KEY_VAR: &str = "PAYGATE_PLUGIN_SECRET_TEST_SANDBOX_ADYEN_KEY";
const ADYEN_HMAC_VAR: &str = "PAYGATE_PLUGIN_SECRET_TEST_SANDBOX_ADYEN_HMAC";

/// A running sandbox.
pub(crate) struct Sandbox {
    pub(crate) url: String,
    stop: CancellationToken,
    served: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Sandbox {
    /// Serves a sandbox on a free loopback port, sending webhooks to `gateway`.
    pub(crate) async fn start(gateway: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let args = SandboxArgs {
            listen: addr,
            public_url: format!("{url}/"),
            gateway_url: gateway.to_string(),
            internal_webhook_secret: Secret::new(INTERNAL_SECRET),
            stripe_webhook_secret: Secret::new(STRIPE_SECRET),
            adyen_api_key: Secret::new(ADYEN_KEY),
            adyen_hmac_key: Secret::new(ADYEN_HMAC),
            max_payments: paygate_demo::sandbox::DEFAULT_MAX_PAYMENTS,
        };
        let stop = CancellationToken::new();
        let served = tokio::spawn(serve(listener, args, stop.clone()));
        Self { url, stop, served }
    }

    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

/// A gateway that accepts every webhook.
pub(crate) async fn gateway() -> FakeServer {
    FakeServer::start(
        Router::new().fallback(any(|| async { (StatusCode::OK, r#"{"status":"ok"}"#) })),
    )
    .await
}

/// A client that shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// Waits for the gateway to have received `count` requests.
async fn received(gateway: &FakeServer, count: usize) -> Vec<Received> {
    for _ in 0..100 {
        let requests = gateway.requests();
        if requests.len() >= count {
            return requests;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway received {:?}", gateway.requests());
}

fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks `x-internal-signature` over the raw body.
fn assert_internal_signature(webhook: &Received) {
    let expected = hmac_hex(INTERNAL_SECRET.as_bytes(), webhook.body.as_bytes());
    assert_eq!(webhook.headers["x-internal-signature"], expected);
    assert_eq!(webhook.headers["content-type"], "application/json");
}

/// Checks `Stripe-Signature` (`t=…,v1=…` over `{t}.{body}`), returns the event.
fn stripe_event(webhook: &Received) -> Value {
    let header = &webhook.headers["stripe-signature"];
    let (t, v1) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap_or_else(|| panic!("malformed Stripe-Signature {header}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(t.parse().unwrap()) < 60, "stale t={t}");
    let signed = format!("{t}.{}", webhook.body);
    assert_eq!(v1, hmac_hex(STRIPE_SECRET.as_bytes(), signed.as_bytes()));
    assert_eq!(webhook.headers["content-type"], "application/json");
    serde_json::from_str(&webhook.body).unwrap()
}

/// Checks an Adyen notification's one item against its `hmacSignature`
/// (recomputed here from the body's own fields), returns the item.
fn adyen_item(webhook: &Received) -> Value {
    assert_eq!(webhook.path, "/api/v1/payments/webhook/adyen");
    assert_eq!(webhook.headers["content-type"], "application/json");
    let body: Value = serde_json::from_str(&webhook.body).unwrap();
    assert_eq!(body["live"], "false");
    let items = body["notificationItems"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body}");
    let item = items[0]["NotificationRequestItem"].clone();
    let text = |field: &str| item[field].as_str().unwrap_or_default().to_owned();
    let signed = [
        text("pspReference"),
        text("originalReference"),
        text("merchantAccountCode"),
        text("merchantReference"),
        item["amount"]["value"].as_u64().unwrap().to_string(),
        item["amount"]["currency"].as_str().unwrap().to_owned(),
        text("eventCode"),
        text("success"),
    ]
    .join(":");
    let mut mac = Hmac::<Sha256>::new_from_slice(&hex::decode(ADYEN_HMAC).unwrap()).unwrap();
    mac.update(signed.as_bytes());
    let expected = BASE64.encode(mac.finalize().into_bytes());
    assert_eq!(item["additionalData"]["hmacSignature"], expected.as_str());
    item
}

/// Sets the variables the plugin specs name.
fn set_plugin_secrets() {
    // SAFETY: every test sets the same values, so concurrent writers agree.
    unsafe {
        std::env::set_var(INTERNAL_SECRET_VAR, INTERNAL_SECRET);
        std::env::set_var(STRIPE_SECRET_VAR, STRIPE_SECRET);
        std::env::set_var(STRIPE_KEY_VAR, "sk_test_sandbox");
        std::env::set_var(ADYEN_KEY_VAR, ADYEN_KEY);
        std::env::set_var(ADYEN_HMAC_VAR, ADYEN_HMAC);
    }
}

#[test]
fn settings_come_from_flags_and_hide_the_secrets() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sandbox: SandboxArgs,
    }
    let cli = Cli::try_parse_from([
        "sandbox",
        "--listen=127.0.0.1:9002",
        "--public-url=http://pay.test",
        "--gateway-url=http://gateway.test",
        "--internal-webhook-secret=s3cret-internal",
        "--stripe-webhook-secret=whsec_s3cret",
        "--adyen-api-key=adyen_s3cret",
        "--adyen-hmac-key=5333637265740000",
    ])
    .unwrap();
    let args = cli.sandbox;
    assert_eq!(args.listen.port(), 9002);
    assert_eq!(args.gateway_url, "http://gateway.test");
    assert_eq!(args.stripe_webhook_secret.expose(), "whsec_s3cret");
    assert_eq!(args.adyen_api_key.expose(), "adyen_s3cret");
    assert!(
        !format!("{args:?}").contains("5333637265740000"),
        "{args:?}"
    );
    assert!(!format!("{args:?}").contains("s3cret"), "{args:?}");
}
