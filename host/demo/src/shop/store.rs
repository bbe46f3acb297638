//! SQL of the shop's tables in its own database: `orders` and the
//! `order_notifications` it has acted on; checked at compile time against
//! `migrations/demo` (`scripts/sqlx-prepare`).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;

use super::order::{CURRENCY, NewOrder, OrderStatus, Product};
use paygate::{OrderId, PaymentId};

/// Orders shown by a listing, newest first.
pub const LIST_LIMIT: i64 = 100;

/// The shop's orders.
#[derive(Clone, Debug)]
pub struct OrderStore {
    pool: PgPool,
}

/// An order as the API and the pages show it.
#[derive(Clone, Debug, Serialize)]
pub struct Order {
    pub order_id: OrderId,
    pub product_id: i64,
    pub product: &'static str,
    pub quantity: i32,
    #[serde(with = "rust_decimal::serde::str")]
    pub price: Decimal,
    pub currency: String,
    pub alias: String,
    pub status: OrderStatus,
    pub payment_id: Option<PaymentId>,
    pub payment_url: Option<String>,
    /// paygate's refund of the whole payment, once the shop asked for it.
    pub refund_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An `orders` row.
struct OrderRow {
    id: OrderId,
    product_id: i64,
    quantity: i32,
    price: Decimal,
    currency: String,
    alias: String,
    status: String,
    payment_id: Option<PaymentId>,
    payment_url: Option<String>,
    refund_id: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<OrderRow> for Order {
    fn from(row: OrderRow) -> Self {
        Self {
            order_id: row.id,
            product_id: row.product_id,
            product: Product::find(row.product_id).map_or("(no longer sold)", |p| p.name),
            quantity: row.quantity,
            price: row.price,
            currency: row.currency,
            alias: row.alias,
            status: OrderStatus::parse(&row.status).unwrap_or(OrderStatus::Pending),
            payment_id: row.payment_id,
            payment_url: row.payment_url,
            refund_id: row.refund_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// What a notification did to its order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The order moved to this status.
    Updated(OrderStatus),
    /// This webhook-id was acted on before; nothing changed.
    Duplicate,
    /// Recorded, nothing to change: the order is not in the status the
    /// notification moves orders from (e.g. already settled).
    Settled(OrderStatus),
    /// Recorded, nothing to change: no order has this id.
    UnknownOrder,
    /// Refused and not recorded: the order was paid by another payment.
    PaymentMismatch { order_payment_id: PaymentId },
}

impl OrderStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Stores a new pending order; returns it with its id.
    pub async fn insert(&self, new: &NewOrder) -> Result<Order, sqlx::Error> {
        let row = sqlx::query_as!(
            OrderRow,
            r#"INSERT INTO orders (product_id, quantity, alias, price, currency)
               VALUES ($1, $2, $3, $4, $5)
               RETURNING id AS "id: OrderId", product_id, quantity, price, currency, alias, status,
                         payment_id AS "payment_id: PaymentId", payment_url, refund_id, created_at, updated_at"#,
            new.product().id,
            new.quantity(),
            new.alias(),
            new.price(),
            CURRENCY,
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.into())
    }

    /// Notes the payment paygate created for the order.
    pub async fn set_payment(
        &self,
        order_id: OrderId,
        payment_id: PaymentId,
        payment_url: &str,
    ) -> Result<Order, sqlx::Error> {
        let row = sqlx::query_as!(
            OrderRow,
            r#"UPDATE orders SET payment_id = $2, payment_url = $3, updated_at = now() WHERE id = $1
               RETURNING id AS "id: OrderId", product_id, quantity, price, currency, alias, status,
                         payment_id AS "payment_id: PaymentId", payment_url, refund_id, created_at, updated_at"#,
            order_id.get(),
            payment_id.get(),
            payment_url,
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.into())
    }

    /// Notes the refund paygate made of the order's payment.
    pub async fn set_refund(&self, order_id: OrderId, refund_id: i64) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "UPDATE orders SET refund_id = $2, updated_at = now() WHERE id = $1",
            order_id.get(),
            refund_id,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Fails a pending order whose payment could not be created.
    pub async fn fail(&self, order_id: OrderId) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "UPDATE orders SET status = 'ORDER_FAILED', updated_at = now()
             WHERE id = $1 AND status = 'ORDER_PENDING'",
            order_id.get(),
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get(&self, order_id: OrderId) -> Result<Option<Order>, sqlx::Error> {
        let row = sqlx::query_as!(
            OrderRow,
            r#"SELECT id AS "id: OrderId", product_id, quantity, price, currency, alias, status,
                      payment_id AS "payment_id: PaymentId", payment_url, refund_id, created_at, updated_at
               FROM orders WHERE id = $1"#,
            order_id.get(),
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(Order::from))
    }

    /// The latest [`LIST_LIMIT`] orders, newest first.
    pub async fn list(&self) -> Result<Vec<Order>, sqlx::Error> {
        let rows = sqlx::query_as!(
            OrderRow,
            r#"SELECT id AS "id: OrderId", product_id, quantity, price, currency, alias, status,
                      payment_id AS "payment_id: PaymentId", payment_url, refund_id, created_at, updated_at
               FROM orders ORDER BY id DESC LIMIT $1"#,
            LIST_LIMIT,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Order::from).collect())
    }

    /// Applies a verified notification once: the order moves from `from`
    /// to `outcome`. The webhook-id is recorded in the transaction that
    /// changes the order, so a redelivery racing the first waits for it and
    /// then finds the id taken.
    pub async fn apply_notification(
        &self,
        webhook_id: &str,
        event_type: &str,
        order_id: OrderId,
        payment_id: PaymentId,
        (from, outcome): (OrderStatus, OrderStatus),
    ) -> Result<Applied, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let first = sqlx::query!(
            "INSERT INTO order_notifications (webhook_id, order_id, event_type)
             VALUES ($1, $2, $3) ON CONFLICT (webhook_id) DO NOTHING",
            webhook_id,
            order_id.get(),
            event_type,
        )
        .execute(&mut *tx)
        .await?;
        if first.rows_affected() == 0 {
            return Ok(Applied::Duplicate);
        }
        let found = sqlx::query!(
            r#"SELECT status, payment_id AS "payment_id: PaymentId" FROM orders WHERE id = $1 FOR UPDATE"#,
            order_id.get(),
        )
        .fetch_optional(&mut *tx)
        .await?;
        let applied = match found.map(|order| (order.status, order.payment_id)) {
            None => Applied::UnknownOrder,
            // Dropping the transaction forgets the webhook-id: the refusal
            // stands for every retry, and paygate shows it failing.
            Some((_, Some(ours))) if ours != payment_id => {
                return Ok(Applied::PaymentMismatch {
                    order_payment_id: ours,
                });
            }
            Some((status, _)) if status != from.as_str() => {
                Applied::Settled(OrderStatus::parse(&status).unwrap_or(OrderStatus::Pending))
            }
            // A payment id not stored yet (the shop stopped between paygate's
            // answer and saving it) is taken from the signed notification.
            Some(_) => {
                sqlx::query!(
                    "UPDATE orders SET status = $2, payment_id = $3, updated_at = now() WHERE id = $1",
                    order_id.get(),
                    outcome.as_str(),
                    payment_id.get(),
                )
                .execute(&mut *tx)
                .await?;
                Applied::Updated(outcome)
            }
        };
        tx.commit().await?;
        Ok(applied)
    }
}
