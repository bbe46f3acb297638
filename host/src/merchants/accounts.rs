//! A merchant's own account at a provider (API.md, "Admin API"): config and
//! secrets that its payments and refunds on one alias use in place of the
//! alias's shared ones, setting by setting. Secrets are sealed at rest
//! ([`Sealer`]), each bound to its merchant, alias and name; they are opened
//! only to hand them to the adapter's `config` import during that merchant's
//! calls, and are never returned or logged: operators see their names.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::PgPool;

use crate::ids::MerchantId;
use crate::plugins::{Account, Secret};
use crate::sealing::Sealer;

/// How long an account read is reused: a change reaches every replica
/// within it (the replica that made it at once).
pub const ACCOUNT_CACHE_TTL: Duration = Duration::from_secs(5);
/// Past this many cached accounts (most of them "none"), expired ones go.
const CACHE_SWEEP_AT: usize = 10_000;

/// What the admin API shows of an account: its config, and its secrets by
/// name only.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AccountView {
    #[schema(value_type = i64)]
    pub merchant_id: MerchantId,
    pub alias: String,
    pub config: BTreeMap<String, String>,
    /// The names of its secrets; their values are never shown.
    pub secrets: Vec<String>,
    #[serde(serialize_with = "crate::payments::store::rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

type Cached = (Instant, Option<Arc<Account>>);

/// The merchants database's provider accounts, with a short cache of the
/// opened ones for the payment path.
pub struct ProviderAccounts {
    pool: PgPool,
    sealer: Arc<Sealer>,
    cache: Mutex<HashMap<(MerchantId, String), Cached>>,
}

impl std::fmt::Debug for ProviderAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderAccounts").finish_non_exhaustive()
    }
}

/// What a secret is sealed for: its merchant, alias and name.
fn column(merchant_id: MerchantId, alias: &str, name: &str) -> String {
    format!("merchant_provider_accounts.secrets:{merchant_id}:{alias}:{name}")
}

impl ProviderAccounts {
    pub fn new(pool: PgPool, sealer: Arc<Sealer>) -> Self {
        Self {
            pool,
            sealer,
            cache: Mutex::default(),
        }
    }

    /// Sets the merchant's account at `alias`, replacing the one before.
    pub async fn put(
        &self,
        merchant_id: MerchantId,
        alias: &str,
        config: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, Secret>,
    ) -> sqlx::Result<AccountView> {
        let sealed: BTreeMap<&str, String> = (secrets.iter())
            .map(|(name, value)| {
                let column = column(merchant_id, alias, name);
                (name.as_str(), self.sealer.seal(value.expose(), &column))
            })
            .collect();
        let updated_at = sqlx::query_scalar!(
            "INSERT INTO merchant_provider_accounts (merchant_id, alias, config, secrets)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (merchant_id, alias)
             DO UPDATE SET config = EXCLUDED.config, secrets = EXCLUDED.secrets, updated_at = now()
             RETURNING updated_at",
            merchant_id.get(),
            alias,
            serde_json::to_value(config).expect("strings serialize"),
            serde_json::to_value(&sealed).expect("strings serialize"),
        )
        .fetch_one(&self.pool)
        .await?;
        self.forget(merchant_id, alias);
        Ok(AccountView {
            merchant_id,
            alias: alias.to_owned(),
            config: config.clone(),
            secrets: secrets.keys().cloned().collect(),
            updated_at,
        })
    }

    /// The merchant's account at `alias` as operators see it.
    pub async fn view(
        &self,
        merchant_id: MerchantId,
        alias: &str,
    ) -> sqlx::Result<Option<AccountView>> {
        let row = sqlx::query!(
            "SELECT config, secrets, updated_at FROM merchant_provider_accounts
             WHERE merchant_id = $1 AND alias = $2",
            merchant_id.get(),
            alias,
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let config = strings(row.config)?;
            let secrets = strings(row.secrets)?.into_keys().collect();
            Ok(AccountView {
                merchant_id,
                alias: alias.to_owned(),
                config,
                secrets,
                updated_at: row.updated_at,
            })
        })
        .transpose()
    }

    /// Removes the merchant's account at `alias` (its calls use the alias's
    /// shared account again); whether there was one.
    pub async fn delete(&self, merchant_id: MerchantId, alias: &str) -> sqlx::Result<bool> {
        let done = sqlx::query!(
            "DELETE FROM merchant_provider_accounts WHERE merchant_id = $1 AND alias = $2",
            merchant_id.get(),
            alias,
        )
        .execute(&self.pool)
        .await?;
        self.forget(merchant_id, alias);
        Ok(done.rows_affected() == 1)
    }

    /// The account a call for the merchant on `alias` runs with, secrets
    /// opened; `None` when the merchant has none there. Read at most every
    /// [`ACCOUNT_CACHE_TTL`]. A secret that does not open is an error, never
    /// a fall back to the shared account: the merchant's money would go
    /// through the platform's.
    pub async fn account(
        &self,
        merchant_id: MerchantId,
        alias: &str,
    ) -> sqlx::Result<Option<Arc<Account>>> {
        let key = (merchant_id, alias.to_owned());
        if let Some((at, account)) = self.cache.lock().expect("accounts cache").get(&key)
            && at.elapsed() < ACCOUNT_CACHE_TTL
        {
            return Ok(account.clone());
        }
        let row = sqlx::query!(
            "SELECT config, secrets FROM merchant_provider_accounts
             WHERE merchant_id = $1 AND alias = $2",
            merchant_id.get(),
            alias,
        )
        .fetch_optional(&self.pool)
        .await?;
        let account = match row {
            None => None,
            Some(row) => {
                let mut secrets = BTreeMap::new();
                for (name, sealed) in strings(row.secrets)? {
                    let column = column(merchant_id, alias, &name);
                    // Every value here was sealed; one that is not was put
                    // there by hand, and is not to be trusted either.
                    let opened = (sealed.starts_with("sealed:"))
                        .then(|| self.sealer.open(&sealed, &column))
                        .and_then(Result::ok)
                        .ok_or_else(|| unreadable(&format!("secret {name:?} does not open")))?;
                    secrets.insert(name, opened);
                }
                Some(Arc::new(Account {
                    config: strings(row.config)?,
                    secrets,
                }))
            }
        };
        let mut cache = self.cache.lock().expect("accounts cache");
        if cache.len() >= CACHE_SWEEP_AT {
            cache.retain(|_, (at, _)| at.elapsed() < ACCOUNT_CACHE_TTL);
        }
        cache.insert(key, (Instant::now(), account.clone()));
        Ok(account)
    }

    /// Drops the cached account, so this replica's next call reads it anew.
    pub fn forget(&self, merchant_id: MerchantId, alias: &str) {
        (self.cache.lock().expect("accounts cache")).remove(&(merchant_id, alias.to_owned()));
    }

    /// Seals every secret under the current key (`paygate merchants
    /// reseal`); how many accounts were rewritten.
    pub async fn reseal(&self) -> sqlx::Result<u64> {
        let rows = sqlx::query!(
            "SELECT merchant_id, alias, secrets FROM merchant_provider_accounts ORDER BY merchant_id, alias"
        )
        .fetch_all(&self.pool)
        .await?;
        let mut resealed = 0;
        for row in rows {
            let merchant_id = MerchantId::new(row.merchant_id);
            let secrets = strings(row.secrets)?;
            if secrets.values().all(|s| self.sealer.is_current(s)) {
                continue;
            }
            let mut again = BTreeMap::new();
            for (name, sealed) in &secrets {
                let column = column(merchant_id, &row.alias, name);
                let opened = (self.sealer.open(sealed, &column))
                    .map_err(|e| unreadable(&format!("secret {name:?}: {e}")))?;
                again.insert(name.clone(), self.sealer.seal(opened.expose(), &column));
            }
            sqlx::query!(
                "UPDATE merchant_provider_accounts SET secrets = $3
                 WHERE merchant_id = $1 AND alias = $2 AND secrets = $4",
                row.merchant_id,
                row.alias,
                serde_json::to_value(&again).expect("strings serialize"),
                serde_json::to_value(&secrets).expect("strings serialize"),
            )
            .execute(&self.pool)
            .await?;
            resealed += 1;
        }
        Ok(resealed)
    }
}

/// A stored JSON object of strings.
fn strings(value: serde_json::Value) -> sqlx::Result<BTreeMap<String, String>> {
    serde_json::from_value(value).map_err(|e| unreadable(&e.to_string()))
}

fn unreadable(what: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("a merchant's provider account is unreadable: {what}").into())
}
