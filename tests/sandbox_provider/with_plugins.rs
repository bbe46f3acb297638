//! The shipped plugins against the sandbox: the adapters open payments on
//! it, and the verifiers accept the webhooks its buttons send. Together
//! they prove the sandbox and the plugins agree on every wire detail.

use paygate::plugins::LoadedPlugin;
use paygate::plugins::bindings::{EventStatus, PaymentRef, PaymentState, WebhookRequest};
use serde_json::Value;

use super::{
    INTERNAL_SECRET_VAR, STRIPE_KEY_VAR, STRIPE_SECRET_VAR, Sandbox, client, gateway, received,
    set_plugin_secrets,
};
use crate::helpers::{FakeServer, Received, Runtime, payment, payment_events};

fn adapter_spec(sandbox: &Sandbox, with_key: bool) -> String {
    let port = sandbox.url.rsplit(':').next().unwrap();
    let mut spec = format!(
        "version = \"1.0.0\"\nallowed_hosts = [\"127.0.0.1:{port}\"]\n[config]\nbase-url = \"{}\"\n",
        sandbox.url
    );
    if with_key {
        spec.push_str(&format!(
            "[secrets]\nsecret-key = \"env:{STRIPE_KEY_VAR}\"\n"
        ));
    }
    spec
}

fn verifier_spec(variable: &str) -> String {
    format!("[secrets]\nwebhook-secret = \"env:{variable}\"\n")
}

/// The webhook as the gateway would hand it to a verifier.
fn as_webhook(received: &Received) -> WebhookRequest {
    WebhookRequest {
        path: received.path.clone(),
        headers: received
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        body: received.body.clone().into_bytes(),
    }
}

/// Opens payment `id` through `adapter`, checks its page offers the
/// buttons, clicks `button`, and returns the provider reference.
pub(crate) async fn open_and_click(adapter: &LoadedPlugin, id: u64, button: &str) -> String {
    let session = adapter
        .create_payment("req-sandbox", &payment(id, &[]))
        .await
        .unwrap()
        .unwrap();
    let page = client().get(&session.payment_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("id=\"pay\"") && page.contains("id=\"decline\""),
        "{page}"
    );
    let click = format!("{}/{button}", session.payment_url);
    let answer = client().post(click).send().await.unwrap();
    // `payment()` has a return and a cancel URL. Pay leads to the first;
    // Decline to the second through a 0.2.0 adapter, and to the first
    // through a 0.1.0 one, which has no cancel URL to pass on.
    assert_eq!(answer.status(), 303);
    let back = match (button, adapter.wit_version()) {
        ("decline", "0.2.0") => "https://shop.example/cancel",
        _ => "https://shop.example/return",
    };
    assert_eq!(answer.headers()["location"], back);
    session.reference
}

async fn verify(verifier: &LoadedPlugin, webhook: &Received) -> (PaymentRef, EventStatus) {
    let mut events = payment_events(
        verifier
            .verify("req-webhook", &as_webhook(webhook))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("verifier refused {webhook:?}: {e:?}")),
    );
    assert_eq!(events.len(), 1);
    let event = events.remove(0);
    (event.payment, event.status)
}

/// Opens payment `id` through `adapter`, clicks `button`, and checks the
/// adapter's status and the `nth` webhook the gateway got, as `verifier`
/// reads it. Returns the provider reference and the webhook.
async fn click_and_check(
    adapter: &LoadedPlugin,
    verifier: &LoadedPlugin,
    gateway: &FakeServer,
    id: u64,
    button: &str,
    nth: usize,
) -> (String, Received) {
    let (state, event) = if button == "pay" {
        (PaymentState::Finished, EventStatus::Finished)
    } else {
        (PaymentState::Failed, EventStatus::Failed)
    };
    let reference = open_and_click(adapter, id, button).await;
    let seen = adapter
        .payment_status("r", &reference)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, state);
    let webhook = received(gateway, nth + 1).await[nth].clone();
    let (payment_ref, status) = verify(verifier, &webhook).await;
    // Both name the payment by what the adapter opened, the link or the
    // session, never by an id or client reference anyone can put in a
    // link or session of their own (security review, findings 9 and 16).
    assert!(
        matches!(&payment_ref, PaymentRef::ProviderReference(r) if *r == reference),
        "{payment_ref:?}"
    );
    assert_eq!(status, event);
    (reference, webhook)
}

#[tokio::test]
async fn sandbox_adapter_and_internal_verifier_agree_with_the_sandbox() {
    set_plugin_secrets();
    let gateway = gateway().await;
    let sandbox = Sandbox::start(&gateway.url()).await;
    let rt = Runtime::new();
    let adapter = rt.install("sandbox", "sandbox_adapter", &adapter_spec(&sandbox, false));
    let verifier = rt.install(
        "internal-webhook",
        "internal_hmac",
        &verifier_spec(INTERNAL_SECRET_VAR),
    );

    let (reference, _) = click_and_check(&adapter, &verifier, &gateway, 81, "pay", 0).await;
    assert!(reference.starts_with("pl_"));
    let (reference, _) = click_and_check(&adapter, &verifier, &gateway, 82, "decline", 1).await;

    // The adapter's retry (same idempotency key) gets the same link back.
    let again = adapter
        .create_payment("r", &payment(82, &[]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.reference, reference);
}

#[tokio::test]
async fn stripe_adapter_and_verifier_agree_with_the_sandbox() {
    set_plugin_secrets();
    let gateway = gateway().await;
    let sandbox = Sandbox::start(&gateway.url()).await;
    let rt = Runtime::new();
    // The verifier checks the signature's age against the runtime's clock.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    rt.services.clock.set_ms(now_ms);
    let adapter = rt.install("stripe", "stripe_adapter", &adapter_spec(&sandbox, true));
    let verifier = rt.install(
        "stripe-webhook",
        "stripe_verifier",
        &verifier_spec(STRIPE_SECRET_VAR),
    );

    let (reference, webhook) = click_and_check(&adapter, &verifier, &gateway, 91, "pay", 0).await;
    assert!(reference.starts_with("cs_test_"));
    let event: Value = serde_json::from_str(&webhook.body).unwrap();
    assert_eq!(event["data"]["object"]["amount_total"], 1000);
    assert_eq!(event["data"]["object"]["metadata"]["order_id"], "1091");
    // The 0.2.0 verifier says the session's amount, for the host to check.
    let events = payment_events(
        verifier
            .verify("req-amount", &as_webhook(&webhook))
            .await
            .unwrap()
            .unwrap(),
    );
    let amount = events[0].amount.as_ref().expect("an amount");
    assert_eq!(
        (amount.value.as_str(), amount.currency.as_str()),
        ("10.00", "EUR")
    );

    click_and_check(&adapter, &verifier, &gateway, 92, "decline", 1).await;
}
