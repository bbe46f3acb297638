//! The shipped plugins against the sandbox: the adapters open payments on
//! it, and the verifiers accept the webhooks its buttons send. Together
//! they prove the sandbox and the plugins agree on every wire detail.

use paygate::plugins::LoadedPlugin;
use paygate::plugins::bindings::{
    Event, EventStatus, PaymentRef, PaymentState, RefundReason, RefundRequest, RefundState,
    RefundStatus, WebhookRequest,
};
use serde_json::Value;

use super::{
    ADYEN_HMAC_VAR, ADYEN_KEY_VAR, INTERNAL_SECRET_VAR, STRIPE_KEY_VAR, STRIPE_SECRET_VAR, Sandbox,
    adyen_item, client, gateway, received, set_plugin_secrets,
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

/// The Adyen adapter opens a payment the sandbox redirects the shopper
/// for, the verifier accepts the `AUTHORISATION` the page sends, and a
/// refund the adapter asks for is confirmed by a `REFUND` it accepts too.
#[tokio::test]
async fn adyen_adapter_and_verifier_agree_with_the_sandbox() {
    set_plugin_secrets();
    let gateway = gateway().await;
    let sandbox = Sandbox::start(&gateway.url()).await;
    let rt = Runtime::new();
    let port = sandbox.url.rsplit(':').next().unwrap();
    let adapter = rt.install(
        "adyen",
        "adyen_adapter",
        &format!(
            "version = \"1.0.0\"\nallowed_hosts = [\"127.0.0.1:{port}\"]\n[config]\n\
             base-url = \"{}\"\nmerchant-account = \"PaygateTests\"\npayment-method = \"ideal\"\n\
             [secrets]\napi-key = \"env:{ADYEN_KEY_VAR}\"\n",
            sandbox.url
        ),
    );
    let verifier = rt.install(
        "adyen-webhook",
        "adyen_verifier",
        &format!(
            "[config]\nmerchant-account = \"PaygateTests\"\n[secrets]\nhmac-key = \"env:{ADYEN_HMAC_VAR}\"\n"
        ),
    );

    let mut paid = String::new();
    for (nth, (id, button, status)) in [
        (95, "pay", EventStatus::Finished),
        (96, "decline", EventStatus::Failed),
    ]
    .into_iter()
    .enumerate()
    {
        let session = adapter
            .create_payment("req-adyen", &payment(id, &[("cart", "c-1")]))
            .await
            .unwrap()
            .unwrap();
        let page = format!("{}/pay/{}", sandbox.url, session.reference);
        assert_eq!(session.payment_url, page);
        let answer = client()
            .post(format!("{page}/{button}"))
            .send()
            .await
            .unwrap();
        // One return URL for either outcome: the payment's own.
        assert_eq!(answer.status(), 303);
        assert_eq!(answer.headers()["location"], "https://shop.example/return");
        let webhook = received(&gateway, nth + 1).await[nth].clone();
        let item = adyen_item(&webhook);
        assert_eq!(item["merchantReference"], id.to_string());
        let (payment_ref, seen) = verify(&verifier, &webhook).await;
        assert!(
            matches!(&payment_ref, PaymentRef::ProviderReference(r) if *r == session.reference),
            "{payment_ref:?}"
        );
        assert_eq!(seen, status);
        if button == "pay" {
            paid = session.reference;
        }
    }

    let request = RefundRequest {
        refund_id: 9,
        payment_id: 95,
        merchant_id: 7,
        payment_reference: paid.clone(),
        price: "2.50".into(),
        currency: "EUR".into(),
        reason: Some(RefundReason::RequestedByCustomer),
        idempotency_key: "paygate-refund-9".into(),
        metadata: Vec::new(),
    };
    let refund = adapter
        .refund("req-refund", &request)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refund.state, RefundState::Pending);
    assert_eq!(refund.reference.len(), 16, "{}", refund.reference);
    let webhook = received(&gateway, 3).await[2].clone();
    let item = adyen_item(&webhook);
    assert_eq!(item["originalReference"], paid.as_str());
    let events = verifier
        .verify("req-refund-webhook", &as_webhook(&webhook))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("verifier refused {webhook:?}: {e:?}"));
    match events.as_slice() {
        [Event::Refund(event)] => {
            assert_eq!(event.reference.as_deref(), Some(refund.reference.as_str()));
            assert_eq!(event.refund_id, Some(9));
            assert_eq!(event.status, RefundStatus::Succeeded);
        }
        other => panic!("expected one refund event, got {other:?}"),
    }
}
