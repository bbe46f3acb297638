//! A merchant's own settings (API.md, "The merchant's own settings"): what
//! `GET` and `PATCH /api/v1/merchant` show and change, and the rotation of
//! its webhook secret and API keys with a grace period, during which the
//! old secret still signs and the old keys still work. The CLI calls the
//! same functions.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::keys::generate_secret;
use super::store::{MerchantStore, WEBHOOK_SECRET, insert_key_pair};
use crate::ids::{MerchantId, SubscriptionId};
use crate::plugins::Secret;

/// The longest grace period a rotation takes: a week.
pub const MAX_GRACE: Duration = Duration::from_secs(604_800);
/// A webhook secret's default grace period: a day, so a merchant has time
/// to deploy the new one.
pub const WEBHOOK_SECRET_GRACE: Duration = Duration::from_secs(86_400);

/// What `GET /api/v1/merchant` shows: no secret.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Settings {
    #[schema(value_type = i64)]
    pub merchant_id: MerchantId,
    pub name: String,
    /// The currency of payments that name none.
    pub currency: String,
    pub callback_url: Option<String>,
    pub default_return_url: Option<String>,
    pub default_cancel_url: Option<String>,
    /// Writes must be signed with the request-signing secret.
    pub signed_writes: bool,
    pub subscriptions: Vec<SubscriptionUse>,
}

/// A subscription and how much of it is used.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SubscriptionUse {
    #[schema(value_type = i64)]
    pub subscription_id: SubscriptionId,
    pub tokens_total: i64,
    pub tokens_used: i64,
    pub active: bool,
}

/// A change of settings, each already validated: `None` leaves a field as
/// it is, `Some(None)` clears it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SettingsChange {
    pub callback_url: Option<Option<String>>,
    pub default_return_url: Option<Option<String>>,
    pub default_cancel_url: Option<Option<String>>,
    /// Operators only: the merchant's name, 1 to 200 characters.
    pub name: Option<String>,
    /// Operators only: a disabled merchant's keys authenticate no one.
    pub disabled: Option<bool>,
}

/// A merchant's row, before its subscriptions are read.
struct MerchantRow {
    id: MerchantId,
    name: String,
    default_currency: String,
    callback_url: Option<String>,
    default_return_url: Option<String>,
    default_cancel_url: Option<String>,
    require_signed_writes: bool,
    disabled: bool,
    created_at: DateTime<Utc>,
}

/// A merchant as operators see it: its settings, whether it is disabled
/// and when it was made. No secret.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MerchantRecord {
    #[serde(flatten)]
    pub settings: Settings,
    pub disabled: bool,
    #[serde(serialize_with = "crate::payments::store::rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

/// A new webhook secret, and when the one it replaced stops signing.
#[derive(Debug)]
pub struct RotatedSecret {
    pub webhook_secret: Secret,
    pub previous_expires_at: DateTime<Utc>,
}

/// A new key pair, and when the keys it replaced stop working.
#[derive(Debug)]
pub struct RotatedKeys {
    pub api_key: Secret,
    pub read_api_key: Secret,
    pub previous_expires_at: DateTime<Utc>,
}

/// A grace period as PostgreSQL's seconds.
fn seconds(grace: Duration) -> f64 {
    grace.min(MAX_GRACE).as_secs_f64()
}

impl MerchantStore {
    /// The merchant's settings; `None` when there is no such merchant.
    pub async fn settings(&self, merchant_id: MerchantId) -> Result<Option<Settings>, sqlx::Error> {
        Ok(self.record(merchant_id).await?.map(|r| r.settings))
    }

    /// The merchant as operators see it; `None` when there is no such
    /// merchant. Looked up by its key alone, so the plan is the primary
    /// key's whatever the parameters.
    pub async fn record(
        &self,
        merchant_id: MerchantId,
    ) -> Result<Option<MerchantRecord>, sqlx::Error> {
        let row = sqlx::query_as!(
            MerchantRow,
            r#"SELECT id AS "id: MerchantId", name, default_currency, callback_url,
                      default_return_url, default_cancel_url, require_signed_writes, disabled,
                      created_at
               FROM merchants WHERE id = $1"#,
            merchant_id.get(),
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(self.with_subscriptions(Vec::from_iter(row)).await?.pop())
    }

    /// Up to `limit` merchants, newest first, older than `starting_after`
    /// when given.
    pub async fn records(
        &self,
        limit: i64,
        starting_after: Option<MerchantId>,
    ) -> Result<Vec<MerchantRecord>, sqlx::Error> {
        let rows = sqlx::query_as!(
            MerchantRow,
            r#"SELECT id AS "id: MerchantId", name, default_currency, callback_url,
                      default_return_url, default_cancel_url, require_signed_writes, disabled,
                      created_at
               FROM merchants WHERE $2::bigint IS NULL OR id < $2
               ORDER BY id DESC LIMIT $1"#,
            limit,
            starting_after.map(MerchantId::get),
        )
        .fetch_all(&self.pool)
        .await?;
        self.with_subscriptions(rows).await
    }

    /// The merchants of `rows` with their subscriptions, read in one query.
    async fn with_subscriptions(
        &self,
        rows: Vec<MerchantRow>,
    ) -> Result<Vec<MerchantRecord>, sqlx::Error> {
        let ids: Vec<i64> = rows.iter().map(|r| r.id.get()).collect();
        let subscriptions = sqlx::query!(
            r#"SELECT s.merchant_id AS "merchant_id: MerchantId",
                      s.id AS "subscription_id: SubscriptionId", s.token_limit AS tokens_total,
                      (SELECT coalesce(sum(q.used), 0)::bigint FROM quota_slots q
                       WHERE q.subscription_id = s.id) AS "tokens_used!",
                      s.active
               FROM subscriptions s WHERE s.merchant_id = ANY($1) ORDER BY s.id"#,
            &ids,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| MerchantRecord {
                settings: Settings {
                    merchant_id: row.id,
                    name: row.name,
                    currency: row.default_currency,
                    callback_url: row.callback_url,
                    default_return_url: row.default_return_url.map(shown_url),
                    default_cancel_url: row.default_cancel_url.map(shown_url),
                    signed_writes: row.require_signed_writes,
                    subscriptions: (subscriptions.iter())
                        .filter(|s| s.merchant_id == row.id)
                        .map(|s| SubscriptionUse {
                            subscription_id: s.subscription_id,
                            tokens_total: s.tokens_total,
                            tokens_used: s.tokens_used,
                            active: s.active,
                        })
                        .collect(),
                },
                disabled: row.disabled,
                created_at: row.created_at,
            })
            .collect())
    }

    /// Adds `add` tokens to the merchant's subscription, spread over its
    /// quota slots as a new subscription's are; `None` when the merchant
    /// has no such subscription.
    pub async fn add_tokens(
        &self,
        merchant_id: MerchantId,
        subscription_id: SubscriptionId,
        add: i64,
    ) -> Result<Option<SubscriptionUse>, sqlx::Error> {
        sqlx::query_as!(
            SubscriptionUse,
            r#"WITH s AS (
                   UPDATE subscriptions SET token_limit = token_limit + $3
                   WHERE id = $2 AND merchant_id = $1
                   RETURNING id, token_limit, active
               ), slots AS (
                   UPDATE quota_slots q
                   SET cap = q.cap + $3 / 16 + CASE WHEN q.slot < $3 % 16 THEN 1 ELSE 0 END
                   FROM s WHERE q.subscription_id = s.id
                   RETURNING q.used
               )
               SELECT s.id AS "subscription_id: SubscriptionId", s.token_limit AS tokens_total,
                      (SELECT coalesce(sum(used), 0)::bigint FROM slots) AS "tokens_used!",
                      s.active
               FROM s"#,
            merchant_id.get(),
            subscription_id.get(),
            add,
        )
        .fetch_optional(&self.pool)
        .await
    }

    /// Applies `change`; whether there is such a merchant. Callers read
    /// back what they show (the settings, or the operators' record).
    pub async fn change_settings(
        &self,
        merchant_id: MerchantId,
        change: &SettingsChange,
    ) -> Result<bool, sqlx::Error> {
        let field = |f: &Option<Option<String>>| (f.is_some(), f.clone().flatten());
        let (callback, callback_url) = field(&change.callback_url);
        let (return_, return_url) = field(&change.default_return_url);
        let (cancel, cancel_url) = field(&change.default_cancel_url);
        let done = sqlx::query!(
            "UPDATE merchants
             SET callback_url = CASE WHEN $2 THEN $3 ELSE callback_url END,
                 default_return_url = CASE WHEN $4 THEN $5 ELSE default_return_url END,
                 default_cancel_url = CASE WHEN $6 THEN $7 ELSE default_cancel_url END,
                 name = coalesce($8, name),
                 disabled = coalesce($9, disabled)
             WHERE id = $1",
            merchant_id.get(),
            callback,
            callback_url,
            return_,
            return_url,
            cancel,
            cancel_url,
            change.name,
            change.disabled,
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the merchant a new webhook secret; the current one keeps
    /// signing for `grace` (at most [`MAX_GRACE`]; zero ends it now). The
    /// one a rotation before replaced stops at once: two secrets at most.
    pub async fn rotate_webhook_secret(
        &self,
        merchant_id: MerchantId,
        grace: Duration,
    ) -> Result<Option<RotatedSecret>, sqlx::Error> {
        let secret = generate_secret("whsec_");
        let sealed = self.sealer.seal(secret.expose(), WEBHOOK_SECRET);
        let expires_at = sqlx::query_scalar!(
            r#"UPDATE merchants
               SET previous_webhook_secret = CASE WHEN $3 > 0 THEN webhook_secret END,
                   previous_webhook_secret_expires_at =
                       CASE WHEN $3 > 0 THEN now() + make_interval(secs => $3) END,
                   webhook_secret = $2
               WHERE id = $1
               RETURNING now() + make_interval(secs => $3) AS "expires_at!""#,
            merchant_id.get(),
            sealed,
            seconds(grace),
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(expires_at.map(|previous_expires_at| RotatedSecret {
            webhook_secret: secret,
            previous_expires_at,
        }))
    }

    /// Issues the merchant a new key pair; its live keys keep working for
    /// `grace` (at most [`MAX_GRACE`]; zero revokes them now), or less if
    /// an earlier rotation ends them sooner.
    pub async fn rotate_keys(
        &self,
        merchant_id: MerchantId,
        grace: Duration,
    ) -> Result<Option<RotatedKeys>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // Locks the merchant, so two rotations run one after the other.
        let exists = sqlx::query_scalar!(
            "SELECT id FROM merchants WHERE id = $1 FOR UPDATE",
            merchant_id.get(),
        )
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let previous_expires_at = sqlx::query_scalar!(
            r#"WITH ended AS (
                   UPDATE api_keys
                   SET revoked_at = least(coalesce(revoked_at, 'infinity'),
                                          now() + make_interval(secs => $2))
                   WHERE merchant_id = $1 AND (revoked_at IS NULL OR revoked_at > now())
               )
               SELECT now() + make_interval(secs => $2) AS "expires_at!""#,
            merchant_id.get(),
            seconds(grace),
        )
        .fetch_one(&mut *tx)
        .await?;
        let (api_key, read_api_key) = insert_key_pair(&mut tx, merchant_id).await?;
        tx.commit().await?;
        Ok(Some(RotatedKeys {
            api_key,
            read_api_key,
            previous_expires_at,
        }))
    }
}

/// A stored default URL as payments use it ([`RedirectUrl::from_stored`]):
/// one written before the ASCII rule is shown in its ASCII form.
///
/// [`RedirectUrl::from_stored`]: crate::payments::RedirectUrl::from_stored
fn shown_url(stored: String) -> String {
    match crate::payments::RedirectUrl::from_stored(&stored) {
        Some(url) => url.as_str().to_owned(),
        None => stored,
    }
}

/// What URLs a merchant may set, from the host's settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// `http://` return, cancel and callback URLs on any host (`serve --demo`).
    pub allow_http: bool,
    /// Callback URLs on loopback and private addresses
    /// (`PAYGATE_ALLOW_PRIVATE_CALLBACKS`).
    pub allow_private_callbacks: bool,
}

/// A callback URL as notifications need it: a return URL's rules (absolute,
/// `https://` unless allowed, no credentials, at most 2,048 characters) and
/// no loopback or private address unless allowed. A name that resolves to
/// one is refused again at delivery, where the address is known.
pub fn check_callback_url(text: &str, policy: UrlPolicy) -> Result<String, String> {
    let url = crate::payments::RedirectUrl::parse(text, policy.allow_http)?;
    if !policy.allow_private_callbacks {
        let host = url::Url::parse(url.as_str())
            .ok()
            .and_then(|u| u.host().map(|h| h.to_owned()));
        let private = match host {
            Some(url::Host::Ipv4(ip)) => !crate::notifier::is_public(ip.into()),
            Some(url::Host::Ipv6(ip)) => !crate::notifier::is_public(ip.into()),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                name == "localhost" || name.ends_with(".localhost")
            }
            None => true,
        };
        if private {
            return Err("must not be on a loopback or private address".into());
        }
    }
    Ok(url.as_str().to_owned())
}
