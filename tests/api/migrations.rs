//! The payments database holds no demo shop table after its migrations, and
//! an upgrade of an installation that used the shop keeps the shop's rows.

use sqlx::PgPool;
use sqlx::migrate::Migrator;

use super::app::databases;
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
