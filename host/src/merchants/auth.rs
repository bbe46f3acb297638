//! Who is calling: an API key resolved to its merchant and scope, cached
//! for a few seconds so the hot path rarely touches the database.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::keys::{ApiKey, KeyHash};
use super::settings::UrlPolicy;
use super::store::MerchantStore;
use crate::ids::MerchantId;
use crate::plugins::Secret;

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Write,
    Read,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Write => "write",
            Scope::Read => "read",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "write" => Some(Scope::Write),
            "read" => Some(Scope::Read),
            _ => None,
        }
    }
}

/// An authenticated merchant.
#[derive(Clone, Debug)]
pub struct Merchant {
    pub id: MerchantId,
    pub scope: Scope,
    pub default_currency: String,
    /// Set when the merchant requires signed writes.
    pub request_signing_secret: Option<Secret>,
    /// Where buyers go back when a payment names no URL of its own.
    pub default_return_url: Option<crate::payments::RedirectUrl>,
    pub default_cancel_url: Option<crate::payments::RedirectUrl>,
}

/// How long a resolved key is trusted; revocations take effect within it.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(4);

/// The merchants as the API meets them: the store, and the key → merchant
/// cache that keeps authentication off the database. Built once at start.
pub struct Merchants {
    pub store: MerchantStore,
    /// What URLs merchants may set.
    pub url_policy: UrlPolicy,
    /// Key hash → merchant, for [`AUTH_CACHE_TTL`]. Unknown keys are not
    /// cached, so a key works the moment it is created.
    keys: Mutex<HashMap<KeyHash, (Instant, Merchant)>>,
}

impl Merchants {
    pub fn new(store: MerchantStore, url_policy: UrlPolicy) -> Self {
        Self {
            store,
            url_policy,
            keys: Mutex::default(),
        }
    }

    /// Drops the merchant's cached keys, so a change to its keys or
    /// settings holds on this replica at once (on the others within
    /// [`AUTH_CACHE_TTL`]).
    pub fn forget(&self, merchant_id: MerchantId) {
        self.lock().retain(|_, (_, m)| m.id != merchant_id);
    }

    /// The merchant of API key `key`; `None` when it is unknown or revoked.
    pub async fn by_key(&self, key: &str) -> Result<Option<Merchant>, sqlx::Error> {
        let hash = ApiKey(key).hash();
        let now = Instant::now();
        if let Some((at, merchant)) = self.lock().get(&hash)
            && now.duration_since(*at) < AUTH_CACHE_TTL
        {
            return Ok(Some(merchant.clone()));
        }
        let found = self.store.merchant_for_key(&hash).await?;
        let mut entries = self.lock();
        if entries.len() > 100_000 {
            entries.retain(|_, (at, _)| now.duration_since(*at) < AUTH_CACHE_TTL);
        }
        match &found {
            Some(m) => entries.insert(hash, (now, m.clone())),
            None => entries.remove(&hash),
        };
        Ok(found)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<KeyHash, (Instant, Merchant)>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}
