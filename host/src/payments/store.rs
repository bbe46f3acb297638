//! SQL of the payments database: payments, their timeline, idempotency keys.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};

use super::domain::{Money, PaymentStatus};
use crate::ids::{MerchantId, OrderId, PaymentId, SubscriptionId};

/// The payments database.
#[derive(Clone, Debug)]
pub struct PaymentStore {
    pub(crate) pool: PgPool,
}

/// A payment as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Payment {
    #[schema(value_type = i64)]
    pub payment_id: PaymentId,
    #[schema(value_type = i64)]
    pub order_id: OrderId,
    /// The provider alias.
    pub provider: String,
    /// Quantity bought, a decimal string.
    #[schema(value_type = String, example = "1")]
    pub amount: Money,
    /// Total charged, a decimal string.
    #[schema(value_type = String, example = "10.00")]
    pub price: Money,
    pub currency: String,
    #[schema(value_type = String, example = "PAYMENT_PENDING")]
    pub status: PaymentStatus,
    pub payment_url: Option<String>,
    /// RFC 3339, UTC.
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

/// RFC 3339 in UTC with a `Z`, as the API promises.
mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

/// One row of a payment's timeline.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TimelineEvent {
    /// `EVENT_PAYMENT_CREATED`, `EVENT_PROVIDER_REQUEST_SENT`, ...
    pub event_type: String,
    pub status: String,
    pub message: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: DateTime<Utc>,
}

/// A stored payment's creation, as a retry that finishes it sees it.
#[derive(Debug)]
pub struct Creation {
    pub status: PaymentStatus,
    pub currency: String,
    /// The provider's answer: the payment page's URL, or why it refused;
    /// `None` while it was never recorded.
    pub answered: Option<Result<String, String>>,
}

/// A new payment row, before the provider is called.
pub struct NewPayment<'a> {
    pub merchant_id: MerchantId,
    pub order_id: OrderId,
    pub subscription_id: SubscriptionId,
    pub alias: &'a str,
    pub amount: Decimal,
    pub price: Decimal,
    pub currency: &'a str,
    /// The idempotency key the request reserved: the payment is recorded
    /// on it in the same statement.
    pub idempotency_key: Option<&'a str>,
}

/// A timeline row: event type, status, message, payload, when.
type TimelineRow = (String, String, Option<String>, Option<Value>, DateTime<Utc>);

type PaymentRow = (
    PaymentId,
    OrderId,
    String,
    Decimal,
    Decimal,
    String,
    PaymentStatus,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
);

const PAYMENT_COLUMNS: &str =
    "id, order_id, alias, amount, price, currency, status, payment_url, created_at, updated_at";

fn to_payment(r: PaymentRow) -> Payment {
    Payment {
        payment_id: r.0,
        order_id: r.1,
        provider: r.2,
        amount: Money::from_db(r.3),
        price: Money::from_db(r.4),
        currency: r.5,
        status: r.6,
        payment_url: r.7,
        created_at: r.8,
        updated_at: r.9,
    }
}

/// Result of inserting a payment.
pub enum Inserted {
    Created(PaymentId),
    /// The merchant already has a payment for this order.
    OrderExists(PaymentId),
}

impl PaymentStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The merchant's payment for `order_id`, if any.
    pub async fn payment_for_order(
        &self,
        merchant_id: MerchantId,
        order_id: OrderId,
    ) -> Result<Option<PaymentId>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM payments WHERE merchant_id = $1 AND order_id = $2")
            .bind(merchant_id)
            .bind(order_id)
            .fetch_optional(&self.pool)
            .await
    }

    /// How far the creation of the merchant's payment `payment_id` got: what
    /// its provider answered, if an answer was recorded.
    pub async fn creation(
        &self,
        merchant_id: MerchantId,
        payment_id: PaymentId,
    ) -> Result<Option<Creation>, sqlx::Error> {
        let row: Option<(PaymentStatus, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT p.status, p.currency, p.payment_url,
                    (SELECT l.message FROM payment_logs l
                     WHERE l.payment_id = p.id AND l.event_type = 'EVENT_PROVIDER_REQUEST_SENT'
                     ORDER BY l.id DESC LIMIT 1)
             FROM payments p WHERE p.id = $1 AND p.merchant_id = $2",
        )
        .bind(payment_id)
        .bind(merchant_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(status, currency, payment_url, answer)| {
            let answered = match (payment_url, answer) {
                (Some(url), _) => Some(Ok(url)),
                // The provider's answer, recorded without a URL: a refusal.
                (None, Some(message)) => Some(Err(message)),
                (None, None) => None,
            };
            Creation {
                status,
                currency,
                answered,
            }
        }))
    }

    /// Inserts the payment (pending), its first timeline row and, with an
    /// idempotency key, the payment on the key's reservation: one statement,
    /// so one round trip and one commit.
    pub async fn insert(&self, new: &NewPayment<'_>) -> Result<Inserted, sqlx::Error> {
        let id: Option<PaymentId> = sqlx::query_scalar(
            "WITH p AS (
                INSERT INTO payments (merchant_id, order_id, subscription_id, alias, amount, price, currency, status)
                VALUES ($1, $2, $3, $4, $5, $6, $7, 'PAYMENT_PENDING')
                ON CONFLICT (merchant_id, order_id) DO NOTHING RETURNING id
             ), logged AS (
                INSERT INTO payment_logs (payment_id, event_type, status, message)
                SELECT id, 'EVENT_PAYMENT_CREATED', 'PAYMENT_PENDING', 'payment created' FROM p
             ), reserved AS (
                UPDATE idempotency_keys k SET payment_id = p.id FROM p
                WHERE $8::text IS NOT NULL AND k.merchant_id = $1 AND k.key = $8
             )
             SELECT id FROM p",
        )
        .bind(new.merchant_id)
        .bind(new.order_id)
        .bind(new.subscription_id)
        .bind(new.alias)
        .bind(new.amount)
        .bind(new.price)
        .bind(new.currency)
        .bind(new.idempotency_key)
        .fetch_optional(&self.pool)
        .await?;
        match id {
            Some(id) => Ok(Inserted::Created(id)),
            // Payments are never deleted, so the one in the way is there.
            None => {
                let existing = self
                    .payment_for_order(new.merchant_id, new.order_id)
                    .await?;
                Ok(Inserted::OrderExists(
                    existing.ok_or(sqlx::Error::RowNotFound)?,
                ))
            }
        }
    }

    /// Records the provider's answer, pending with its URL or failed, with
    /// its timeline row: one statement.
    pub async fn record_provider_outcome(
        &self,
        payment_id: PaymentId,
        outcome: Result<(&str, &str), &str>,
        payload: Value,
    ) -> Result<(), sqlx::Error> {
        // $2/$3 are the session's reference and URL; without them the
        // payment failed and $4 says why.
        let (reference, url, status, message) = match outcome {
            Ok((reference, url)) => (
                Some(reference),
                Some(url),
                "PAYMENT_PENDING",
                "provider session opened",
            ),
            Err(message) => (None, None, "PAYMENT_FAILED", message),
        };
        sqlx::query(
            "WITH u AS (
                UPDATE payments SET provider_reference = $2, payment_url = $3,
                       status = CASE WHEN $3::text IS NULL THEN 'PAYMENT_FAILED' ELSE status END,
                       updated_at = now()
                WHERE id = $1 RETURNING id
             )
             INSERT INTO payment_logs (payment_id, event_type, status, message, payload)
             SELECT id, 'EVENT_PROVIDER_REQUEST_SENT', $4, $5, $6 FROM u",
        )
        .bind(payment_id)
        .bind(reference)
        .bind(url)
        .bind(status)
        .bind(message)
        .bind(payload)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Of `orders` (merchant, order), those with a payment that counts
    /// against the quota: any but one whose creation failed.
    pub async fn live_orders(
        &self,
        orders: &[(MerchantId, OrderId)],
    ) -> Result<std::collections::HashSet<(MerchantId, OrderId)>, sqlx::Error> {
        let (merchants, order_ids): (Vec<i64>, Vec<i64>) =
            orders.iter().map(|(m, o)| (m.get(), o.get())).unzip();
        let rows: Vec<(MerchantId, OrderId)> = sqlx::query_as(
            "SELECT p.merchant_id, p.order_id FROM payments p
             JOIN unnest($1::bigint[], $2::bigint[]) AS o (merchant_id, order_id)
               ON p.merchant_id = o.merchant_id AND p.order_id = o.order_id
             WHERE NOT (p.status = 'PAYMENT_FAILED' AND p.payment_url IS NULL)",
        )
        .bind(&merchants)
        .bind(&order_ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// One payment of the merchant; another merchant's is `None`.
    pub async fn get(
        &self,
        merchant_id: MerchantId,
        payment_id: PaymentId,
    ) -> Result<Option<Payment>, sqlx::Error> {
        let row: Option<PaymentRow> = sqlx::query_as(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = $1 AND merchant_id = $2"
        ))
        .bind(payment_id)
        .bind(merchant_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(to_payment))
    }

    /// A page of the merchant's payments, newest first, and their total.
    pub async fn list(
        &self,
        merchant_id: MerchantId,
        page: i64,
        limit: i64,
    ) -> Result<(Vec<Payment>, i64), sqlx::Error> {
        let rows: Vec<PaymentRow> = sqlx::query_as(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE merchant_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(merchant_id)
        .bind(limit)
        .bind((page - 1).saturating_mul(limit))
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM payments WHERE merchant_id = $1")
            .bind(merchant_id)
            .fetch_one(&self.pool)
            .await?;
        Ok((rows.into_iter().map(to_payment).collect(), total))
    }

    /// The payment's timeline in time order.
    pub async fn timeline(&self, payment_id: PaymentId) -> Result<Vec<TimelineEvent>, sqlx::Error> {
        let rows: Vec<TimelineRow> = sqlx::query_as(
            "SELECT event_type, status, message, payload, created_at FROM payment_logs WHERE payment_id = $1 ORDER BY id",
        )
        .bind(payment_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(event_type, status, message, payload, timestamp)| TimelineEvent {
                    event_type,
                    status,
                    message,
                    payload,
                    timestamp,
                },
            )
            .collect())
    }
}

/// Appends a timeline row inside the caller's transaction.
pub(crate) async fn log(
    tx: &mut Transaction<'_, Postgres>,
    payment_id: PaymentId,
    event_type: &str,
    status: &str,
    message: &str,
    payload: Option<Value>,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO payment_logs (payment_id, event_type, status, message, payload) VALUES ($1, $2, $3, $4, $5)")
        .bind(payment_id)
        .bind(event_type)
        .bind(status)
        .bind(message)
        .bind(payload)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
