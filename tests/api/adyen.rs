//! The `adyen` alias end to end (notes/adyen-wire.md): the shipped Adyen
//! adapter opens payments and refunds at the sandbox's Adyen dialect, the
//! buyer pays or declines on the sandbox's page, and the sandbox's
//! HMAC-signed `AUTHORISATION` and `REFUND` notifications, checked by the
//! shipped Adyen verifier, finish them; the merchant is notified.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::app::{
    ExtraPlugin, LAX_RATE_LIMIT, TestApp, bind_verified, clicker, merchant_with, spawn_app_staging,
};
use super::notifications::MerchantEndpoint;
use super::refunds::{payment, refund, refund_becomes, refund_reference};

/// The merchant account the test specs name.
const ACCOUNT: &str = "PaygateTests";
/// Where the adapter sends buyers when a payment names no return URL.
const RETURN_URL: &str = "https://shop.example/orders";

/// The `adyen` adapter calling the sandbox provider at `sandbox_addr`
/// (host:port), and its verifier, both with the host's Adyen secrets.
pub(crate) fn adyen_plugins(sandbox_addr: &str) -> Vec<ExtraPlugin> {
    let adapter = format!(
        "allowed_hosts = [\"{sandbox_addr}\"]\n[config]\nbase-url = \"http://{sandbox_addr}\"\n\
         merchant-account = \"{ACCOUNT}\"\npayment-method = \"ideal\"\nreturn-url = \"{RETURN_URL}\"\n\
         [secrets]\napi-key = \"env:ADYEN_API_KEY\"\n"
    );
    let verifier = format!(
        "[config]\nmerchant-account = \"{ACCOUNT}\"\n[secrets]\nhmac-key = \"env:ADYEN_HMAC_KEY\"\n"
    );
    vec![
        ("adyen", "adyen_adapter", adapter),
        ("adyen-webhook", "adyen_verifier", verifier),
    ]
}

/// A host serving the `adyen` alias, its merchant notified at `endpoint`.
pub(crate) async fn adyen_app(endpoint: &MerchantEndpoint) -> TestApp {
    let mut app = spawn_app_staging(LAX_RATE_LIMIT, adyen_plugins, |c| c).await;
    bind_verified(&app.providers, "adyen", "adyen", "adyen-webhook").await;
    app.merchant = merchant_with(&app.merchants, 1000, false, Some(endpoint.url())).await;
    app
}

/// Creates a 10.00 EUR payment through `adyen` and clicks `button` on the
/// sandbox's page; returns its id once it is `status`.
async fn clicked(app: &TestApp, order: i64, button: &str, status: &str) -> i64 {
    let id = created(app, order).await;
    let url = payment(app, id).await["payment_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = clicker()
        .post(format!("{url}/{button}"))
        .send()
        .await
        .unwrap();
    // Adyen has one return URL, for either outcome.
    assert_eq!(answer.status(), 303);
    assert_eq!(answer.headers()["location"], RETURN_URL);
    let started = Instant::now();
    while payment(app, id).await["status"] != status {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "payment {id} never became {status}: {}",
            payment(app, id).await
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    id
}

/// Creates a 10.00 EUR payment through `adyen`, still pending.
async fn created(app: &TestApp, order: i64) -> i64 {
    let mut body = app.body(order);
    body["alias"] = json!("adyen");
    body["metadata"] = json!({"cart": format!("c-{order}")});
    let created = app.create(&body).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    assert_eq!(created.body["status"], "PAYMENT_PENDING");
    let url = created.body["payment_url"].as_str().unwrap();
    let psp = url
        .strip_prefix(&format!("{}/pay/", app.sandbox_url))
        .unwrap_or_else(|| panic!("not the sandbox's page: {url}"));
    assert!(
        psp.len() == 16 && psp.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{psp}"
    );
    created.body["payment_id"].as_i64().unwrap()
}

/// An Adyen notification about `psp`, signed with `hmac_key` (hex).
fn notification(psp: &str, merchant_reference: &str, hmac_key: &str) -> String {
    let signed = format!("{psp}::{ACCOUNT}:{merchant_reference}:1000:EUR:AUTHORISATION:true");
    let mut mac = Hmac::<Sha256>::new_from_slice(&hex::decode(hmac_key).unwrap()).unwrap();
    mac.update(signed.as_bytes());
    let item = json!({
        "additionalData": {"hmacSignature": BASE64.encode(mac.finalize().into_bytes())},
        "amount": {"currency": "EUR", "value": 1000}, "eventCode": "AUTHORISATION",
        "eventDate": "2026-12-03T10:00:00+01:00", "merchantAccountCode": ACCOUNT,
        "merchantReference": merchant_reference, "paymentMethod": "ideal",
        "pspReference": psp, "reason": "", "success": "true"});
    json!({"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}).to_string()
}

#[tokio::test]
async fn an_adyen_payment_paid_on_the_page_is_finished_by_its_signed_authorisation() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = adyen_app(&endpoint).await;

    // Signed with another key, a notification moves nothing.
    let pending = created(&app, 1).await;
    let url = payment(&app, pending).await["payment_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let psp = url.rsplit('/').next().unwrap();
    let forged = notification(psp, &pending.to_string(), &"11".repeat(32));
    let answer = app
        .post_raw(
            "/api/v1/payments/webhook/adyen",
            None,
            &[("content-type", "application/json")],
            forged.into_bytes(),
        )
        .await;
    assert_eq!(
        (answer.status, answer.code()),
        (403, "invalid_signature"),
        "{:?}",
        answer.body
    );
    assert_eq!(payment(&app, pending).await["status"], "PAYMENT_PENDING");

    let id = clicked(&app, 2, "pay", "PAYMENT_FINISHED").await;
    let kinds = app.timeline_types(id).await;
    assert!(
        kinds.contains(&"EVENT_PROVIDER_WEBHOOK".to_owned()),
        "{kinds:?}"
    );
    let sent = endpoint
        .notified("payment.finished", "payment_id", id)
        .await;
    assert_eq!(sent["status"], "PAYMENT_FINISHED");
    assert_eq!(
        (&sent["price"], &sent["currency"]),
        (&json!("10.00"), &json!("EUR"))
    );
    assert_eq!(sent["metadata"], json!({"cart": "c-2"}));
}

#[tokio::test]
async fn an_adyen_payment_declined_on_the_page_fails_and_is_notified() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = adyen_app(&endpoint).await;
    let id = clicked(&app, 1, "decline", "PAYMENT_FAILED").await;
    let sent = endpoint.notified("payment.failed", "payment_id", id).await;
    assert_eq!(sent["status"], "PAYMENT_FAILED");
    // A refund of a failed payment is refused before Adyen is asked.
    let r = refund(&app, id, json!({})).await;
    assert_eq!((r.status, r.code()), (409, "payment_not_refundable"));
}

/// Adyen answers every refund `received`: paygate holds it pending until
/// the signed `REFUND` notification says it succeeded.
#[tokio::test]
async fn a_partial_adyen_refund_succeeds_by_its_refund_notification() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = adyen_app(&endpoint).await;
    let id = clicked(&app, 1, "pay", "PAYMENT_FINISHED").await;

    let r = refund(
        &app,
        id,
        json!({"price": "2.50", "reason": "requested_by_customer"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "REFUND_PENDING");
    let refund_id = r.body["refund_id"].as_i64().unwrap();
    let reference = refund_reference(&app, refund_id).await;
    assert_eq!(reference.len(), 16, "{reference}");

    let settled = refund_becomes(&app, refund_id, "REFUND_SUCCEEDED").await;
    assert_eq!(settled["price"], "2.50");
    assert_eq!(payment(&app, id).await["refunded"], "2.50");
    let sent = endpoint
        .notified("refund.succeeded", "refund_id", refund_id)
        .await;
    assert_eq!(
        (sent["payment_id"].as_i64(), &sent["price"]),
        (Some(id), &json!("2.50"))
    );
    let kinds = app.timeline_types(id).await;
    assert!(
        kinds.contains(&"EVENT_REFUND_SUCCEEDED".to_owned()),
        "{kinds:?}"
    );
}

/// A refund whose minor units end in 13 is received, then announced as
/// failed: nothing is given back, and what is left stays refundable.
#[tokio::test]
async fn an_adyen_refund_at_a_price_ending_in_13_fails_by_its_refund_notification() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = adyen_app(&endpoint).await;
    let id = clicked(&app, 1, "pay", "PAYMENT_FINISHED").await;

    let r = refund(&app, id, json!({"price": "1.13"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "REFUND_PENDING");
    let refund_id = r.body["refund_id"].as_i64().unwrap();
    refund_becomes(&app, refund_id, "REFUND_FAILED").await;
    endpoint
        .notified("refund.failed", "refund_id", refund_id)
        .await;
    assert_eq!(payment(&app, id).await["refunded"], "0");
    let kinds = app.timeline_types(id).await;
    assert!(
        kinds.contains(&"EVENT_REFUND_FAILED".to_owned()),
        "{kinds:?}"
    );

    // All of the price is still there to give back.
    let rest = refund(&app, id, json!({})).await;
    assert_eq!(rest.body["price"], "10.00", "{:?}", rest.body);
    let rest_id = rest.body["refund_id"].as_i64().unwrap();
    refund_becomes(&app, rest_id, "REFUND_SUCCEEDED").await;
    assert_eq!(payment(&app, id).await["refunded"], "10.00");
}

#[tokio::test]
async fn an_adyen_payment_in_isk_with_more_metadata_than_adyen_takes_is_opened_at_its_price() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = adyen_app(&endpoint).await;
    let mut body = app.body(1);
    body["alias"] = json!("adyen");
    body["price"] = json!("1000");
    body["currency"] = json!("ISK");
    // paygate takes keys of 40 characters and values of 500; Adyen 20 and 80.
    let mut metadata: serde_json::Map<String, Value> =
        (0..18).map(|i| (format!("k{i:02}"), json!("v"))).collect();
    metadata.insert("a_key_longer_than_adyens_limit".into(), json!("v"));
    metadata.insert("long".into(), json!("x".repeat(200)));
    body["metadata"] = Value::Object(metadata.clone());

    let created = app.create(&body).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    assert_eq!(created.body["status"], "PAYMENT_PENDING");
    // paygate keeps all of it, whatever the provider could carry.
    let id = created.body["payment_id"].as_i64().unwrap();
    assert_eq!(payment(&app, id).await["metadata"], Value::Object(metadata));

    // Adyen counts ISK in hundredths: the adapter sent 100000, and the
    // provider's page reads it back as 1000 ISK, not 100000.
    let url = created.body["payment_url"].as_str().unwrap();
    let page = clicker()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("1000.00 ISK"), "{page}");
    assert!(!page.contains("100000"), "{page}");
}
