//! The webhook log: every inbound provider webhook is recorded in the logs
//! database, valid or not, with its headers (credentials and signatures
//! redacted), raw body, verdict and request id. Its SQL is checked at
//! compile time against the logs migrations (`scripts/sqlx-prepare`).

use serde_json::{Map, Value};
use sqlx::PgPool;

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

    pub async fn record(&self, w: &Inbound<'_>) -> Result<(), sqlx::Error> {
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
        sqlx::query!(
            "INSERT INTO inbound_webhooks (request_id, path, alias, headers, body, verdict, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            w.request_id,
            w.path,
            w.alias,
            Value::Object(headers),
            w.body,
            w.verdict,
            w.detail,
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
}
