//! The webhook log: every inbound provider webhook is recorded in the logs
//! database, valid or not, with its headers (credentials and signatures
//! redacted), raw body, verdict and request id. Its SQL is checked at
//! compile time against the logs migrations (`scripts/sqlx-prepare`).
//! Rows older than the retention are purged in the background.

use std::time::Duration;

use serde_json::{Map, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::Retention;

/// Rows deleted per statement, so a purge never holds many locks or a long
/// transaction, however far behind it starts.
pub const PURGE_BATCH: u32 = 1000;

/// Headers whose values never reach storage.
const REDACTED: [&str; 7] = [
    "authorization",
    "cookie",
    "x-api-key",
    "x-internal-signature",
    "x-provider-signature",
    "stripe-signature",
    "x-signature",
];

/// The logs database.
#[derive(Clone, Debug)]
pub struct WebhookLog {
    pool: PgPool,
}

/// One received webhook and what became of it.
pub struct Inbound<'a> {
    pub request_id: &'a str,
    pub path: &'a str,
    pub alias: Option<&'a str>,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    pub verdict: &'a str,
    pub detail: Option<&'a str>,
}

impl WebhookLog {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Stores `w`; answers its row id.
    pub async fn record(&self, w: &Inbound<'_>) -> Result<i64, sqlx::Error> {
        let headers: Map<String, Value> = w
            .headers
            .iter()
            .map(|(k, v)| {
                let value = if REDACTED.contains(&k.as_str()) {
                    "[redacted]"
                } else {
                    v.as_str()
                };
                (k.clone(), Value::String(value.to_owned()))
            })
            .collect();
        sqlx::query_scalar!(
            "INSERT INTO inbound_webhooks (request_id, path, alias, headers, body, verdict, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            w.request_id,
            w.path,
            w.alias,
            Value::Object(headers),
            w.body,
            w.verdict,
            w.detail,
        )
        .fetch_one(&self.pool)
        .await
    }

    /// The newest `limit` webhooks, newest first; of one alias when given
    /// (`Some(None)`: the internal route).
    pub async fn newest(
        &self,
        alias: Option<Option<&str>>,
        limit: i64,
    ) -> Result<Vec<paygate_harness::replay::LoggedWebhook>, sqlx::Error> {
        let rows = sqlx::query!(
            "SELECT id, path, alias, headers, body, verdict,
                    (extract(epoch FROM received_at) * 1000)::bigint AS \"received_at_ms!\"
             FROM inbound_webhooks
             WHERE NOT $1 OR alias IS NOT DISTINCT FROM $2
             ORDER BY id DESC
             LIMIT $3",
            alias.is_some(),
            alias.flatten(),
            limit,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| paygate_harness::replay::LoggedWebhook {
                id: r.id,
                path: r.path,
                alias: r.alias,
                headers: (r.headers.as_object().into_iter().flatten())
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect(),
                body: r.body,
                verdict: r.verdict,
                received_at_ms: u64::try_from(r.received_at_ms).unwrap_or(0),
            })
            .collect())
    }

    /// Replaces the verdict of row `id`, once applying its events said more
    /// than its signature did.
    pub async fn set_verdict(
        &self,
        id: i64,
        verdict: &str,
        detail: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "UPDATE inbound_webhooks SET verdict = $2, detail = $3 WHERE id = $1",
            id,
            verdict,
            detail,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Verdicts recorded for a request id, for tests and operators.
    pub async fn verdicts(&self, request_id: &str) -> Result<Vec<(String, Value)>, sqlx::Error> {
        let rows = sqlx::query!(
            "SELECT verdict, headers FROM inbound_webhooks WHERE request_id = $1 ORDER BY id",
            request_id,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.verdict, r.headers)).collect())
    }

    /// Deletes up to `batch` rows received before `cutoff` (oldest first);
    /// answers how many went.
    pub async fn purge_batch(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
        batch: u32,
    ) -> Result<u64, sqlx::Error> {
        // The `received_at` index finds the oldest rows; a row that went
        // meanwhile (another replica's purge) is simply not deleted twice.
        let done = sqlx::query!(
            "DELETE FROM inbound_webhooks WHERE id IN (
                 SELECT id FROM inbound_webhooks WHERE received_at < $1
                 ORDER BY received_at LIMIT $2)",
            cutoff,
            i64::from(batch),
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Purges rows older than `retention` every `every` (batch after batch
    /// until none is left), until `shutdown`. A failed round is logged and
    /// tried again next time.
    pub async fn purge(self, retention: Retention, every: Duration, shutdown: CancellationToken) {
        let Retention::For(keep) = retention else {
            return;
        };
        let Ok(keep) = chrono::Duration::from_std(keep) else {
            return; // longer than chrono can count: nothing is that old
        };
        loop {
            let cutoff = chrono::Utc::now() - keep;
            let mut purged = 0;
            loop {
                // A batch is short: it is finished, not cut off, at shutdown.
                let round = self.purge_batch(cutoff, PURGE_BATCH).await;
                if shutdown.is_cancelled() {
                    return;
                }
                match round {
                    Ok(n) => {
                        purged += n;
                        if n < u64::from(PURGE_BATCH) {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "purging old webhooks failed; trying again later");
                        break;
                    }
                }
            }
            if purged > 0 {
                tracing::info!(purged, "old webhooks purged from the logs database");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}
