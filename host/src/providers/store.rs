//! SQL of the providers database, checked at compile time against its
//! migrations (`scripts/sqlx-prepare`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::PgPool;

/// An alias and the plugins that serve it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AliasBinding {
    pub alias: String,
    pub provider_plugin: String,
    pub verifier_plugin: Option<String>,
    pub available: bool,
}

/// How long a looked-up binding is reused.
const CACHE_TTL: Duration = Duration::from_secs(2);

/// The providers database, with a short cache for the request path.
pub struct ProviderStore {
    pool: PgPool,
    cache: Mutex<Cache>,
}

/// Alias → (when looked up, its binding or none).
#[derive(Default)]
struct Cache {
    entries: HashMap<String, (Instant, Option<AliasBinding>)>,
    /// When expired entries were last dropped: at most once a TTL, so a
    /// full cache does not cost every miss a scan.
    purged: Option<Instant>,
}

impl ProviderStore {
    /// The most aliases the cache holds. Webhook routes look up aliases
    /// anyone may make up: a miss is cached only while there is room (after
    /// expired entries are dropped), so made-up aliases cost a query each,
    /// never memory. 10,000 entries of at most a 64-byte alias is well
    /// under a mebibyte.
    pub const CACHE_CAP: usize = 10_000;

    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            cache: Mutex::default(),
        }
    }

    /// Creates or replaces an alias binding.
    pub async fn set(&self, binding: &AliasBinding) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "INSERT INTO provider_aliases (alias, provider_plugin, verifier_plugin, available) VALUES ($1, $2, $3, $4)
             ON CONFLICT (alias) DO UPDATE SET provider_plugin = $2, verifier_plugin = $3, available = $4, updated_at = now()",
            binding.alias,
            binding.provider_plugin,
            binding.verifier_plugin,
            binding.available,
        )
        .execute(&self.pool)
        .await?;
        self.lock().entries.remove(&binding.alias);
        Ok(())
    }

    /// Deletes `alias`'s binding; answers whether there was one. Hosts
    /// that cached it see it gone within the cache's lifetime.
    pub async fn remove(&self, alias: &str) -> Result<bool, sqlx::Error> {
        let deleted = sqlx::query!("DELETE FROM provider_aliases WHERE alias = $1", alias)
            .execute(&self.pool)
            .await?;
        self.lock().entries.remove(alias);
        Ok(deleted.rows_affected() > 0)
    }

    /// Every binding, by alias.
    pub async fn list(&self) -> Result<Vec<AliasBinding>, sqlx::Error> {
        sqlx::query_as!(
            AliasBinding,
            "SELECT alias, provider_plugin, verifier_plugin, available FROM provider_aliases ORDER BY alias",
        )
        .fetch_all(&self.pool)
        .await
    }

    /// The binding of `alias`, cached for a moment.
    pub async fn get(&self, alias: &str) -> Result<Option<AliasBinding>, sqlx::Error> {
        if let Some((at, binding)) = self.lock().entries.get(alias)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(binding.clone());
        }
        let binding = sqlx::query_as!(
            AliasBinding,
            "SELECT alias, provider_plugin, verifier_plugin, available FROM provider_aliases WHERE alias = $1",
            alias,
        )
        .fetch_optional(&self.pool)
        .await?;
        let mut cache = self.lock();
        let now = Instant::now();
        if cache.entries.len() >= Self::CACHE_CAP
            && cache
                .purged
                .is_none_or(|at| now.duration_since(at) >= CACHE_TTL)
        {
            cache
                .entries
                .retain(|_, (at, _)| now.duration_since(*at) < CACHE_TTL);
            cache.purged = Some(now);
        }
        if cache.entries.len() < Self::CACHE_CAP || binding.is_some() {
            cache
                .entries
                .insert(alias.to_owned(), (now, binding.clone()));
        }
        Ok(binding)
    }

    /// How many aliases the cache holds now.
    pub fn cached(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}
