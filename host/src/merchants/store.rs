//! SQL of the merchants database, checked at compile time against its
//! migrations (`scripts/sqlx-prepare`).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;

use super::accounts::ProviderAccounts;
use super::auth::{Merchant, Scope};
use super::keys::{ApiKey, KeyHash, generate_key, generate_secret};
use crate::db::LeanPool;
use crate::ids::{MerchantId, OrderId, SubscriptionId};
use crate::plugins::Secret;
use crate::sealing::Sealer;

/// The columns sealed secrets are bound to.
pub(super) const WEBHOOK_SECRET: &str = "merchants.webhook_secret";
const SIGNING_SECRET: &str = "merchants.request_signing_secret";

/// The merchants database. Merchants' webhook and request-signing secrets
/// are sealed in it (`crate::sealing`).
#[derive(Clone)]
pub struct MerchantStore {
    pub(super) pool: PgPool,
    pub(super) sealer: Arc<Sealer>,
    /// Merchants' own accounts at providers, shared by every clone.
    pub accounts: Arc<ProviderAccounts>,
    /// The same database, for the quota token every create takes
    /// ([`crate::db::LeanPool`]: no ping on release).
    lean: LeanPool,
}

impl std::fmt::Debug for MerchantStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerchantStore").finish_non_exhaustive()
    }
}

/// A sealed secret that cannot be opened reads as a value the database
/// could not decode: the merchant cannot be served until the key is given.
fn unsealing(error: crate::sealing::SealError) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(error))
}

/// What `merchants create` takes.
#[derive(Clone, Debug)]
pub struct NewMerchant {
    pub name: String,
    pub callback_url: Option<String>,
    pub tokens: i64,
    pub currency: String,
    pub require_signed_writes: bool,
}

/// What `merchants create` prints: the only time keys and secrets are shown.
#[derive(Clone, Debug, Serialize)]
pub struct CreatedMerchant {
    pub merchant_id: MerchantId,
    pub subscription_id: SubscriptionId,
    pub api_key: String,
    pub read_api_key: String,
    pub webhook_secret: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_signing_secret: Option<String>,
}

/// A token charged for an order, as the quota reconciler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Charge {
    pub merchant_id: MerchantId,
    pub order_id: OrderId,
    /// When it was charged, or last taken over: the reconciler's fence.
    pub charged_at: chrono::DateTime<chrono::Utc>,
}

impl Charge {
    pub fn order(&self) -> (MerchantId, OrderId) {
        (self.merchant_id, self.order_id)
    }
}

/// What taking a token for an order came to.
#[derive(Debug, PartialEq)]
pub enum Take {
    /// Charged to this request.
    Taken,
    /// The order is already charged, `age` ago: its payment exists, another
    /// request for it is running, or one died before creating it.
    Held {
        age: Duration,
    },
    Refused(QuotaError),
}

/// Why a token could not be taken.
#[derive(Debug, PartialEq, Eq)]
pub enum QuotaError {
    /// Not the merchant's subscription, or inactive.
    InvalidSubscription,
    Exhausted,
}

impl MerchantStore {
    pub fn new(pool: PgPool, sealer: Arc<Sealer>) -> Self {
        let accounts = Arc::new(ProviderAccounts::new(pool.clone(), sealer.clone()));
        let lean = LeanPool::beside(&pool);
        Self {
            pool,
            sealer,
            accounts,
            lean,
        }
    }

    /// Seals every merchant secret not sealed under the current key yet
    /// (written before sealing, or under a previous key); returns how many
    /// merchants changed. Run after a key rotation, once every replica
    /// knows the new key.
    pub async fn reseal(&self) -> Result<u64, sqlx::Error> {
        let rows = sqlx::query!(
            r#"SELECT id AS "id: MerchantId", webhook_secret, request_signing_secret,
                      previous_webhook_secret
               FROM merchants ORDER BY id"#
        )
        .fetch_all(&self.pool)
        .await?;
        let mut changed = 0;
        for row in rows {
            let stale = |stored: &Option<String>| {
                stored
                    .as_deref()
                    .is_some_and(|s| !self.sealer.is_current(s))
            };
            let webhook = Some(row.webhook_secret);
            let (signing, previous) = (row.request_signing_secret, row.previous_webhook_secret);
            if !stale(&webhook) && !stale(&signing) && !stale(&previous) {
                continue;
            }
            let reseal = |stored: &Option<String>, column| -> Result<Option<String>, sqlx::Error> {
                let Some(stored) = stored else {
                    return Ok(None);
                };
                let secret = self.sealer.open(stored, column).map_err(unsealing)?;
                Ok(Some(self.sealer.seal(secret.expose(), column)))
            };
            // Only if unchanged since read: a rotation meanwhile wins.
            let done = sqlx::query!(
                "UPDATE merchants
                 SET webhook_secret = $2, request_signing_secret = $3, previous_webhook_secret = $4
                 WHERE id = $1 AND webhook_secret = $5
                   AND request_signing_secret IS NOT DISTINCT FROM $6
                   AND previous_webhook_secret IS NOT DISTINCT FROM $7",
                row.id.get(),
                reseal(&webhook, WEBHOOK_SECRET)?,
                reseal(&signing, SIGNING_SECRET)?,
                reseal(&previous, WEBHOOK_SECRET)?,
                webhook,
                signing,
                previous,
            )
            .execute(&self.pool)
            .await?;
            changed += done.rows_affected();
        }
        Ok(changed)
    }

    /// Creates a merchant with a subscription and a write and a read key.
    pub async fn create(&self, new: &NewMerchant) -> Result<CreatedMerchant, sqlx::Error> {
        let webhook_secret = generate_secret("whsec_");
        let signing = new.require_signed_writes.then(|| generate_secret("rss_"));
        let mut tx = self.pool.begin().await?;
        let merchant_id = sqlx::query_scalar!(
            r#"INSERT INTO merchants (name, callback_url, webhook_secret, default_currency, require_signed_writes, request_signing_secret)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING id AS "id: MerchantId""#,
            new.name,
            new.callback_url,
            self.sealer.seal(webhook_secret.expose(), WEBHOOK_SECRET),
            new.currency,
            new.require_signed_writes,
            signing.as_ref().map(|s| self.sealer.seal(s.expose(), SIGNING_SECRET)),
        )
        .fetch_one(&mut *tx)
        .await?;
        let subscription_id = sqlx::query_scalar!(
            r#"INSERT INTO subscriptions (merchant_id, token_limit) VALUES ($1, $2)
               RETURNING id AS "id: SubscriptionId""#,
            merchant_id.get(),
            new.tokens,
        )
        .fetch_one(&mut *tx)
        .await?;
        let (api_key, read_api_key) = insert_key_pair(&mut tx, merchant_id).await?;
        tx.commit().await?;
        Ok(CreatedMerchant {
            merchant_id,
            subscription_id,
            api_key: api_key.expose().to_owned(),
            read_api_key: read_api_key.expose().to_owned(),
            webhook_secret: webhook_secret.expose().to_owned(),
            request_signing_secret: signing.map(|s| s.expose().to_owned()),
        })
    }

    /// Revokes one key now, even one in a rotation's grace period; returns
    /// whether it existed and was live.
    pub async fn revoke_key(&self, key: &str) -> Result<bool, sqlx::Error> {
        let hash = ApiKey(key).hash();
        let done = sqlx::query!(
            "UPDATE api_keys SET revoked_at = now()
             WHERE key_hash = $1 AND (revoked_at IS NULL OR revoked_at > now())",
            &hash.0[..],
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The merchant behind a live key; a key of a scope this version does
    /// not know authenticates no one.
    pub async fn merchant_for_key(&self, hash: &KeyHash) -> Result<Option<Merchant>, sqlx::Error> {
        let row = sqlx::query!(
            r#"SELECT m.id AS "id: MerchantId", k.scope, m.default_currency,
                      CASE WHEN m.require_signed_writes THEN m.request_signing_secret END AS request_signing_secret,
                      m.default_return_url, m.default_cancel_url
               FROM api_keys k JOIN merchants m ON m.id = k.merchant_id
               WHERE k.key_hash = $1 AND (k.revoked_at IS NULL OR k.revoked_at > now())
                 AND NOT m.disabled"#,
            &hash.0[..],
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let request_signing_secret = (row.request_signing_secret.as_deref())
            .map(|stored| self.sealer.open(stored, SIGNING_SECRET))
            .transpose()
            .map_err(unsealing)?;
        Ok(Scope::parse(&row.scope).map(|scope| Merchant {
            id: row.id,
            scope,
            default_currency: row.default_currency,
            request_signing_secret,
            // Checked when the merchant set them; parsed once per cached
            // key rather than on every payment.
            default_return_url: stored_url(row.default_return_url),
            default_cancel_url: stored_url(row.default_cancel_url),
        }))
    }

    /// Takes one token of the merchant's own active subscription for
    /// `order_id`, exactly: the check, the slot's increment and the charge
    /// are one statement.
    pub async fn take_token(
        &self,
        merchant_id: MerchantId,
        subscription_id: SubscriptionId,
        order_id: OrderId,
    ) -> Result<Take, sqlx::Error> {
        // The statement waits for busy slots in one order, so it should
        // never deadlock; were PostgreSQL to pick it as a deadlock's victim
        // anyway, it rolled back whole and is safe to run again.
        let mut tries = 0;
        let taken = loop {
            // A function's OUT columns carry no NOT NULL; `outcome` is
            // always set.
            let mut conn = self.lean.acquire().await?;
            let taken = sqlx::query!(
                r#"SELECT outcome AS "outcome!", held_secs FROM take_quota_token($1, $2, $3)"#,
                subscription_id.get(),
                merchant_id.get(),
                order_id.get(),
            )
            .fetch_one(conn.get())
            .await;
            if taken.is_ok() {
                conn.release();
            }
            match taken {
                Err(e) if tries < 3 && is_deadlock(&e) => {
                    tries += 1;
                    tracing::warn!(
                        order_id = order_id.get(),
                        "quota token: deadlock victim, trying again"
                    );
                }
                taken => break taken?,
            }
        };
        Ok(match taken.outcome.as_str() {
            "taken" => Take::Taken,
            "held" => Take::Held {
                age: Duration::from_secs_f64(taken.held_secs.unwrap_or(0.0).max(0.0)),
            },
            "exhausted" => Take::Refused(QuotaError::Exhausted),
            _ => Take::Refused(QuotaError::InvalidSubscription),
        })
    }

    /// Makes an unconfirmed charge older than `lease` this request's own: the
    /// request that took it died before creating a payment. Whether the
    /// charge is still there and still that old is checked in the same
    /// statement, so only one request takes it over.
    pub async fn take_over_charge(
        &self,
        merchant_id: MerchantId,
        order_id: OrderId,
        lease: Duration,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query!(
            "UPDATE quota_charges SET charged_at = now()
             WHERE merchant_id = $1 AND order_id = $2 AND NOT confirmed
               AND charged_at < now() - make_interval(secs => $3)",
            merchant_id.get(),
            order_id.get(),
            lease.as_secs_f64(),
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives back the token charged for `order_id`, if it still is.
    pub async fn return_token(
        &self,
        merchant_id: MerchantId,
        order_id: OrderId,
    ) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar!(
            r#"SELECT return_quota_token($1, $2) AS "returned!""#,
            merchant_id.get(),
            order_id.get(),
        )
        .fetch_one(&self.pool)
        .await
    }

    /// Gives back, in one statement, the tokens charged for those of
    /// `orders` that still are; answers how many. Each goes back as
    /// [`Self::return_token`] gives one back, in the order of the quota
    /// slots they free, so two replicas giving back overlapping sets wait
    /// for each other's slots instead of deadlocking.
    pub async fn return_tokens(
        &self,
        orders: &[(MerchantId, OrderId)],
    ) -> Result<u64, sqlx::Error> {
        if orders.is_empty() {
            return Ok(0);
        }
        let (merchant_ids, order_ids): (Vec<i64>, Vec<i64>) =
            orders.iter().map(|(m, o)| (m.get(), o.get())).unzip();
        let returned = sqlx::query_scalar!(
            r#"SELECT count(*) FILTER (WHERE returned) AS "returned!"
               FROM (SELECT return_quota_token(c.merchant_id, c.order_id) AS returned
                     FROM quota_charges c
                     JOIN unnest($1::bigint[], $2::bigint[]) AS o(merchant_id, order_id)
                       ON c.merchant_id = o.merchant_id AND c.order_id = o.order_id
                     ORDER BY c.subscription_id, c.slot) given"#,
            &merchant_ids,
            &order_ids,
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(returned as u64)
    }

    /// Unconfirmed charges taken before `grace` ago, oldest first.
    pub async fn unconfirmed_charges(
        &self,
        grace: Duration,
        limit: i64,
    ) -> Result<Vec<Charge>, sqlx::Error> {
        sqlx::query_as!(
            Charge,
            r#"SELECT merchant_id AS "merchant_id: MerchantId", order_id AS "order_id: OrderId",
                      charged_at
               FROM quota_charges
               WHERE NOT confirmed AND charged_at < now() - make_interval(secs => $1)
               ORDER BY charged_at LIMIT $2"#,
            grace.as_secs_f64(),
            limit,
        )
        .fetch_all(&self.pool)
        .await
    }

    /// Gives back the token of `charge` if the charge is still as it was
    /// seen: not confirmed, and not taken over by a request since (which
    /// refreshes its time). The reconciler's return.
    pub async fn return_stale_token(&self, charge: &Charge) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar!(
            r#"SELECT return_stale_quota_token($1, $2, $3) AS "returned!""#,
            charge.merchant_id.get(),
            charge.order_id.get(),
            charge.charged_at,
        )
        .fetch_one(&self.pool)
        .await
    }

    /// Confirms charges whose payments exist, so they are not looked at
    /// again.
    pub async fn confirm_charges(
        &self,
        orders: &[(MerchantId, OrderId)],
    ) -> Result<(), sqlx::Error> {
        let (merchants, order_ids): (Vec<i64>, Vec<i64>) =
            orders.iter().map(|(m, o)| (m.get(), o.get())).unzip();
        sqlx::query!(
            "UPDATE quota_charges c SET confirmed = TRUE
             FROM unnest($1::bigint[], $2::bigint[]) AS o (merchant_id, order_id)
             WHERE c.merchant_id = o.merchant_id AND c.order_id = o.order_id",
            &merchants,
            &order_ids,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Tokens used of a subscription (for tests and operators).
    pub async fn tokens_used(&self, subscription_id: SubscriptionId) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar!(
            r#"SELECT COALESCE(sum(used), 0)::bigint AS "used!" FROM quota_slots WHERE subscription_id = $1"#,
            subscription_id.get(),
        )
        .fetch_one(&self.pool)
        .await
    }
}

pub(super) async fn insert_key_pair(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    merchant_id: MerchantId,
) -> Result<(Secret, Secret), sqlx::Error> {
    let write = generate_key(Scope::Write);
    let read = generate_key(Scope::Read);
    for (key, scope) in [(&write, Scope::Write), (&read, Scope::Read)] {
        let hash = ApiKey(key.expose()).hash();
        sqlx::query!(
            "INSERT INTO api_keys (merchant_id, key_hash, scope) VALUES ($1, $2, $3)",
            merchant_id.get(),
            &hash.0[..],
            scope.as_str(),
        )
        .execute(&mut **tx)
        .await?;
    }
    Ok((write, read))
}

impl MerchantStore {
    /// The id of the oldest merchant with this name (for the demo's seed).
    pub async fn id_by_name(&self, name: &str) -> Result<Option<MerchantId>, sqlx::Error> {
        sqlx::query_scalar!(
            r#"SELECT id AS "id: MerchantId" FROM merchants WHERE name = $1 ORDER BY id LIMIT 1"#,
            name,
        )
        .fetch_optional(&self.pool)
        .await
    }

    /// The secret a merchant's notifications are signed with (for the demo
    /// shop, which verifies them as the demo merchant).
    pub async fn webhook_secret(
        &self,
        merchant_id: MerchantId,
    ) -> Result<Option<Secret>, sqlx::Error> {
        let secret = sqlx::query_scalar!(
            "SELECT webhook_secret FROM merchants WHERE id = $1",
            merchant_id.get(),
        )
        .fetch_optional(&self.pool)
        .await?;
        (secret.as_deref())
            .map(|stored| self.sealer.open(stored, WEBHOOK_SECRET))
            .transpose()
            .map_err(unsealing)
    }

    /// Points a merchant's notifications at `url`; returns whether the
    /// merchant exists.
    pub async fn set_callback_url(
        &self,
        merchant_id: MerchantId,
        url: &str,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query!(
            "UPDATE merchants SET callback_url = $2 WHERE id = $1",
            merchant_id.get(),
            url,
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The first subscription of a merchant (for the demo's seed).
    pub async fn first_subscription(
        &self,
        merchant_id: MerchantId,
    ) -> Result<Option<SubscriptionId>, sqlx::Error> {
        sqlx::query_scalar!(
            r#"SELECT id AS "id: SubscriptionId" FROM subscriptions WHERE merchant_id = $1 ORDER BY id LIMIT 1"#,
            merchant_id.get(),
        )
        .fetch_optional(&self.pool)
        .await
    }

    /// Where and with what key a merchant's notifications go.
    pub async fn notification_target(
        &self,
        merchant_id: MerchantId,
    ) -> Result<Option<NotificationTarget>, sqlx::Error> {
        let row = sqlx::query!(
            "SELECT callback_url, webhook_secret,
                    CASE WHEN previous_webhook_secret_expires_at > now()
                         THEN previous_webhook_secret END AS previous_webhook_secret
             FROM merchants WHERE id = $1",
            merchant_id.get(),
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let open = |stored: &str| self.sealer.open(stored, WEBHOOK_SECRET).map_err(unsealing);
        Ok(Some(NotificationTarget {
            callback_url: row.callback_url,
            webhook_secret: open(&row.webhook_secret)?,
            previous_webhook_secret: row
                .previous_webhook_secret
                .as_deref()
                .map(open)
                .transpose()?,
        }))
    }
}

/// A merchant's callback URL and notification signing secret (`whsec_...`).
#[derive(Clone, Debug)]
pub struct NotificationTarget {
    pub callback_url: Option<String>,
    pub webhook_secret: Secret,
    /// The secret a rotation replaced, while its grace period lasts: it
    /// signs too.
    pub previous_webhook_secret: Option<Secret>,
}

/// A URL the merchant set, as payments take it.
fn stored_url(url: Option<String>) -> Option<crate::payments::RedirectUrl> {
    crate::payments::RedirectUrl::from_stored(&url?)
}

/// PostgreSQL's `deadlock_detected` (40P01).
fn is_deadlock(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "40P01")
}
