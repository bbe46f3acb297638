//! The admin audit log (API.md, "Admin API"): one row per action taken
//! through the admin API, in the logs database, listed by
//! `GET /admin/v1/audit`. Rows hold no secret: callers pass what an
//! object looks like without its secrets.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

/// The logs database's audit table.
#[derive(Clone, Debug)]
pub struct AuditLog {
    pool: PgPool,
}

/// One action as the audit log keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(serialize_with = "crate::payments::store::rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    /// Who: `token:` and the first 12 hex digits of the admin token's SHA-256.
    pub actor: String,
    /// What: `merchant.create`, `merchant.update`, `merchant.tokens.add` ...
    pub action: String,
    /// On what: `merchant:42` ...
    pub target: String,
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
}

/// One action to record.
pub struct Action<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl AuditLog {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn record(&self, action: &Action<'_>) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "INSERT INTO admin_audit (actor, action, target, before, after) VALUES ($1, $2, $3, $4, $5)",
            action.actor,
            action.action,
            action.target,
            action.before,
            action.after,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Up to `limit` entries, newest first, older than entry
    /// `starting_after` when given.
    pub async fn list(
        &self,
        limit: i64,
        starting_after: Option<i64>,
    ) -> Result<Vec<AuditEntry>, sqlx::Error> {
        sqlx::query_as!(
            AuditEntry,
            "SELECT id, at, actor, action, target, before, after FROM admin_audit
             WHERE $2::bigint IS NULL OR id < $2 ORDER BY id DESC LIMIT $1",
            limit,
            starting_after,
        )
        .fetch_all(&self.pool)
        .await
    }
}
