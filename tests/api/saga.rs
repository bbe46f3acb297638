//! The creation saga called as a service, with no HTTP server in front:
//! idempotency, quota, alias and order checks give typed outcomes and
//! errors, over the real databases, Redis and provider plugins.

use paygate::merchants::{Merchant, NewMerchant, Scope};
use paygate::payments::create::{CreatePayment, create_payment};
use paygate::payments::{Alias, CreateError, IdempotencyKey, Money, Outcome, PaymentStatus};
use paygate::{OrderId, SubscriptionId};

use super::app::{TestApp, spawn_app};

/// A merchant of `app` with `tokens` payment tokens; its subscription.
async fn merchant(app: &TestApp, tokens: i64) -> (Merchant, SubscriptionId) {
    let created = app
        .merchants
        .create(&NewMerchant {
            name: format!("saga-{}", uuid::Uuid::new_v4()),
            callback_url: None,
            tokens,
            currency: "EUR".into(),
            require_signed_writes: false,
        })
        .await
        .unwrap();
    let merchant = Merchant {
        id: created.merchant_id,
        scope: Scope::Write,
        default_currency: "EUR".into(),
        request_signing_secret: None,
        default_return_url: None,
        default_cancel_url: None,
    };
    (merchant, created.subscription_id)
}

fn order(order_id: i64, subscription_id: SubscriptionId, alias: &str) -> CreatePayment {
    CreatePayment {
        order_id: OrderId::new(order_id),
        amount: Money::parse("1").unwrap(),
        price: Money::parse("10.00").unwrap(),
        alias: Alias::parse(alias).unwrap(),
        subscription_id,
        event_id: None,
        currency: None,
        return_url: None,
        cancel_url: None,
        metadata: Default::default(),
    }
}

#[tokio::test]
async fn a_create_opens_a_session_and_its_key_replays_it() {
    let app = spawn_app().await;
    let (merchant, subscription) = merchant(&app, 10).await;
    let request = order(1, subscription, "sandbox");
    let key = IdempotencyKey::parse("saga-key-1").unwrap();
    let create = |fingerprint: &'static [u8]| {
        create_payment(
            &app.payments,
            &merchant,
            &request,
            Some(&key),
            fingerprint,
            "req-saga",
        )
    };

    let first = create(b"body-a").await.unwrap();
    let Outcome::Opened(opened) = &first.outcome else {
        panic!("{first:?}")
    };
    assert!(!first.replayed);
    assert_eq!(opened.status, PaymentStatus::Pending);
    assert!(
        opened.payment_url.starts_with(&app.sandbox_url),
        "{opened:?}"
    );

    let again = create(b"body-a").await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.outcome, first.outcome);

    let other_body = create(b"body-b").await.unwrap_err();
    assert!(
        matches!(other_body, CreateError::IdempotencyConflict),
        "{other_body}"
    );
}

#[tokio::test]
async fn refusals_are_typed_and_charge_nothing() {
    let app = spawn_app().await;
    let (merchant, subscription) = merchant(&app, 1).await;
    let (payments, merchant) = (&app.payments, &merchant);
    let create = |request: CreatePayment| async move {
        create_payment(payments, merchant, &request, None, b"", "req-saga").await
    };

    let unknown = create(order(1, subscription, "nowhere")).await.unwrap_err();
    assert!(
        matches!(&unknown, CreateError::UnknownAlias(a) if a == "nowhere"),
        "{unknown}"
    );

    let opened = create(order(1, subscription, "sandbox")).await.unwrap();
    let Outcome::Opened(opened) = opened.outcome else {
        panic!("{opened:?}")
    };
    let exists = create(order(1, subscription, "sandbox")).await.unwrap_err();
    assert!(
        matches!(exists, CreateError::OrderExists { payment_id } if payment_id == opened.payment_id),
        "{exists}"
    );

    // The only token went to order 1; the refused requests took none.
    let spent = create(order(2, subscription, "sandbox")).await.unwrap_err();
    assert!(matches!(spent, CreateError::QuotaExceeded), "{spent}");
    assert_eq!(app.merchants.tokens_used(subscription).await.unwrap(), 1);

    let not_ours = SubscriptionId::new(subscription.get() + 1_000_000);
    let foreign = create(order(3, not_ours, "sandbox")).await.unwrap_err();
    assert!(
        matches!(foreign, CreateError::InvalidSubscription),
        "{foreign}"
    );
}
