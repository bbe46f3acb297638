//! SQL of the outbox: claiming rows to publish, claiming a message's row to
//! deliver it, settling attempts, and what merchants and operators read;
//! checked at compile time against the payments migrations
//! (`scripts/sqlx-prepare`).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

use crate::ids::{MerchantId, OutboxId, PaymentId};

/// The outbox tables of the payments database.
#[derive(Clone, Debug)]
pub struct OutboxStore {
    /// Durable writes: settled attempts, re-queues.
    pool: PgPool,
    /// `synchronous_commit = off`: claims, whose loss only repeats work.
    relaxed: PgPool,
    /// Tells a producer that rows are due now: retries scheduled, failed
    /// notifications queued again.
    wake: super::OutboxWake,
}

/// A row claimed by the producer, to publish.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: OutboxId,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub payload: Value,
    pub attempts: i32,
}

/// What a message says of its row: the id, the event (checked too, so a
/// message can never claim another deployment's row of the same id) and
/// the attempt count it was published with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MessageRow {
    pub outbox_id: OutboxId,
    pub event_id: uuid::Uuid,
    pub published_attempts: i32,
}

/// A row claimed by the notifier for one delivery attempt.
#[derive(Clone, Debug)]
pub struct Notification {
    pub id: OutboxId,
    pub payment_id: PaymentId,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub payload: Value,
    /// This attempt's number, from 1.
    pub attempt: i32,
}

/// The outcome of one delivery attempt, to record.
#[derive(Clone, Debug)]
pub struct Settlement {
    pub outbox_id: OutboxId,
    pub payment_id: PaymentId,
    pub event_type: String,
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub latency: Duration,
    pub error: Option<String>,
    /// `Some(delay)` to retry after it; `None` when delivered or given up.
    pub retry_in: Option<Duration>,
}

impl Settlement {
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }

    /// The row's status after this attempt.
    pub fn status(&self) -> &'static str {
        match (self.delivered(), self.retry_in) {
            (true, _) => "LOG_SUCCESS",
            (false, Some(_)) => "LOG_RETRYING",
            (false, None) => "LOG_FAILED",
        }
    }
}

/// A notification and its attempts, as the API shows them.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationStatus {
    pub event_id: String,
    /// `payment.finished` or `payment.failed`.
    pub event_type: String,
    /// `LOG_PENDING`, `LOG_PROCESSING`, `LOG_RETRYING`, `LOG_SUCCESS` or `LOG_FAILED`.
    pub status: String,
    pub attempts: Vec<Attempt>,
}

/// One delivery attempt.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    /// RFC 3339, UTC.
    #[schema(value_type = String, format = DateTime)]
    pub at: String,
    /// The merchant endpoint's HTTP status; null when none came.
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

impl Attempt {
    fn new(
        at: DateTime<Utc>,
        status_code: Option<i16>,
        latency_ms: i32,
        error: Option<String>,
    ) -> Self {
        Self {
            at: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            status_code: status_code.map(|c| c as u16),
            latency_ms: i64::from(latency_ms),
            error,
        }
    }
}

/// A notification as operators list it, across merchants.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Listed {
    /// The cursor of `starting_after`.
    pub notification_id: i64,
    pub event_id: String,
    /// `payment.finished`, `payment.failed`, `payment.expired`,
    /// `refund.succeeded` or `refund.failed`.
    pub event_type: String,
    pub status: String,
    pub merchant_id: i64,
    pub payment_id: i64,
    /// The refund of a `refund.*` notification.
    pub refund_id: Option<i64>,
    /// Delivery attempts so far.
    pub attempts: i32,
    /// RFC 3339, UTC: when the event happened.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
    /// The latest attempt; null before the first.
    pub last_attempt: Option<Attempt>,
}

/// Which notifications an operator lists: one status, optionally one
/// merchant's, newest first, older than a cursor.
#[derive(Clone, Copy, Debug)]
pub struct Listing<'a> {
    pub status: &'a str,
    pub merchant_id: Option<MerchantId>,
    pub before: Option<OutboxId>,
    pub limit: i64,
}

/// Which failed notifications a bulk replay queues again.
#[derive(Clone, Copy, Debug, Default)]
pub struct Replay {
    /// Only this merchant's.
    pub merchant_id: Option<MerchantId>,
    /// Only events from this time on (the notification's `created_at`).
    pub since: Option<DateTime<Utc>>,
}

/// Counts for `paygate outbox stats` and the admin API.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct OutboxStats {
    pub pending: i64,
    pub retrying: i64,
    pub processing: i64,
    pub delivered: i64,
    pub failed: i64,
    /// Age of the oldest row waiting to be published, in seconds.
    pub oldest_pending_age_seconds: Option<f64>,
}

fn interval(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl OutboxStore {
    /// A store that announces the rows it queues to the producers
    /// listening on the database.
    pub fn new(pool: PgPool, relaxed: PgPool) -> Self {
        let wake = super::OutboxWake::Listeners(pool.clone());
        Self {
            pool,
            relaxed,
            wake,
        }
    }

    /// The same, announcing them with `wake` instead.
    pub fn waking(mut self, wake: super::OutboxWake) -> Self {
        self.wake = wake;
        self
    }

    /// Claims up to `limit` due rows for publishing, oldest due first, and
    /// leases them for `lease`. Rows another replica holds are skipped.
    pub async fn claim_due(&self, limit: i64, lease: Duration) -> sqlx::Result<Vec<Claimed>> {
        sqlx::query_as!(
            Claimed,
            r#"WITH due AS (
                   SELECT id FROM outbox
                   WHERE status IN ('LOG_PENDING', 'LOG_RETRYING') AND next_retry_at <= now()
                   ORDER BY next_retry_at
                   LIMIT $1
                   FOR UPDATE SKIP LOCKED
               )
               UPDATE outbox o
               SET status = 'LOG_PROCESSING', claimed_until = now() + make_interval(secs => $2)
               FROM due WHERE o.id = due.id
               RETURNING o.id AS "id: OutboxId", o.event_id, o.event_type, o.payload, o.attempts"#,
            limit,
            interval(lease),
        )
        .fetch_all(&self.relaxed)
        .await
    }

    /// Claims rows whose lease ran out while `LOG_PROCESSING`: published or
    /// delivering when something died. They are published again.
    pub async fn reclaim_expired(&self, limit: i64, lease: Duration) -> sqlx::Result<Vec<Claimed>> {
        sqlx::query_as!(
            Claimed,
            r#"WITH expired AS (
                   SELECT id FROM outbox
                   WHERE claimed_until < now() AND status = 'LOG_PROCESSING'
                   ORDER BY claimed_until
                   LIMIT $1
                   FOR UPDATE SKIP LOCKED
               )
               UPDATE outbox o SET claimed_until = now() + make_interval(secs => $2)
               FROM expired WHERE o.id = expired.id
               RETURNING o.id AS "id: OutboxId", o.event_id, o.event_type, o.payload, o.attempts"#,
            limit,
            interval(lease),
        )
        .fetch_all(&self.relaxed)
        .await
    }

    /// Gives back rows that could not be published, so the next round (or
    /// another replica) takes them at once.
    pub async fn release(&self, rows: &[Claimed]) -> sqlx::Result<()> {
        let ids: Vec<i64> = rows.iter().map(|r| r.id.get()).collect();
        let attempts: Vec<i32> = rows.iter().map(|r| r.attempts).collect();
        sqlx::query!(
            "UPDATE outbox o
             SET status = CASE WHEN o.attempts = 0 THEN 'LOG_PENDING' ELSE 'LOG_RETRYING' END,
                 claimed_until = NULL
             FROM unnest($1::bigint[], $2::int[]) AS r(id, attempts)
             WHERE o.id = r.id AND o.attempts = r.attempts AND o.status = 'LOG_PROCESSING'",
            &ids,
            &attempts,
        )
        .execute(&self.relaxed)
        .await?;
        Ok(())
    }

    /// Undoes the claims of notifications the notifier put off (their
    /// merchant held its whole share of delivery slots): each row is due
    /// again in `due_in`, with the attempt it was claimed for not used.
    pub async fn defer(&self, rows: &[(OutboxId, i32)], due_in: Duration) -> sqlx::Result<()> {
        let ids: Vec<i64> = rows.iter().map(|(id, _)| id.get()).collect();
        let attempts: Vec<i32> = rows.iter().map(|(_, attempt)| *attempt).collect();
        sqlx::query!(
            "UPDATE outbox o
             SET attempts = o.attempts - 1,
                 status = CASE WHEN o.attempts = 1 THEN 'LOG_PENDING' ELSE 'LOG_RETRYING' END,
                 claimed_until = NULL,
                 next_retry_at = now() + make_interval(secs => $3)
             FROM unnest($1::bigint[], $2::int[]) AS d(id, attempts)
             WHERE o.id = d.id AND o.attempts = d.attempts AND o.status = 'LOG_PROCESSING'",
            &ids,
            &attempts,
            interval(due_in),
        )
        .execute(&self.relaxed)
        .await?;
        Ok(())
    }

    /// When the next row waiting to be published comes due, asked after a
    /// claim that took every due row it could: the earliest retry, or a
    /// row that came due since.
    ///
    /// Only the due index's entries from a moment ago on are read. The
    /// rows before them were due, and the claim took them: until a vacuum
    /// their entries are dead, and a queue leaves them at the head of an
    /// index ordered by time. Read from the head, this lookup walked them
    /// all after every claim (hundreds of pages, with autovacuum behind or
    /// off). An older row the claim could not take is in another
    /// producer's hands; one committed since wakes the producer.
    pub async fn next_due(&self) -> sqlx::Result<Option<DateTime<Utc>>> {
        sqlx::query_scalar!(
            "SELECT min(next_retry_at) FROM outbox
             WHERE status IN ('LOG_PENDING', 'LOG_RETRYING')
               AND next_retry_at > now() - interval '1 second'",
        )
        .fetch_one(&self.relaxed)
        .await
    }

    /// Claims the rows of received messages, one delivery attempt each:
    /// a row only while it is published with the attempt count its message
    /// carries. A message whose id is missing from the answer is a
    /// duplicate or stale (delivered, settled, or taken by another
    /// delivery) and must not be delivered.
    pub async fn claim_deliveries(
        &self,
        messages: &[MessageRow],
        lease: Duration,
    ) -> sqlx::Result<HashMap<OutboxId, Notification>> {
        let ids: Vec<i64> = messages.iter().map(|m| m.outbox_id.get()).collect();
        let events: Vec<uuid::Uuid> = messages.iter().map(|m| m.event_id).collect();
        let attempts: Vec<i32> = messages.iter().map(|m| m.published_attempts).collect();
        let claimed = sqlx::query_as!(
            Notification,
            r#"UPDATE outbox o
               SET attempts = o.attempts + 1, claimed_until = now() + make_interval(secs => $4)
               FROM unnest($1::bigint[], $2::uuid[], $3::int[]) AS m(id, event_id, attempts)
               WHERE o.id = m.id AND o.event_id = m.event_id AND o.attempts = m.attempts
                 AND o.status = 'LOG_PROCESSING'
               RETURNING o.id AS "id: OutboxId", o.payment_id AS "payment_id: PaymentId",
                         o.event_id, o.event_type, o.payload, o.attempts AS attempt"#,
            &ids,
            &events,
            &attempts,
            interval(lease),
        )
        .fetch_all(&self.relaxed)
        .await?;
        Ok(claimed.into_iter().map(|n| (n.id, n)).collect())
    }

    /// Records attempts durably, in one transaction: each row's new status,
    /// the attempt, and a timeline entry of its payment. Returns the ids
    /// whose row was still this attempt's (a row settled by a later attempt
    /// is left as it is). Wakes the producer when a retry was scheduled,
    /// so that it sleeps until that retry rather than its poll.
    pub async fn settle(&self, batch: &[Settlement]) -> sqlx::Result<Vec<OutboxId>> {
        let mut ids = Vec::with_capacity(batch.len());
        let mut attempts = Vec::with_capacity(batch.len());
        let mut statuses = Vec::with_capacity(batch.len());
        let mut retry_in = Vec::with_capacity(batch.len());
        let mut ats = Vec::with_capacity(batch.len());
        let mut codes = Vec::with_capacity(batch.len());
        let mut latencies = Vec::with_capacity(batch.len());
        let mut errors = Vec::with_capacity(batch.len());
        let mut payment_ids = Vec::with_capacity(batch.len());
        let mut messages = Vec::with_capacity(batch.len());
        let mut payloads = Vec::with_capacity(batch.len());
        for s in batch {
            let latency_ms = i32::try_from(s.latency.as_millis()).unwrap_or(i32::MAX);
            ids.push(s.outbox_id.get());
            attempts.push(s.attempt);
            statuses.push(s.status().to_owned());
            retry_in.push(s.retry_in.map_or(0.0, interval));
            ats.push(s.at);
            codes.push(s.status_code.map(|c| c as i16));
            latencies.push(latency_ms);
            errors.push(s.error.clone());
            payment_ids.push(s.payment_id.get());
            messages.push(match (s.status_code, &s.error) {
                (_, None) => format!("{} delivered (attempt {})", s.event_type, s.attempt),
                (_, Some(e)) => format!("{} attempt {}: {e}", s.event_type, s.attempt),
            });
            payloads.push(serde_json::json!({
                "attempt": s.attempt,
                "status_code": s.status_code,
                "latency_ms": latency_ms,
                "error": s.error,
            }));
        }
        let wake = batch.iter().any(|s| s.retry_in.is_some());
        // One statement, so one round trip and an implicit transaction: the
        // rows' statuses, their attempts and their timeline entries commit
        // together. Status codes and errors are NULL where there was none:
        // arrays of nullable elements, which the parameter check has no type
        // for.
        let settled = sqlx::query_scalar!(
            r#"WITH u AS (
                   SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::float8[],
                                        $5::timestamptz[], $6::int2[], $7::int[], $8::text[],
                                        $9::bigint[], $10::text[], $11::jsonb[])
                          AS u(id, attempts, status, retry_in, at, code, latency, error,
                               payment_id, message, payload)
               ), settled AS (
                   UPDATE outbox o
                   SET status = u.status,
                       next_retry_at = CASE WHEN u.status = 'LOG_RETRYING'
                                            THEN now() + make_interval(secs => u.retry_in)
                                            ELSE o.next_retry_at END,
                       claimed_until = NULL
                   FROM u
                   WHERE o.id = u.id AND o.attempts = u.attempts AND o.status = 'LOG_PROCESSING'
                   RETURNING o.id
               ), tried AS (
                   INSERT INTO notification_attempts (outbox_id, attempt, at, status_code, latency_ms, error)
                   SELECT id, attempts, at, code, latency, error FROM u
                   ON CONFLICT (outbox_id, attempt) DO NOTHING
               ), logged AS (
                   INSERT INTO payment_logs (payment_id, event_type, status, message, payload, created_at)
                   SELECT payment_id, 'EVENT_MERCHANT_NOTIFICATION', status, message, payload, at
                   FROM u
               )
               SELECT id AS "id!: OutboxId" FROM settled"#,
            &ids,
            &attempts,
            &statuses,
            &retry_in,
            &ats,
            &codes as &[Option<i16>],
            &latencies,
            &errors as &[Option<String>],
            &payment_ids,
            &messages,
            &payloads,
        )
        .fetch_all(&self.pool)
        .await?;
        if wake {
            self.wake.wake().await;
        }
        Ok(settled)
    }

    /// After a statement that queued `queued` rows.
    async fn queued(&self, queued: i64) {
        if queued > 0 {
            self.wake.wake().await;
        }
    }

    /// A payment's notifications and their attempts, oldest first.
    pub async fn notifications_of(
        &self,
        payment_id: PaymentId,
    ) -> sqlx::Result<Vec<NotificationStatus>> {
        let rows = sqlx::query!(
            "SELECT id, event_id, event_type, status FROM outbox WHERE payment_id = $1 ORDER BY id",
            payment_id.get(),
        )
        .fetch_all(&self.pool)
        .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let attempts = sqlx::query!(
            "SELECT outbox_id, at, status_code, latency_ms, error FROM notification_attempts
                 WHERE outbox_id = ANY($1) ORDER BY outbox_id, attempt",
            &ids,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| NotificationStatus {
                event_id: row.event_id.to_string(),
                event_type: row.event_type,
                status: row.status,
                attempts: attempts
                    .iter()
                    .filter(|a| a.outbox_id == row.id)
                    .map(|a| Attempt::new(a.at, a.status_code, a.latency_ms, a.error.clone()))
                    .collect(),
            })
            .collect())
    }

    /// Queues a payment's failed notifications again (one more attempt
    /// each, same `event_id`); how many were.
    pub async fn retry_failed(&self, payment_id: PaymentId) -> sqlx::Result<i64> {
        let queued = sqlx::query_scalar!(
            r#"WITH queued AS (
                   UPDATE outbox SET status = 'LOG_PENDING', next_retry_at = now(), claimed_until = NULL
                   WHERE payment_id = $1 AND status = 'LOG_FAILED'
                   RETURNING id
               )
               SELECT count(*) AS "queued!" FROM queued"#,
            payment_id.get(),
        )
        .fetch_one(&self.pool)
        .await?;
        self.queued(queued).await;
        Ok(queued)
    }

    /// Queues one failed notification again, by its id: `None` when there
    /// is no such notification, else how many were queued (0 when it had
    /// not failed).
    pub async fn retry_one(&self, id: OutboxId) -> sqlx::Result<Option<i64>> {
        let queued = sqlx::query_scalar!(
            r#"WITH queued AS (
                   UPDATE outbox SET status = 'LOG_PENDING', next_retry_at = now(), claimed_until = NULL
                   WHERE id = $1 AND status = 'LOG_FAILED'
                   RETURNING id
               )
               SELECT (SELECT count(*) FROM queued) AS "queued!"
               FROM outbox WHERE id = $1"#,
            id.get(),
        )
        .fetch_optional(&self.pool)
        .await?;
        self.queued(queued.unwrap_or(0)).await;
        Ok(queued)
    }

    /// Bulk replay: queues every failed notification in `scope` again (one
    /// more attempt each, same `event_id`) in one statement; how many.
    pub async fn retry_all_failed(&self, scope: Replay) -> sqlx::Result<i64> {
        let queued = sqlx::query_scalar!(
            r#"WITH queued AS (
                   UPDATE outbox o
                   SET status = 'LOG_PENDING', next_retry_at = now(), claimed_until = NULL
                   FROM payments p
                   WHERE o.status = 'LOG_FAILED' AND p.id = o.payment_id
                     AND ($1::bigint IS NULL OR p.merchant_id = $1)
                     AND ($2::timestamptz IS NULL OR o.created_at >= $2)
                   RETURNING o.id
               )
               SELECT count(*) AS "queued!" FROM queued"#,
            scope.merchant_id.map(MerchantId::get),
            scope.since,
        )
        .fetch_one(&self.pool)
        .await?;
        self.queued(queued).await;
        Ok(queued)
    }

    /// Notifications across merchants for operators, newest first, with
    /// each one's latest attempt.
    pub async fn listed(&self, query: Listing<'_>) -> sqlx::Result<Vec<Listed>> {
        let rows = sqlx::query!(
            r#"SELECT o.id, o.event_id, o.event_type, o.status, p.merchant_id, o.payment_id,
                      o.refund_id, o.attempts, o.created_at,
                      a.at AS "at?", a.status_code AS "status_code?",
                      a.latency_ms AS "latency_ms?", a.error AS "error?"
               FROM outbox o
               JOIN payments p ON p.id = o.payment_id
               LEFT JOIN LATERAL (
                   SELECT at, status_code, latency_ms, error FROM notification_attempts
                   WHERE outbox_id = o.id ORDER BY attempt DESC LIMIT 1
               ) a ON true
               WHERE o.status = $1
                 AND ($2::bigint IS NULL OR p.merchant_id = $2)
                 AND ($3::bigint IS NULL OR o.id < $3)
               ORDER BY o.id DESC
               LIMIT $4"#,
            query.status,
            query.merchant_id.map(MerchantId::get),
            query.before.map(OutboxId::get),
            query.limit,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Listed {
                notification_id: r.id,
                event_id: r.event_id.to_string(),
                event_type: r.event_type,
                status: r.status,
                merchant_id: r.merchant_id,
                payment_id: r.payment_id,
                refund_id: r.refund_id,
                attempts: r.attempts,
                created_at: r
                    .created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                last_attempt: (r.at)
                    .zip(r.latency_ms)
                    .map(|(at, latency)| Attempt::new(at, r.status_code, latency, r.error)),
            })
            .collect())
    }

    pub async fn stats(&self) -> sqlx::Result<OutboxStats> {
        sqlx::query_as!(
            OutboxStats,
            r#"SELECT count(*) FILTER (WHERE status = 'LOG_PENDING') AS "pending!",
                      count(*) FILTER (WHERE status = 'LOG_RETRYING') AS "retrying!",
                      count(*) FILTER (WHERE status = 'LOG_PROCESSING') AS "processing!",
                      count(*) FILTER (WHERE status = 'LOG_SUCCESS') AS "delivered!",
                      count(*) FILTER (WHERE status = 'LOG_FAILED') AS "failed!",
                      extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'LOG_PENDING'))::float8
                          AS oldest_pending_age_seconds
               FROM outbox"#,
        )
        .fetch_one(&self.pool)
        .await
    }
}
