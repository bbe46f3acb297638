//! SQL of the payments database: payments, their timeline, idempotency keys,
//! checked at compile time against its migrations (`scripts/sqlx-prepare`).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};

use std::sync::{Arc, OnceLock};

use super::domain::{IdempotencyKey, Money, PaymentStatus};
use super::reads::{PaymentReads, ReadResult};
use crate::db::LeanPool;
use crate::ids::{MerchantId, OrderId, PaymentId, SubscriptionId};
use crate::outbox::OutboxWake;
use crate::redis_batch::BatchStats;

/// The payments database.
#[derive(Clone, Debug)]
pub struct PaymentStore {
    pub(crate) pool: PgPool,
    /// The same database, for the statements every create, show and
    /// refund makes ([`crate::db::LeanPool`]: no ping on release).
    pub(crate) lean: LeanPool,
    /// Told after a commit that queued a notification.
    pub(crate) outbox_wake: OutboxWake,
    /// The tasks reading single payments, started by the first read.
    reads: Arc<OnceLock<PaymentReads>>,
    /// Their statements and the reads those carried.
    read_stats: BatchStats,
}

/// A payment as the API shows it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
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
    pub status: PaymentStatus,
    pub payment_url: Option<String>,
    /// Where the provider sends the buyer after paying; null when none.
    pub return_url: Option<String>,
    /// Where the provider sends a buyer who cancels; null when none.
    pub cancel_url: Option<String>,
    /// The merchant's key/value pairs; `{}` when none.
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// The sum of the payment's succeeded refunds, a decimal string; "0" when none.
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "0")]
    pub refunded: Decimal,
    /// RFC 3339, UTC.
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    /// When it expires if still pending (`PAYGATE_PAYMENT_EXPIRY` after
    /// creation); RFC 3339, UTC.
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: DateTime<Utc>,
}

/// RFC 3339 in UTC with a `Z`, as the API promises.
pub(crate) mod rfc3339 {
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

/// The answer an idempotency key keeps, written with the provider's
/// outcome it encodes ([`super::Outcome::to_record`]).
pub struct KeyOutcome<'a> {
    pub merchant_id: MerchantId,
    pub key: &'a IdempotencyKey,
    pub kind: i16,
    pub record: &'a Value,
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
    pub return_url: Option<&'a str>,
    pub cancel_url: Option<&'a str>,
    /// A JSON object of strings.
    pub metadata: Value,
    /// How long it may stay pending (`PAYGATE_PAYMENT_EXPIRY`).
    pub expires_in: std::time::Duration,
}

/// Result of inserting a payment.
pub enum Inserted {
    Created(PaymentId),
    /// The merchant already has a payment for this order.
    OrderExists(PaymentId),
}

impl PaymentStore {
    /// A store whose queued notifications are announced to the producers
    /// listening on the database.
    pub fn new(pool: PgPool) -> Self {
        let lean = LeanPool::beside(&pool);
        let outbox_wake = OutboxWake::Listeners(pool.clone());
        Self {
            pool,
            lean,
            outbox_wake,
            reads: Arc::default(),
            read_stats: BatchStats::default(),
        }
    }

    /// The same, counting its reads' statements in `stats` (`/metrics`).
    pub fn counting_reads(mut self, stats: BatchStats) -> Self {
        self.read_stats = stats;
        self
    }

    /// The same, announcing them with `wake` instead.
    pub fn waking(mut self, wake: OutboxWake) -> Self {
        self.outbox_wake = wake;
        self
    }

    /// The merchant's payment for `order_id`, if any.
    pub async fn payment_for_order(
        &self,
        merchant_id: MerchantId,
        order_id: OrderId,
    ) -> Result<Option<PaymentId>, sqlx::Error> {
        sqlx::query_scalar!(
            r#"SELECT id AS "id: PaymentId" FROM payments WHERE merchant_id = $1 AND order_id = $2"#,
            merchant_id.get(),
            order_id.get(),
        )
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
        let row = sqlx::query!(
            r#"SELECT p.status AS "status: PaymentStatus", p.currency, p.payment_url,
                      (SELECT l.message FROM payment_logs l
                       WHERE l.payment_id = p.id AND l.event_type = 'EVENT_PROVIDER_REQUEST_SENT'
                       ORDER BY l.id DESC LIMIT 1) AS answer
               FROM payments p WHERE p.id = $1 AND p.merchant_id = $2"#,
            payment_id.get(),
            merchant_id.get(),
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| {
            let answered = match (row.payment_url, row.answer) {
                (Some(url), _) => Some(Ok(url)),
                // The provider's answer, recorded without a URL: a refusal.
                (None, Some(message)) => Some(Err(message)),
                (None, None) => None,
            };
            Creation {
                status: row.status,
                currency: row.currency,
                answered,
            }
        }))
    }

    /// Inserts the payment (pending), its first timeline row and, with an
    /// idempotency key, the payment on the key's reservation: one statement,
    /// so one round trip and one commit.
    pub async fn insert(&self, new: &NewPayment<'_>) -> Result<Inserted, sqlx::Error> {
        let mut conn = self.lean.acquire().await?;
        // `p` has a row only when the insert did not conflict.
        let id = sqlx::query_scalar!(
            r#"WITH p AS (
                INSERT INTO payments (merchant_id, order_id, subscription_id, alias, amount, price, currency, status,
                                      return_url, cancel_url, metadata, expires_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, 'PAYMENT_PENDING', $9, $10, $11,
                        now() + make_interval(secs => $12))
                ON CONFLICT (merchant_id, order_id) DO NOTHING RETURNING id
             ), logged AS (
                INSERT INTO payment_logs (payment_id, event_type, status, message)
                SELECT id, 'EVENT_PAYMENT_CREATED', 'PAYMENT_PENDING', 'payment created' FROM p
             ), reserved AS (
                UPDATE idempotency_keys k SET payment_id = p.id FROM p
                WHERE $8::text IS NOT NULL AND k.merchant_id = $1 AND k.key = $8
             )
             SELECT id AS "id!: PaymentId" FROM p"#,
            new.merchant_id.get(),
            new.order_id.get(),
            new.subscription_id.get(),
            new.alias,
            new.amount,
            new.price,
            new.currency,
            new.idempotency_key,
            new.return_url,
            new.cancel_url,
            new.metadata,
            new.expires_in.as_secs_f64(),
        )
        .fetch_optional(conn.get())
        .await?;
        conn.release();
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
    /// its timeline row and, when the request came with an idempotency key,
    /// the answer kept for that key ([`KeyOutcome`]): one statement, so one
    /// commit, and never an answered payment whose key still runs.
    pub async fn record_provider_outcome(
        &self,
        payment_id: PaymentId,
        outcome: Result<(&str, &str), &str>,
        payload: Value,
        key: Option<KeyOutcome<'_>>,
    ) -> Result<(), sqlx::Error> {
        // $2/$3 are the session's reference and URL; without them the
        // payment failed and $5 says why.
        let (reference, url, status, message) = match outcome {
            Ok((reference, url)) => (
                Some(reference),
                Some(url),
                "PAYMENT_PENDING",
                "provider session opened",
            ),
            Err(message) => (None, None, "PAYMENT_FAILED", message),
        };
        let (key_merchant, key_text, kind, record) = match key {
            Some(k) => (
                Some(k.merchant_id.get()),
                Some(k.key.as_str()),
                Some(k.kind),
                Some(k.record),
            ),
            None => (None, None, None, None),
        };
        let mut conn = self.lean.acquire().await?;
        sqlx::query!(
            "WITH u AS (
                UPDATE payments SET provider_reference = $2, payment_url = $3,
                       status = CASE WHEN $3::text IS NULL THEN 'PAYMENT_FAILED' ELSE status END,
                       updated_at = now()
                WHERE id = $1 RETURNING id
             ), done AS (
                UPDATE idempotency_keys SET state = 'done', response_status = $9, response_body = $10
                WHERE $8::text IS NOT NULL AND merchant_id = $7 AND key = $8
             )
             INSERT INTO payment_logs (payment_id, event_type, status, message, payload)
             SELECT id, 'EVENT_PROVIDER_REQUEST_SENT', $4, $5, $6 FROM u",
            payment_id.get(),
            reference,
            url,
            status,
            message,
            payload,
            key_merchant,
            key_text,
            kind,
            record,
        )
        .execute(conn.get())
        .await?;
        conn.release();
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
        let rows = sqlx::query!(
            r#"SELECT p.merchant_id AS "merchant_id: MerchantId", p.order_id AS "order_id: OrderId"
               FROM payments p
               JOIN unnest($1::bigint[], $2::bigint[]) AS o (merchant_id, order_id)
                 ON p.merchant_id = o.merchant_id AND p.order_id = o.order_id
               WHERE NOT (p.status = 'PAYMENT_FAILED' AND p.payment_url IS NULL)"#,
            &merchants,
            &order_ids,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.merchant_id, r.order_id))
            .collect())
    }

    /// One payment of the merchant; another merchant's is `None`. Read in
    /// a statement shared with the reads queued beside it ([`super::reads`]).
    pub async fn get(&self, merchant_id: MerchantId, payment_id: PaymentId) -> ReadResult {
        self.reads
            .get_or_init(|| PaymentReads::start(self.lean.clone(), self.read_stats.clone()))
            .get(merchant_id, payment_id)
            .await
    }

    /// The payment's timeline in time order.
    pub async fn timeline(&self, payment_id: PaymentId) -> Result<Vec<TimelineEvent>, sqlx::Error> {
        sqlx::query_as!(
            TimelineEvent,
            "SELECT event_type, status, message, payload, created_at AS timestamp
             FROM payment_logs WHERE payment_id = $1 ORDER BY id",
            payment_id.get(),
        )
        .fetch_all(&self.pool)
        .await
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
    sqlx::query!(
        "INSERT INTO payment_logs (payment_id, event_type, status, message, payload) VALUES ($1, $2, $3, $4, $5)",
        payment_id.get(),
        event_type,
        status,
        message,
        payload,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Appends timeline rows of one kind (`event_type`, `message`) for many
/// payments in one statement, inside the caller's transaction, in the
/// order given: each entry is the payment, its status and the row's
/// payload.
pub(crate) async fn log_each(
    tx: &mut Transaction<'_, Postgres>,
    event_type: &str,
    message: &str,
    entries: &[(PaymentId, &str, Option<Value>)],
) -> Result<(), sqlx::Error> {
    let ids: Vec<i64> = entries.iter().map(|(id, _, _)| id.get()).collect();
    let statuses: Vec<&str> = entries.iter().map(|(_, status, _)| *status).collect();
    let payloads: Vec<Option<Value>> = entries.iter().map(|(_, _, p)| p.clone()).collect();
    sqlx::query!(
        "INSERT INTO payment_logs (payment_id, event_type, status, message, payload)
         SELECT e.id, $1, e.status, $2, e.payload
         FROM unnest($3::bigint[], $4::text[], $5::jsonb[]) WITH ORDINALITY AS e(id, status, payload, n)
         ORDER BY e.n",
        event_type,
        message,
        &ids,
        &statuses as &[&str],
        &payloads as &[Option<Value>],
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
