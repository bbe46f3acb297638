//! Wiring settings into a running server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, DEMO_SECRETS, Retention, redacted};
use crate::counters::RedisCounters;
use crate::db::Databases;
use crate::foreground::{Foreground, Pace};
use crate::health::Health;
use crate::http::admin::Operations;
use crate::http::middleware::Hsts;
use crate::http::rate_limit::RateLimiter;
use crate::http::server::{ServerTimeouts, serve, serve_counted};
use crate::http::{AppState, Services, router};
use crate::merchants::{MerchantStore, Merchants, UrlPolicy};
use crate::metrics::Metrics;
use crate::notifier::Notifier;
use crate::outbox::{Broker, OutboxStore, OutboxWake, Producer, Topology};
use crate::payments::PaymentStore;
use crate::payments::create::PaymentsService;
use crate::plugins::Secret;
use crate::plugins::{
    Counters, EngineSettings, HostServices, Loader, PluginDir, PluginEngine, PluginSet,
    RegistrySource,
};
use crate::providers::{CircuitBreaker, ProviderStore};
use crate::tls::TrustedCa;
use crate::webhook_log::WebhookLog;
use crate::webhooks::{WebhookLimits, Webhooks};

/// A built server: databases migrated, plugins loaded, every service built
/// once from the settings, listener bound.
pub struct App {
    listener: TcpListener,
    /// The admin API's listener and token, when a token is set.
    admin: Option<(TcpListener, Secret)>,
    metrics_listener: Option<TcpListener>,
    /// The merchant API's services, as the router hands them to handlers.
    pub services: AppState,
    /// The operators' API's.
    operations: Operations,
    /// A pool per database, for embedders and tests that look underneath.
    pub dbs: Databases,
    plugin_dir: PluginDir,
    producer: Producer,
    notifier: Arc<Notifier>,
    /// Names this app's broker connections (`paygate notifier <instance>`).
    pub instance: String,
    /// Every listener's header, body, idle and request deadlines.
    timeouts: ServerTimeouts,
    /// How long received webhooks are kept, and how often older ones go.
    webhook_retention: (Retention, Duration),
    /// How long a payment stays pending before its provider is asked, and
    /// before it expires.
    pending_for: (Duration, Duration),
    /// The merchant API's requests in flight, which reconciliation gives
    /// way to.
    foreground: Foreground,
}

impl App {
    /// Connects and migrates the databases, connects Redis, loads the plugin
    /// directory, builds each service and binds the listener (port 0 picks
    /// a free one). Plugins that fail to load are logged and listed, not
    /// fatal.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        validate(config)?;
        let sealer = Arc::new(config.secrets_key.sealer(config.demo)?);
        let ca = config.tls.trusted()?;
        let dbs =
            Databases::connect_and_migrate(&config.databases, config.db_pool_size, &ca).await?;
        let redis = redis_connection(&config.redis_url, &ca).await?;
        let registry = match &config.registry_dir {
            Some(dir) => Some(
                RegistrySource::open(dir)
                    .with_context(|| format!("opening PAYGATE_REGISTRY_DIR={}", dir.display()))?,
            ),
            None => None,
        };
        // Once the registry trusts a key, the plugin directory needs its
        // signatures too: nothing unsigned runs, from either source.
        let plugin_dir = match &registry {
            Some(source) => PluginDir::new(&config.plugin_dir)
                .requiring_signatures_of(source.registry().clone()),
            None => PluginDir::new(&config.plugin_dir),
        };
        let metrics = Arc::new(Metrics::default());
        let plugins = Arc::new(load_plugins(config, &plugin_dir, &ca, &metrics).await?);
        if let (Some(source), Some(dir)) = (&registry, &config.registry_dir) {
            serve_registry(source, dir, &plugins).await?;
        }
        refuse_missing_secrets(config, &plugins)?;
        let foreground = Foreground::default();
        // This process's writers of notifications wake its own producer.
        let outbox_wake = Arc::new(tokio::sync::Notify::new());
        let outbox = OutboxStore::new(dbs.outbox.clone(), dbs.outbox_relaxed.clone())
            .waking(OutboxWake::Local(outbox_wake.clone()));
        let merchants = Arc::new(Merchants::new(
            MerchantStore::new(dbs.merchants.clone(), sealer),
            UrlPolicy {
                allow_http: config.demo,
                allow_private_callbacks: config.notifier.allow_private_callbacks,
            },
        ));
        let providers = Arc::new(ProviderStore::new(dbs.providers.clone()));
        let payments = Arc::new(PaymentsService {
            payments: PaymentStore::new(dbs.payments.clone())
                .waking(OutboxWake::Local(outbox_wake.clone()))
                .counting_reads(metrics.payment_reads.clone()),
            merchants: merchants.store.clone(),
            providers: providers.clone(),
            circuit: CircuitBreaker::new(
                redis.clone(),
                &config.redis_prefix,
                config.circuit.clone(),
                metrics.circuit_acquires.clone(),
            ),
            plugins: plugins.clone(),
            request_lease: config.request_lease,
            allow_http_redirects: config.demo,
            payment_expiry: config.payment_expiry,
            metrics: metrics.clone(),
            reconcile_pace: Pace::new(foreground.clone(), config.reconcile_busy_rate),
        });
        let broker = Broker {
            url: config.rabbitmq_url.clone(),
            ca: ca.clone(),
        };
        broker.refuse_untrusted().await?;
        let services = AppState::new(Services {
            webhooks: Arc::new(Webhooks {
                payments: payments.payments.clone(),
                providers,
                plugins: plugins.clone(),
                log: WebhookLog::new(dbs.logs.clone()),
                internal_verifier: config.internal_verifier_plugin.clone(),
                limits: webhook_limits(config, &ca, &metrics).await?,
                trusted_proxies: config.rate_limit.trusted_proxies.clone(),
                metrics: metrics.clone(),
            }),
            health: Arc::new(Health::new(
                dbs.clone(),
                redis,
                broker.url.clone(),
                plugins.clone(),
                metrics.clone(),
            )),
            rate_limiter: Arc::new(RateLimiter {
                plugins: plugins.clone(),
                settings: config.rate_limit.clone(),
            }),
            hsts: Hsts::max_age(config.hsts_max_age),
            merchants,
            payments,
            outbox: outbox.clone(),
            metrics: metrics.clone(),
        });
        let operations = Operations {
            plugins,
            registry,
            outbox: outbox.clone(),
            metrics: metrics.clone(),
            merchants: services.merchants.clone(),
            payments: services.payments.clone(),
            audit: crate::audit::AuditLog::new(dbs.logs.clone()),
            actor: String::new(),
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding PAYGATE_LISTEN={}", config.listen))?;
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding PAYGATE_METRICS_LISTEN={addr}"))?,
            ),
            None => None,
        };
        let admin = match &config.admin_token {
            Some(token) => {
                let admin = TcpListener::bind(config.admin_listen)
                    .await
                    .with_context(|| {
                        format!("binding PAYGATE_ADMIN_LISTEN={}", config.admin_listen)
                    })?;
                Some((admin, token.clone()))
            }
            None => {
                tracing::warn!("PAYGATE_ADMIN_TOKEN is not set: the admin API is off");
                None
            }
        };
        let topology = Topology::new(&config.outbox);
        let instance = format!(
            "pid {} {}",
            std::process::id(),
            &uuid::Uuid::new_v4().to_string()[..8]
        );
        let producer = Producer {
            store: outbox.clone(),
            listen_pool: dbs.payments.clone(),
            broker: broker.clone(),
            instance: instance.clone(),
            topology: topology.clone(),
            settings: config.outbox.clone(),
            metrics: metrics.clone(),
            wake: outbox_wake,
        };
        let notifier = Arc::new(Notifier::new(
            outbox,
            services.merchants.store.clone(),
            broker,
            instance.clone(),
            topology,
            config.notifier.clone(),
            metrics,
        ));
        Ok(Self {
            listener,
            admin,
            metrics_listener,
            services,
            operations,
            dbs,
            plugin_dir,
            producer,
            notifier,
            instance,
            timeouts: config.http.clone(),
            webhook_retention: (
                config.webhooks.log_retention,
                config.webhooks.log_purge_every,
            ),
            pending_for: (config.reconcile_after, config.payment_expiry),
            foreground,
        })
    }

    /// The metrics listener's address, when it is on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The admin API's address, when it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight requests;
    /// the outbox producer and the notifier finish what they hold.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let addr = self.local_addr();
        let plugins = &self.operations.plugins;
        let watcher = self.plugin_dir.watch(plugins.clone(), shutdown.clone())?;
        let follower =
            (self.operations.registry.clone()).map(|r| r.follow(plugins.clone(), shutdown.clone()));
        let producer = tokio::spawn(self.producer.run(shutdown.clone()));
        let notifier = tokio::spawn(self.notifier.run(shutdown.clone()));
        let payments = &self.services.payments;
        let reconciler = tokio::spawn(crate::quota::run(
            payments.merchants.clone(),
            payments.payments.clone(),
            payments.request_lease,
            shutdown.clone(),
        ));
        let (after, expiry) = self.pending_for;
        let schedule = crate::payments::reconcile::Schedule {
            after,
            every: (after.min(expiry) / 4)
                .clamp(Duration::from_millis(100), Duration::from_secs(30)),
        };
        let reconcile = tokio::spawn(crate::payments::reconcile::run(
            payments.clone(),
            schedule,
            shutdown.clone(),
        ));
        let (retention, purge_every) = self.webhook_retention;
        let purger = tokio::spawn(self.services.webhooks.log.clone().purge(
            retention,
            purge_every,
            shutdown.clone(),
        ));
        let operations = self.operations;
        let metrics = self.metrics_listener.map(|listener| {
            let router = crate::http::admin::metrics_router(operations.clone());
            tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "metrics serving");
            tokio::spawn(serve(listener, router, self.timeouts.clone(), shutdown.clone()))
        });
        let admin = self.admin.map(|(listener, token)| {
            let admin = crate::http::admin::router(operations, token);
            tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "admin API serving");
            tokio::spawn(serve(listener, admin, self.timeouts.clone(), shutdown.clone()))
        });
        let app = router(self.services);
        tracing::info!(%addr, "paygate serving");
        let stopping = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                shutdown.cancelled().await;
                tokio::time::Instant::now()
            }
        });
        let drain = self.timeouts.drain;
        serve_counted(
            self.listener,
            app,
            self.timeouts,
            Some(self.foreground),
            shutdown.clone(),
        )
        .await;
        shutdown.cancel();
        let deadline = stopping
            .await
            .unwrap_or_else(|_| tokio::time::Instant::now())
            + drain;
        let finished = tokio::time::timeout_at(deadline, async {
            let _ = watcher.await;
            if let Some(follower) = follower {
                let _ = follower.await;
            }
            if let Some(admin) = admin {
                let _ = admin.await;
            }
            if let Some(metrics) = metrics {
                let _ = metrics.await;
            }
            let _ = producer.await;
            let _ = notifier.await;
            let _ = reconciler.await;
            let _ = reconcile.await;
            let _ = purger.await;
        })
        .await;
        match finished {
            Ok(()) => tracing::info!("paygate stopped"),
            Err(_) => tracing::warn!(
                ?drain,
                "stopped at PAYGATE_SHUTDOWN_TIMEOUT with work in flight: leases and the broker hand it to another host"
            ),
        }
        Ok(())
    }
}

/// A setting `serve` will not run with. `paygate serve` prints it as one
/// line naming the setting and exits with status 2 (API.md, "Running
/// outside the demo").
#[derive(Debug, thiserror::Error)]
#[error("{setting} {reason}")]
pub struct RefusedSetting {
    pub setting: String,
    pub reason: String,
}

fn refused(setting: &str, reason: impl Into<String>) -> anyhow::Error {
    RefusedSetting {
        setting: setting.to_owned(),
        reason: reason.into(),
    }
    .into()
}

/// Every check of `config` that needs no connection: what `serve` refuses
/// before it connects, and `paygate config check` runs alone. A refusal
/// names its setting (exit status 2).
pub fn validate(config: &Config) -> anyhow::Result<()> {
    refuse_unsafe_settings(config)?;
    if let Some(metrics) = config.metrics_listen
        && shares_port(metrics, config.listen)
    {
        return Err(refused(
            "PAYGATE_METRICS_LISTEN",
            "is PAYGATE_LISTEN's address: metrics without a token need a listener of their own",
        ));
    }
    config.secrets_key.sealer(config.demo)?;
    config.tls.trusted()?;
    let urls = &config.databases;
    for (setting, url) in [
        ("PAYGATE_PAYMENTS_DATABASE_URL", &urls.payments),
        ("PAYGATE_MERCHANTS_DATABASE_URL", &urls.merchants),
        ("PAYGATE_PROVIDERS_DATABASE_URL", &urls.providers),
        ("PAYGATE_LOGS_DATABASE_URL", &urls.logs),
    ] {
        let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
        if !postgres || url.parse::<sqlx::postgres::PgConnectOptions>().is_err() {
            return Err(refused(setting, "is not a PostgreSQL URL"));
        }
    }
    if redis::Client::open(config.redis_url.as_str()).is_err() {
        return Err(refused("PAYGATE_REDIS_URL", "is not a Redis URL"));
    }
    if config.rabbitmq_url.parse::<lapin::uri::AMQPUri>().is_err() {
        return Err(refused("PAYGATE_RABBITMQ_URL", "is not an AMQP URL"));
    }
    Ok(())
}

/// Whether two listen addresses would be one socket (port 0 picks a free
/// port, so it never is).
fn shares_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Settings no deployment should run with, refused before anything starts
/// (the flags' parsers refuse empty secrets too; this catches a `Config`
/// built in code): an empty admin token, an Adyen HMAC key that is not hex,
/// and outside `--demo`, a secret that is one of the demo's public values.
fn refuse_unsafe_settings(config: &Config) -> anyhow::Result<()> {
    if config
        .admin_token
        .as_ref()
        .is_some_and(|t| t.expose().trim().is_empty())
    {
        return Err(refused(
            "PAYGATE_ADMIN_TOKEN",
            "is empty: set a token, or unset it to turn the admin API off",
        ));
    }
    // The verifier decodes it; a key that is not hex would refuse every
    // Adyen webhook, so a deployment learns it now, demo or not.
    if (config.adyen_hmac_key.as_ref()).is_some_and(|key| hex::decode(key.expose().trim()).is_err())
    {
        return Err(refused(
            "PAYGATE_ADYEN_HMAC_KEY",
            "is not hex: give the HMAC key as Adyen's Customer Area shows it (two hex digits a byte)",
        ));
    }
    if config.demo {
        tracing::warn!("--demo: unset secrets take the demo's public values; never in production");
        return Ok(());
    }
    for ((named, value), (_, demo_value)) in config.named_secrets().iter().zip(DEMO_SECRETS) {
        let name = &crate::config::setting_of_named_secret(named);
        match value {
            Some(secret) if secret.expose().trim().is_empty() => {
                return Err(refused(name, "is empty"));
            }
            Some(secret) if secret.expose() == demo_value => {
                return Err(refused(
                    name,
                    "is the demo's public value: set your own secret (or run with --demo)",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Outside `--demo`, every secret a loaded plugin's spec names must be set:
/// a verifier without its key would refuse every webhook, an adapter every
/// payment, and a deployment should learn that at start, not from traffic.
fn refuse_missing_secrets(config: &Config, plugins: &PluginSet) -> anyhow::Result<()> {
    if config.demo {
        return Ok(());
    }
    for name in plugins.names() {
        let Some(plugin) = plugins.get(&name) else {
            continue;
        };
        if let Some(reference) = plugin.ctx.missing_secrets.first() {
            if let Some(path) = reference.strip_prefix("file:") {
                let dir = (config.plugin_secrets_dir.as_deref())
                    .map_or_else(String::new, |d| d.display().to_string());
                return Err(refused(
                    "PAYGATE_PLUGIN_SECRETS_DIR",
                    format!("has no file {path} (in {dir}): the plugin `{name}` needs it"),
                ));
            }
            let named = reference.strip_prefix("env:").unwrap_or(reference);
            return Err(refused(
                &crate::config::setting_of_named_secret(named),
                format!("is unset: the plugin `{name}` needs it"),
            ));
        }
    }
    if let Some(key_file) = &config.plugin_cache_key_file
        && key_file.starts_with(&config.plugin_cache_dir)
    {
        anyhow::bail!(
            "PAYGATE_PLUGIN_CACHE_KEY_FILE={} is inside PAYGATE_PLUGIN_CACHE_DIR={}: whoever can \
             write the cache could then forge its entries; keep the key outside it",
            key_file.display(),
            config.plugin_cache_dir.display()
        );
    }
    Ok(())
}

/// A Redis connection that reconnects by itself and never waits long.
pub(crate) async fn redis_connection(
    url: &str,
    ca: &TrustedCa,
) -> anyhow::Result<ConnectionManager> {
    let client = ca
        .redis_client(url)
        .with_context(|| format!("PAYGATE_REDIS_URL={} is not a Redis URL", redacted(url)))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(std::time::Duration::from_secs(2))
        .set_response_timeout(std::time::Duration::from_secs(2))
        .set_number_of_retries(1);
    ConnectionManager::new_with_config(client, config)
        .await
        .with_context(|| format!("connecting to Redis at PAYGATE_REDIS_URL={}", redacted(url)))
}

/// The webhook limits, counted in Redis under keys of their own.
async fn webhook_limits(
    config: &Config,
    ca: &TrustedCa,
    metrics: &Metrics,
) -> anyhow::Result<WebhookLimits> {
    Ok(WebhookLimits::new(
        redis_counters(config, ca, "webhook-limits:", metrics).await?,
        &config.webhooks,
        config.rate_limit.on_redis_down,
    ))
}

/// Counters in Redis whose keys start with the deployment's prefix, then
/// `scope`; their takes are counted in `metrics`.
async fn redis_counters(
    config: &Config,
    ca: &TrustedCa,
    scope: &str,
    metrics: &Metrics,
) -> anyhow::Result<RedisCounters> {
    let prefix = format!("{}{scope}", config.redis_prefix);
    let client = ca
        .redis_client(&config.redis_url)
        .map_err(|e| anyhow::anyhow!("PAYGATE_REDIS_URL is refused: {e}"))?;
    RedisCounters::connect_client(client, &prefix, metrics.counter_takes.clone())
        .await
        .with_context(|| {
            format!(
                "connecting to Redis at PAYGATE_REDIS_URL={}",
                redacted(&config.redis_url)
            )
        })
}

/// Loads the registry's active versions (refusals are logged and listed,
/// not fatal).
async fn serve_registry(
    source: &RegistrySource,
    dir: &std::path::Path,
    plugins: &Arc<PluginSet>,
) -> anyhow::Result<()> {
    let (syncing, set) = (source.clone(), plugins.clone());
    let refused = tokio::task::spawn_blocking(move || syncing.sync(&set))
        .await?
        .with_context(|| format!("reading PAYGATE_REGISTRY_DIR={}", dir.display()))?;
    for failure in refused {
        tracing::error!(error = %failure, "registry plugin not loaded at start");
    }
    Ok(())
}

async fn load_plugins(
    config: &Config,
    dir: &PluginDir,
    ca: &TrustedCa,
    metrics: &Metrics,
) -> anyhow::Result<PluginSet> {
    let engine = PluginEngine::new(&EngineSettings {
        max_concurrent_calls: config.plugin_max_concurrent_calls,
        ..Default::default()
    })
    .map_err(|e| anyhow::anyhow!("{e:#}"))
    .context("creating the WebAssembly engine")?;
    let counters = redis_counters(config, ca, "counters:", metrics).await?;
    // Unset ones are handed as empty: a spec may name them (they are the
    // host's), and a reference that resolves to nothing is how a plugin's
    // missing secret shows (`refuse_missing_secrets`).
    let named_secrets = (config.named_secrets().into_iter())
        .map(|(name, secret)| (name.to_owned(), secret.unwrap_or_else(|| Secret::new(""))))
        .collect();
    let services = Arc::new(HostServices {
        http: crate::plugins::http_client_trusting(ca.roots()),
        counters: Counters::Shared(Arc::new(counters)),
        clock: crate::plugins::Clock::System,
        named_secrets,
        outgoing_headers: crate::telemetry::trace_headers,
        secrets_dir: config.plugin_secrets_dir.clone(),
    });
    let set = PluginSet::new(
        Loader::new(
            Arc::new(engine),
            services,
            Some(config.plugin_cache_dir.clone()),
        )
        .cache_key_file(config.plugin_cache_key_file.clone()),
    );
    std::fs::create_dir_all(&config.plugin_dir).with_context(|| {
        format!(
            "creating PAYGATE_PLUGIN_DIR={}",
            config.plugin_dir.display()
        )
    })?;
    let dir = dir.clone();
    let set = tokio::task::spawn_blocking(move || {
        let failures = dir.load_all(&set);
        (set, failures)
    })
    .await?;
    let failures = set
        .1
        .with_context(|| format!("reading PAYGATE_PLUGIN_DIR={}", config.plugin_dir.display()))?;
    for failure in failures {
        tracing::error!(error = %failure, "plugin not loaded at start");
    }
    Ok(set.0)
}
