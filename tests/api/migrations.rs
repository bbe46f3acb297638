//! The payments database holds no demo shop table after its migrations, and
//! an upgrade of an installation that used the shop keeps the shop's rows.
//! During a rolling upgrade, binaries of the previous release and of this
//! one see each other's quota writes, and a binary starts against a
//! database a newer release migrated.

use std::time::Duration;

use paygate::merchants::{MerchantStore, NewMerchant, Take};
use paygate::{MerchantId, OrderId, SubscriptionId};
use sqlx::PgPool;
use sqlx::migrate::Migrator;

use super::app::{databases, isolated, test_sealer};
use crate::helpers::root;

/// The first payments migration after the shop's tables left.
const SHOP_TABLES_LEAVE: &str = "20261201120000";

async fn tables(db: &PgPool) -> (bool, bool) {
    sqlx::query_as(
        "SELECT to_regclass('orders') IS NOT NULL, to_regclass('order_notifications') IS NOT NULL",
    )
    .fetch_one(db)
    .await
    .unwrap()
}

/// A new database (named like this process's others, so a later run drops
/// it) with the payments migrations from before the shop's tables left.
async fn database_before_the_move(name: &str) -> (String, PgPool) {
    let url = format!("{}_{name}", databases().await.payments);
    let earlier = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(root().join("migrations/payments")).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if file.as_str() < SHOP_TABLES_LEAVE {
            std::fs::copy(&path, earlier.path().join(&file)).unwrap();
        }
    }
    let migrator = Migrator::new(earlier.path()).await.unwrap();
    let db = paygate::db::connect_and_migrate("TEST_DATABASE_URL", &url, 2, &migrator)
        .await
        .unwrap();
    assert_eq!(tables(&db).await, (true, true), "the old layout had them");
    (url, db)
}

async fn upgrade(url: &str) -> PgPool {
    let migrator = Migrator::new(root().join("migrations/payments"))
        .await
        .unwrap();
    paygate::db::connect_and_migrate("TEST_DATABASE_URL", url, 2, &migrator)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_fresh_payments_database_has_no_shop_tables() {
    let db = PgPool::connect(&databases().await.payments).await.unwrap();
    assert_eq!(tables(&db).await, (false, false));
}

#[tokio::test]
async fn an_upgrade_drops_the_shop_tables_only_when_they_are_empty() {
    let (url, _) = database_before_the_move("upgrade_empty").await;
    assert_eq!(tables(&upgrade(&url).await).await, (false, false));

    let (url, db) = database_before_the_move("upgrade_used").await;
    sqlx::query(
        "INSERT INTO orders (product_id, quantity, alias, price, currency) \
         VALUES (1, 2, 'sandbox', 20, 'EUR')",
    )
    .execute(&db)
    .await
    .unwrap();
    let db = upgrade(&url).await;
    // Both stay, rows and all, for the operator to move or drop.
    assert_eq!(tables(&db).await, (true, true));
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(kept, 1);
}

/// What binaries of earlier releases run against `quota_charges`, as their
/// `merchants/store.rs` wrote it: they read and write `settled`, and the
/// oldest still give tokens back through `refund_quota_token`.
mod previous_release {
    use sqlx::PgPool;

    use paygate::{MerchantId, OrderId};

    pub async fn confirm(db: &PgPool, merchant: MerchantId, order: i64) {
        sqlx::query(
            "UPDATE quota_charges c SET settled = TRUE
             FROM unnest($1::bigint[], $2::bigint[]) AS o (merchant_id, order_id)
             WHERE c.merchant_id = o.merchant_id AND c.order_id = o.order_id",
        )
        .bind(vec![merchant.get()])
        .bind(vec![order])
        .execute(db)
        .await
        .unwrap();
    }

    /// Every unsettled charge, however young.
    pub async fn unconfirmed(db: &PgPool) -> Vec<(MerchantId, OrderId)> {
        sqlx::query_as(
            "SELECT merchant_id, order_id FROM quota_charges
             WHERE NOT settled AND charged_at < now() - make_interval(secs => $1)
             ORDER BY charged_at LIMIT $2",
        )
        .bind(0.0_f64)
        .bind(100_i64)
        .fetch_all(db)
        .await
        .unwrap()
    }

    /// Whether a request took the order's charge over, however young.
    pub async fn take_over(db: &PgPool, merchant: MerchantId, order: i64) -> bool {
        sqlx::query(
            "UPDATE quota_charges SET charged_at = now()
             WHERE merchant_id = $1 AND order_id = $2 AND NOT settled
               AND charged_at < now() - make_interval(secs => $3)",
        )
        .bind(merchant)
        .bind(order)
        .bind(0.0_f64)
        .execute(db)
        .await
        .unwrap()
        .rows_affected()
            == 1
    }

    pub async fn return_token(db: &PgPool, merchant: MerchantId, order: i64) -> bool {
        sqlx::query_scalar("SELECT refund_quota_token($1, $2)")
            .bind(merchant)
            .bind(order)
            .fetch_one(db)
            .await
            .unwrap()
    }
}

/// A merchants database of its own (so no other test's charges show up in
/// its scans), fully migrated, with one merchant who has taken a token for
/// each of `orders`: the store, its pool, the merchant id and the
/// subscription id.
async fn merchant_with_charges(
    name: &str,
    orders: &[i64],
) -> (MerchantStore, PgPool, MerchantId, SubscriptionId) {
    let url = format!("{}_{name}", databases().await.merchants);
    let migrator = Migrator::new(root().join("migrations/merchants"))
        .await
        .unwrap();
    let db = paygate::db::connect_and_migrate("TEST_DATABASE_URL", &url, 2, &migrator)
        .await
        .unwrap();
    let store = MerchantStore::new(db.clone(), test_sealer());
    let merchant = store
        .create(&NewMerchant {
            name: "rolling upgrade".into(),
            callback_url: None,
            tokens: 10,
            currency: "EUR".into(),
            require_signed_writes: false,
        })
        .await
        .unwrap();
    let (m, sub) = (merchant.merchant_id, merchant.subscription_id);
    for &order in orders {
        let taken = store.take_token(m, sub, OrderId::new(order)).await;
        assert_eq!(taken.unwrap(), Take::Taken);
    }
    (store, db, m, sub)
}

#[tokio::test]
async fn this_release_sees_what_a_previous_release_wrote() {
    let (store, db, m, sub) = merchant_with_charges("rolling_old_writes", &[1, 2, 3]).await;
    previous_release::confirm(&db, m, 1).await;
    assert!(previous_release::return_token(&db, m, 2).await);

    let unconfirmed = store.unconfirmed_charges(Duration::ZERO, 100).await;
    let unconfirmed: Vec<_> = unconfirmed.unwrap().iter().map(|c| c.order()).collect();
    assert_eq!(
        unconfirmed,
        [(m, OrderId::new(3))],
        "order 1 confirmed, order 2 returned"
    );
    assert!(
        !store
            .take_over_charge(m, OrderId::new(1), Duration::ZERO)
            .await
            .unwrap(),
        "a confirmed charge is never taken over"
    );
    assert_eq!(store.tokens_used(sub).await.unwrap(), 2);
}

#[tokio::test]
async fn a_previous_release_sees_what_this_one_wrote() {
    let (store, db, m, sub) = merchant_with_charges("rolling_new_writes", &[1, 2, 3]).await;
    store
        .confirm_charges(&[(m, OrderId::new(1))])
        .await
        .unwrap();
    assert!(store.return_token(m, OrderId::new(2)).await.unwrap());

    assert_eq!(
        previous_release::unconfirmed(&db).await,
        [(m, OrderId::new(3))],
        "order 1 confirmed, order 2 returned"
    );
    assert!(
        !previous_release::take_over(&db, m, 1).await,
        "a confirmed charge stays"
    );
    assert!(
        !previous_release::return_token(&db, m, 2).await,
        "a token goes back once"
    );
    assert_eq!(store.tokens_used(sub).await.unwrap(), 2);
}

#[tokio::test]
async fn a_binary_starts_against_databases_a_newer_release_migrated() {
    let (urls, _) = isolated("newer_release").await;
    let dbs = paygate::db::Databases::connect_and_migrate(&urls, 2, &Default::default())
        .await
        .unwrap();
    for db in [&dbs.payments, &dbs.merchants, &dbs.providers, &dbs.logs] {
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (29991231000000, 'a newer release', TRUE, '\\x00', 0)",
        )
        .execute(db)
        .await
        .unwrap();
    }
    paygate::db::Databases::connect_and_migrate(&urls, 2, &Default::default())
        .await
        .expect("a replica of this release restarts mid-upgrade");
}

/// During a rolling upgrade the previous release reserves and settles
/// refunds with its own SQL (below, as it ran), which knows nothing of
/// `payments.reserved`; the refunds table's triggers keep that right, so
/// this release's reservation counts the older release's refunds.
#[tokio::test]
async fn refunds_of_the_previous_release_keep_what_is_reserved() {
    let app = super::app::spawn_app().await;
    let id = super::refunds::paid_payment(&app, 1).await;
    let db = &app.dbs.payments;
    let merchant = app.merchant.merchant_id.get();
    let reserve = |price: rust_decimal::Decimal, key: &'static str| async move {
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO refunds (payment_id, merchant_id, price, currency, reason, status,
                                  idempotency_key, request_hash)
             VALUES ($1, $2, $3, $4, $5, 'REFUND_PENDING', $6, $7)
             RETURNING id",
        )
        .bind(id)
        .bind(merchant)
        .bind(price)
        .bind("EUR")
        .bind(None::<String>)
        .bind(key)
        .bind(b"fingerprint".to_vec())
        .fetch_one(db)
        .await
        .unwrap()
    };
    let settle = |refund: i64, status: &'static str| async move {
        sqlx::query(
            "UPDATE refunds SET status = $2, provider_reference = coalesce($3, provider_reference),
                      failure_message = $4, updated_at = now()
             WHERE id = $1 AND status = 'REFUND_PENDING'
             RETURNING payment_id, price",
        )
        .bind(refund)
        .bind(status)
        .bind(None::<String>)
        .bind(None::<String>)
        .fetch_one(db)
        .await
        .unwrap();
    };
    let reserved = || async {
        sqlx::query_scalar::<_, String>("SELECT reserved::text FROM payments WHERE id = $1")
            .bind(id)
            .fetch_one(db)
            .await
            .unwrap()
    };

    let failed = reserve(rust_decimal::Decimal::new(300, 2), "old-1").await;
    assert_eq!(reserved().await, "3.00");
    settle(failed, "REFUND_FAILED").await;
    assert_eq!(reserved().await, "0.00");
    let succeeded = reserve(rust_decimal::Decimal::new(200, 2), "old-2").await;
    settle(succeeded, "REFUND_SUCCEEDED").await;
    sqlx::query(
        "UPDATE payments SET refunded = refunded + CASE WHEN $2 THEN $3::numeric ELSE 0 END,
                  updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(true)
    .bind(rust_decimal::Decimal::new(200, 2))
    .execute(db)
    .await
    .unwrap();
    assert_eq!(reserved().await, "2.00");

    // This release refunds what is left, and no more.
    let rest = super::refunds::refund(&app, id, serde_json::json!({})).await;
    assert_eq!(rest.body["price"], "8.00", "{:?}", rest.body);
    assert_eq!(reserved().await, "10.00");
}
