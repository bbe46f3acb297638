//! `payments::reads`: reads of single payments that concurrent requests
//! share statements for, each answering only its own merchant's payment.

use futures_util::future::join_all;
use paygate::BatchStats;
use paygate::ids::{MerchantId, OrderId, PaymentId, SubscriptionId};
use paygate::payments::PaymentStore;
use paygate::payments::store::Inserted;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::app::{databases, new_payment};

async fn pool() -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .connect(&databases().await.payments)
        .await
        .unwrap()
}

/// Two merchant ids no other test uses: the payments database knows
/// merchants only by number.
fn two_merchants() -> (MerchantId, MerchantId) {
    let base = 1_000_000_000 + i64::from(rand::random::<u32>() >> 2) * 2;
    (MerchantId::new(base), MerchantId::new(base + 1))
}

async fn payment(store: &PaymentStore, merchant: MerchantId, order: i64) -> PaymentId {
    let inserted = store
        .insert(&new_payment(
            merchant,
            OrderId::new(order),
            SubscriptionId::new(1),
        ))
        .await
        .unwrap();
    match inserted {
        Inserted::Created(id) => id,
        Inserted::OrderExists(_) => panic!("order {order} of {merchant} exists"),
    }
}

#[tokio::test]
async fn reads_asked_together_share_a_statement_and_answer_only_their_merchants_payment() {
    let stats = BatchStats::default();
    let store = PaymentStore::new(pool().await).counting_reads(stats.clone());
    let (a, b) = two_merchants();
    let (a1, a2, b1) = (
        payment(&store, a, 1).await,
        payment(&store, a, 2).await,
        payment(&store, b, 1).await,
    );
    let missing = PaymentId::new(i64::MAX);

    // Asked at once (this test's runtime runs one task at a time, so all
    // are queued before a reading task takes any), beside each merchant
    // asking for the other's payment: a merchant guessing another's ids.
    let asks = [
        (a, a1),
        (b, a1),
        (b, b1),
        (a, b1),
        (a, a2),
        (a, a1),
        (b, missing),
    ];
    let answers = join_all(asks.iter().map(|&(m, id)| store.get(m, id))).await;
    let found: Vec<Option<PaymentId>> = answers
        .into_iter()
        .map(|answer| answer.unwrap().map(|p| p.payment_id))
        .collect();
    assert_eq!(
        found,
        [Some(a1), None, Some(b1), None, Some(a2), Some(a1), None]
    );
    // One statement carried the five asks it could; the two asks for an
    // id another merchant had asked for were each read alone after it.
    assert_eq!((stats.calls.get(), stats.asks.get()), (3, 7));

    // An ask that finds a reading task free is read at once, alone.
    let alone = store.get(b, b1).await.unwrap().expect("b's payment");
    assert_eq!((alone.payment_id, alone.order_id), (b1, OrderId::new(1)));
    assert_eq!((stats.calls.get(), stats.asks.get()), (4, 8));
}

#[tokio::test]
async fn reads_on_a_closed_pool_each_fail_with_an_error_to_retry() {
    let pool = pool().await;
    let store = PaymentStore::new(pool.clone());
    let (a, _) = two_merchants();
    let id = payment(&store, a, 1).await;
    assert!(store.get(a, id).await.unwrap().is_some());

    pool.close().await;
    let answers = join_all((0..3).map(|_| store.get(a, id))).await;
    for answer in answers {
        let e = answer.expect_err("no database to read from");
        assert!(paygate::db::is_transient(&e), "{e}");
    }
}
