//! Every setting of `paygate serve`, from flags or environment variables,
//! with defaults that run on a developer machine with no variable set.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::plugins::Secret;

/// Settings of the server.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Address the merchant API listens on.
    #[arg(long, env = "PAYGATE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Address of the admin API (plugins, activation, rollback, /metrics).
    #[arg(long, env = "PAYGATE_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,

    /// Address of a listener serving only `GET /metrics`, without the
    /// admin token, for a Prometheus scraper inside the cluster; unset,
    /// `/metrics` is the admin API's alone. Never the public address.
    #[arg(long, env = "PAYGATE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Bearer token of the admin API; without one the admin API is off.
    /// An empty one is refused.
    #[arg(long, env = "PAYGATE_ADMIN_TOKEN", hide_env_values = true, value_parser = non_empty_secret)]
    pub admin_token: Option<Secret>,

    #[command(flatten)]
    pub databases: DatabaseUrls,

    #[command(flatten)]
    pub tls: crate::tls::TlsSettings,

    /// Connections to the payments database (the other databases' are sized
    /// from it): half for the statements of creates, shows and refunds
    /// (`db::LeanPool`), half for the rest.
    #[arg(long, env = "PAYGATE_DB_POOL_SIZE", default_value_t = 32)]
    pub db_pool_size: u32,

    /// Redis: rate-limit counters and circuit breakers shared by every replica.
    #[arg(
        long,
        env = "PAYGATE_REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: String,

    /// Prefix of every Redis key this deployment writes.
    #[arg(long, env = "PAYGATE_REDIS_PREFIX", default_value = "paygate:")]
    pub redis_prefix: String,

    /// RabbitMQ, for payment events (used by the outbox).
    #[arg(
        long,
        env = "PAYGATE_RABBITMQ_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true
    )]
    pub rabbitmq_url: String,

    /// Run with the demo's public secrets: each secret setting left unset
    /// takes the demo's value. For trying paygate on a laptop only: without
    /// it, `serve` refuses to start when a secret a plugin or the host needs
    /// is unset or is one of the demo's (`paygate-demo serve` sets it).
    #[arg(long, env = "PAYGATE_DEMO", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub demo: bool,

    #[command(flatten)]
    pub secrets_key: SecretsKey,

    /// Shared secret of the internal webhook scheme (`x-internal-signature`).
    #[arg(long, env = "PAYGATE_INTERNAL_WEBHOOK_SECRET", hide_env_values = true, value_parser = non_empty_secret)]
    pub internal_webhook_secret: Option<Secret>,

    /// Stripe API secret key, handed to the `stripe` plugin.
    #[arg(long, env = "PAYGATE_STRIPE_SECRET_KEY", hide_env_values = true, value_parser = non_empty_secret)]
    pub stripe_secret_key: Option<Secret>,

    /// Stripe webhook endpoint secret, handed to the `stripe-webhook` plugin.
    #[arg(long, env = "PAYGATE_STRIPE_WEBHOOK_SECRET", hide_env_values = true, value_parser = non_empty_secret)]
    pub stripe_webhook_secret: Option<Secret>,

    /// Adyen API key (`X-API-Key`), handed to the `adyen` plugin.
    #[arg(long, env = "PAYGATE_ADYEN_API_KEY", hide_env_values = true, value_parser = non_empty_secret)]
    pub adyen_api_key: Option<Secret>,

    /// Adyen's HMAC key for standard webhooks, in hex as the Customer Area
    /// shows it, handed to the `adyen-webhook` plugin. Checked to be hex at
    /// start (not by the parser, whose error would print the value).
    #[arg(long, env = "PAYGATE_ADYEN_HMAC_KEY", hide_env_values = true, value_parser = non_empty_secret)]
    pub adyen_hmac_key: Option<Secret>,

    /// Directory of plugins (`<name>.wasm` + `<name>.toml`), watched for changes.
    #[arg(long, env = "PAYGATE_PLUGIN_DIR", default_value = ".paygate/plugins")]
    pub plugin_dir: PathBuf,

    /// A plugin registry (`paygate plugins ...`) whose active versions are
    /// served and followed; none by default.
    #[arg(long, env = "PAYGATE_REGISTRY_DIR")]
    pub registry_dir: Option<PathBuf>,

    /// Where plugin specs' `file:PATH` secrets are read from, each time a
    /// plugin is loaded (a mounted secret volume); unset refuses them.
    #[arg(long, env = "PAYGATE_PLUGIN_SECRETS_DIR")]
    pub plugin_secrets_dir: Option<PathBuf>,

    /// Where compiled plugin code is cached, keyed by digest and engine settings.
    #[arg(
        long,
        env = "PAYGATE_PLUGIN_CACHE_DIR",
        default_value = ".paygate/cache"
    )]
    pub plugin_cache_dir: PathBuf,

    /// The key that authenticates cached compiled code (made at first use,
    /// mode 0600); by default `<plugin cache dir>.key`, beside the cache
    /// directory. Never put it inside the cache directory.
    #[arg(long, env = "PAYGATE_PLUGIN_CACHE_KEY_FILE")]
    pub plugin_cache_key_file: Option<PathBuf>,

    /// Plugin calls that may run at once.
    #[arg(
        long,
        env = "PAYGATE_PLUGIN_MAX_CONCURRENT_CALLS",
        default_value_t = 1000
    )]
    pub plugin_max_concurrent_calls: u32,

    #[command(flatten)]
    pub rate_limit: RateLimitSettings,

    /// The verifier plugin of the internal webhook route (`x-internal-signature`).
    #[arg(
        long,
        env = "PAYGATE_INTERNAL_VERIFIER_PLUGIN",
        default_value = "internal-webhook"
    )]
    pub internal_verifier_plugin: String,

    #[command(flatten)]
    pub webhooks: WebhookSettings,

    #[command(flatten)]
    pub circuit: CircuitSettings,

    #[command(flatten)]
    pub outbox: OutboxSettings,

    #[command(flatten)]
    pub notifier: NotifierSettings,

    #[command(flatten)]
    pub http: crate::http::server::ServerTimeouts,

    /// `Strict-Transport-Security` max-age in seconds; 0 sends no HSTS header.
    #[arg(long, env = "PAYGATE_HSTS_MAX_AGE", default_value_t = 0)]
    pub hsts_max_age: u64,

    /// How long an unfinished payment creation holds its idempotency key and
    /// its order's quota token. After that a retry takes over, taking the
    /// first request's process to have died, and the quota reconciler gives
    /// back tokens this old whose payment never came.
    #[arg(long, env = "PAYGATE_REQUEST_LEASE", default_value = "60s", value_parser = parse_duration)]
    pub request_lease: Duration,

    /// How long a payment stays pending before its provider is asked about
    /// it (the adapter's `payment-status`); then again after doubling
    /// delays, at most an hour apart, while it stays pending.
    #[arg(long, env = "PAYGATE_RECONCILE_AFTER", default_value = "10m", value_parser = parse_window)]
    pub reconcile_after: Duration,

    /// Questions a second each host's reconciliation asks while the host
    /// is serving merchants' requests (as fast as it can while it serves
    /// none), so that a large backlog does not slow live payments; 0: no
    /// limit.
    #[arg(long, env = "PAYGATE_RECONCILE_BUSY_RATE", default_value_t = 200)]
    pub reconcile_busy_rate: u32,

    /// How long a payment may stay pending: then it expires
    /// (`PAYMENT_EXPIRED`, notified `payment.expired`) and its quota token
    /// is given back.
    #[arg(long, env = "PAYGATE_PAYMENT_EXPIRY", default_value = "24h", value_parser = parse_window)]
    pub payment_expiry: Duration,
}

/// The secrets the host hands plugins by name (a spec's `env:NAME`), with
/// the demo's values. These are public (they are in this repository), so
/// they are used only with `--demo` and refused without it.
pub const DEMO_SECRETS: [(&str, &str); 5] = [
    ("INTERNAL_WEBHOOK_SECRET", "demo-internal-webhook-secret"),
    ("STRIPE_SECRET_KEY", "sk_test_demo"),
    ("STRIPE_WEBHOOK_SECRET", "whsec_demo"),
    ("ADYEN_API_KEY", "adyen_test_demo_key"),
    (
        "ADYEN_HMAC_KEY",
        "706179676174652D64656D6F2D616479656E2D686D61632D6B65792D70756221",
    ),
];

/// The setting a spec's `env:NAME` is given by: `PAYGATE_NAME` for the
/// host's named secrets ([`DEMO_SECRETS`]), else `NAME` itself (a
/// `PAYGATE_PLUGIN_SECRET_*`).
pub fn setting_of_named_secret(name: &str) -> String {
    if DEMO_SECRETS.iter().any(|(n, _)| *n == name) {
        format!("PAYGATE_{name}")
    } else {
        name.to_owned()
    }
}

impl Config {
    /// Each secret of [`DEMO_SECRETS`] by name, as set; with `--demo`, an
    /// unset one is the demo's value.
    pub fn named_secrets(&self) -> [(&'static str, Option<Secret>); DEMO_SECRETS.len()] {
        let set = [
            &self.internal_webhook_secret,
            &self.stripe_secret_key,
            &self.stripe_webhook_secret,
            &self.adyen_api_key,
            &self.adyen_hmac_key,
        ];
        std::array::from_fn(|i| {
            let (name, demo_value) = DEMO_SECRETS[i];
            let value = set[i]
                .clone()
                .or_else(|| self.demo.then(|| Secret::new(demo_value)));
            (name, value)
        })
    }

    /// One of [`Config::named_secrets`].
    pub fn named_secret(&self, name: &str) -> Option<Secret> {
        self.named_secrets()
            .into_iter()
            .find_map(|(n, value)| (n == name).then_some(value)?)
    }
}

/// The key merchants' secrets are sealed with in the database
/// (`crate::sealing`), and the keys it replaced.
#[derive(Clone, Debug, clap::Args)]
pub struct SecretsKey {
    /// 32 random bytes in base64 (`openssl rand -base64 32`) that seal
    /// merchants' webhook and request-signing secrets at rest.
    #[arg(long = "secrets-key", env = "PAYGATE_SECRETS_KEY", hide_env_values = true, value_parser = non_empty_secret)]
    pub current: Option<Secret>,
    /// Keys `PAYGATE_SECRETS_KEY` replaced (comma-separated): still opened
    /// until `paygate merchants reseal` has sealed everything anew.
    #[arg(
        long = "secrets-key-previous",
        env = "PAYGATE_SECRETS_KEY_PREVIOUS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub previous: Vec<Secret>,
}

impl SecretsKey {
    /// The sealer of these keys; with `demo`, the demo's public key when
    /// none is set. Unset otherwise, it is an error naming the setting.
    pub fn sealer(&self, demo: bool) -> Result<crate::sealing::Sealer, crate::RefusedSetting> {
        let refused = |reason: String| crate::RefusedSetting {
            setting: "PAYGATE_SECRETS_KEY".into(),
            reason,
        };
        let current = match (&self.current, demo) {
            (Some(key), _) => key.clone(),
            (None, true) => Secret::new(crate::sealing::DEMO_SECRETS_KEY),
            (None, false) => {
                return Err(refused(
                    "is unset: merchants' secrets are sealed with it (32 random bytes in base64: `openssl rand -base64 32`)".into(),
                ));
            }
        };
        if !demo && current.expose() == crate::sealing::DEMO_SECRETS_KEY {
            return Err(refused(
                "is the demo's public value: set your own key (or run with --demo)".into(),
            ));
        }
        crate::sealing::Sealer::new(&current, &self.previous)
            .map_err(|e| refused(format!("is refused: {e}")))
    }
}

/// The payments database on a developer machine.
pub const DEFAULT_PAYMENTS_DATABASE_URL: &str =
    "postgres://postgres@127.0.0.1:5432/paygate_payments";

/// One URL per database.
#[derive(Clone, Debug, clap::Args)]
pub struct DatabaseUrls {
    #[arg(
        long = "payments-database-url",
        env = "PAYGATE_PAYMENTS_DATABASE_URL",
        default_value = DEFAULT_PAYMENTS_DATABASE_URL,
        hide_env_values = true
    )]
    pub payments: String,
    #[arg(
        long = "merchants-database-url",
        env = "PAYGATE_MERCHANTS_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/paygate_merchants",
        hide_env_values = true
    )]
    pub merchants: String,
    #[arg(
        long = "providers-database-url",
        env = "PAYGATE_PROVIDERS_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/paygate_providers",
        hide_env_values = true
    )]
    pub providers: String,
    #[arg(
        long = "logs-database-url",
        env = "PAYGATE_LOGS_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/paygate_logs",
        hide_env_values = true
    )]
    pub logs: String,
}

/// The rate-limit policy run in front of the merchant routes.
#[derive(Clone, Debug, clap::Args)]
pub struct RateLimitSettings {
    /// The rate-limit policy plugin run before authentication; empty for none.
    #[arg(
        id = "rate_limit_plugin",
        long = "rate-limit-plugin",
        value_name = "PLUGIN",
        env = "PAYGATE_RATE_LIMIT_PLUGIN",
        default_value = "rate-limit"
    )]
    pub plugin: String,

    /// If the policy's counters (Redis) cannot answer: let requests through
    /// unlimited (`open`) or refuse them with 503 `service_unavailable` (`closed`).
    // Ids are the flags' names: a bare `on_redis_down` would be the
    // circuit's too, and clap would take the two for one argument.
    #[arg(
        id = "rate_limit_on_redis_down",
        long = "rate-limit-on-redis-down",
        value_name = "POLICY",
        env = "PAYGATE_RATE_LIMIT_ON_REDIS_DOWN",
        value_enum,
        default_value_t = RedisDownPolicy::Open
    )]
    pub on_redis_down: RedisDownPolicy,

    /// If the policy plugin fails (traps, runs out of a limit, is not
    /// loaded): let requests through unlimited (`open`) or refuse them with
    /// 503 `service_unavailable` (`closed`). A policy refused for want of a
    /// free sandbox is always 503: an attacker can cause that.
    #[arg(
        id = "rate_limit_on_policy_error",
        long = "rate-limit-on-policy-error",
        value_name = "POLICY",
        env = "PAYGATE_RATE_LIMIT_ON_POLICY_ERROR",
        value_enum,
        default_value_t = RedisDownPolicy::Open
    )]
    pub on_policy_error: RedisDownPolicy,

    /// Peers whose `X-Forwarded-For` is trusted for the client IP (comma-separated).
    #[arg(long, env = "PAYGATE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpAddr>,
}

/// The provider webhook routes: how often each may be called (counted in
/// Redis before the verifier runs, so the limits hold across replicas) and
/// how long the logs database keeps what they received.
#[derive(Clone, Debug, clap::Args)]
pub struct WebhookSettings {
    /// Webhooks accepted per alias in each window, whatever their sender
    /// (the internal route counts as one alias); 0 for no limit.
    #[arg(
        long = "webhook-rate-per-alias",
        env = "PAYGATE_WEBHOOK_RATE_PER_ALIAS",
        default_value_t = 60_000
    )]
    pub per_alias: u32,
    /// Webhooks accepted per client IP in each window, all routes together
    /// (the IP as `PAYGATE_TRUSTED_PROXIES` makes it); 0 for no limit.
    #[arg(
        long = "webhook-rate-per-ip",
        env = "PAYGATE_WEBHOOK_RATE_PER_IP",
        default_value_t = 6000
    )]
    pub per_ip: u32,
    /// The fixed window both webhook limits count in.
    #[arg(long = "webhook-rate-window", env = "PAYGATE_WEBHOOK_RATE_WINDOW", default_value = "60s", value_parser = parse_window)]
    pub window: Duration,
    /// How long received webhooks stay in the logs database (`30d`, `12h`
    /// ...); `off` or `0` keeps them forever.
    #[arg(long = "webhook-log-retention", env = "PAYGATE_WEBHOOK_LOG_RETENTION", default_value = "30d", value_parser = parse_retention)]
    pub log_retention: Retention,
    /// How often older webhooks are purged from the logs database.
    #[arg(long = "webhook-log-purge-every", env = "PAYGATE_WEBHOOK_LOG_PURGE_EVERY", default_value = "10m", value_parser = parse_window)]
    pub log_purge_every: Duration,
}

/// How long a log keeps its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Rows are never purged.
    Forever,
    /// Rows older than this are purged.
    For(Duration),
}

/// `off` or `0` for [`Retention::Forever`], else a duration like `30d`.
pub fn parse_retention(s: &str) -> Result<Retention, String> {
    match s.trim() {
        "off" => Ok(Retention::Forever),
        other => match parse_duration(other)? {
            Duration::ZERO => Ok(Retention::Forever),
            keep => Ok(Retention::For(keep)),
        },
    }
}

/// A duration that is not zero, which a window or a period must not be.
pub fn parse_window(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        Duration::ZERO => Err("must be longer than zero".into()),
        d => Ok(d),
    }
}

/// The per-alias circuit breaker kept in Redis.
#[derive(Clone, Debug, clap::Args)]
pub struct CircuitSettings {
    /// Consecutive provider failures that open the circuit.
    #[arg(
        long = "circuit-failure-threshold",
        env = "PAYGATE_CIRCUIT_FAILURE_THRESHOLD",
        default_value_t = 5
    )]
    pub failure_threshold: u32,
    /// How long an open circuit refuses calls before letting one probe through.
    #[arg(long = "circuit-cooldown", env = "PAYGATE_CIRCUIT_COOLDOWN", default_value = "30s", value_parser = parse_duration)]
    pub cooldown: Duration,
    /// If Redis cannot say the circuit's state: call the provider as if it
    /// were closed (`open`) or refuse with 503 `service_unavailable` (`closed`).
    #[arg(
        long = "circuit-on-redis-down",
        env = "PAYGATE_CIRCUIT_ON_REDIS_DOWN",
        value_enum,
        default_value_t = RedisDownPolicy::Open
    )]
    pub on_redis_down: RedisDownPolicy,
}

/// What a safeguard does when it cannot decide: while its Redis cannot
/// answer, or (rate limiting) while its policy plugin fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RedisDownPolicy {
    /// Fail open: the request goes ahead without the safeguard.
    Open,
    /// Fail closed: the request is refused with 503 `service_unavailable`.
    Closed,
}

/// The outbox producer and the RabbitMQ topology it publishes to.
#[derive(Clone, Debug, clap::Args)]
pub struct OutboxSettings {
    /// Prefix of the exchange and queue names (`payments`, `payments.merchant`, ...),
    /// so deployments can share a broker.
    #[arg(
        long = "amqp-namespace",
        env = "PAYGATE_AMQP_NAMESPACE",
        default_value = ""
    )]
    pub namespace: String,
    /// Delete the queues after they have been unused this long (none by default).
    #[arg(long = "amqp-queue-expires", env = "PAYGATE_AMQP_QUEUE_EXPIRES", value_parser = parse_duration)]
    pub queue_expires: Option<Duration>,
    /// How often the producer looks for due rows when no NOTIFY woke it.
    #[arg(long = "outbox-poll-interval", env = "PAYGATE_OUTBOX_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// How long a claimed or published row may stay unsettled before it is
    /// published again (a crash or a lost message).
    #[arg(long = "outbox-lease", env = "PAYGATE_OUTBOX_LEASE", default_value = "60s", value_parser = parse_duration)]
    pub lease: Duration,
    /// Rows claimed and published per round.
    #[arg(
        long = "outbox-batch-size",
        env = "PAYGATE_OUTBOX_BATCH_SIZE",
        default_value_t = 500
    )]
    pub batch_size: i64,
}

/// Delivery of signed notifications to merchants' callback URLs.
#[derive(Clone, Debug, clap::Args)]
pub struct NotifierSettings {
    /// Delays before each retry; attempts = 1 + their number.
    #[arg(
        long = "notifier-retry-schedule",
        env = "PAYGATE_NOTIFIER_RETRY_SCHEDULE",
        default_value = "5s,5m,30m,2h,5h,10h",
        value_delimiter = ',',
        value_parser = parse_duration
    )]
    pub retry_schedule: Vec<Duration>,
    /// How long a merchant's endpoint may take to answer.
    #[arg(long = "notifier-timeout", env = "PAYGATE_NOTIFIER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Deliveries in flight at once (the RabbitMQ prefetch is four times it).
    #[arg(
        long = "notifier-concurrency",
        env = "PAYGATE_NOTIFIER_CONCURRENCY",
        default_value_t = 64
    )]
    pub concurrency: u16,
    /// Deliveries one merchant may have in flight at once (default: a
    /// quarter of `NOTIFIER_CONCURRENCY`), so one endpoint that hangs
    /// cannot hold every slot; its other notifications wait their turn.
    #[arg(
        long = "notifier-per-merchant-concurrency",
        env = "PAYGATE_NOTIFIER_PER_MERCHANT_CONCURRENCY"
    )]
    pub per_merchant_concurrency: Option<u16>,
    /// Allow callback URLs on loopback and private addresses (off: they are
    /// refused, against server-side request forgery).
    #[arg(long = "allow-private-callbacks", env = "PAYGATE_ALLOW_PRIVATE_CALLBACKS", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_private_callbacks: bool,
}

impl NotifierSettings {
    /// Deliveries one merchant may have in flight at once.
    pub fn merchant_share(&self) -> u16 {
        (self.per_merchant_concurrency)
            .unwrap_or(self.concurrency / 4)
            .clamp(1, self.concurrency.max(1))
    }
}

/// `url` with its password, if any, replaced by `***`: what an error or a
/// log line may say of a service's URL (security review, finding 18).
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        // Unparsable: it may still hold a secret, so show none of it.
        Err(_) => "[unparsable URL]".to_owned(),
    }
}

/// A secret that is not empty or blank.
pub fn non_empty_secret(s: &str) -> Result<Secret, String> {
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(Secret::new(s))
}

/// Parses a duration as `humantime` reads it (`250ms`, `30s`, `5m`, `1h 30m`,
/// `2days`); a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| format!("{s:?} is too long a duration"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 500ms, 30s or 1h 30m ({e})"))
}

/// The secrets key of [`Config::for_tests`] (base64 of 32 bytes).
pub const TEST_SECRETS_KEY: &str = "dGVzdC1vbmx5LXNlY3JldHMta2V5LW5vdC1mb3ItdSE=";
/// The Adyen API key of [`Config::for_tests`].
pub const TEST_ADYEN_API_KEY: &str = "adyen_test_key_for_tests";
/// The Adyen HMAC key of [`Config::for_tests`] (hex of 32 bytes).
pub const TEST_ADYEN_HMAC_KEY: &str =
    "706179676174652D74657374732D616479656E2D686D61632D6B65792D333262";

impl Config {
    /// Settings for tests: port 0, the given databases and directories.
    pub fn for_tests(
        databases: DatabaseUrls,
        plugin_dir: PathBuf,
        plugin_cache_dir: PathBuf,
        redis_prefix: String,
    ) -> Self {
        Self {
            listen: "127.0.0.1:0".parse().expect("static address"),
            admin_listen: "127.0.0.1:0".parse().expect("static address"),
            admin_token: Some(Secret::new("test-admin-token")),
            metrics_listen: None,
            databases,
            tls: Default::default(),
            db_pool_size: 8,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_prefix,
            rabbitmq_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            demo: false,
            secrets_key: SecretsKey {
                current: Some(Secret::new(TEST_SECRETS_KEY)),
                previous: Vec::new(),
            },
            internal_webhook_secret: Some(Secret::new("test-internal-secret")),
            stripe_secret_key: Some(Secret::new("sk_test_123")),
            stripe_webhook_secret: Some(Secret::new("whsec_test")),
            adyen_api_key: Some(Secret::new(TEST_ADYEN_API_KEY)),
            adyen_hmac_key: Some(Secret::new(TEST_ADYEN_HMAC_KEY)),
            plugin_dir,
            registry_dir: None,
            plugin_secrets_dir: None,
            plugin_cache_dir,
            plugin_cache_key_file: None,
            plugin_max_concurrent_calls: 200,
            rate_limit: RateLimitSettings {
                plugin: "rate-limit".into(),
                on_redis_down: RedisDownPolicy::Open,
                on_policy_error: RedisDownPolicy::Open,
                trusted_proxies: Vec::new(),
            },
            internal_verifier_plugin: "internal-webhook".into(),
            // As in production, so a test that meets a webhook limit set it.
            webhooks: WebhookSettings {
                per_alias: 60_000,
                per_ip: 6000,
                window: Duration::from_secs(60),
                log_retention: Retention::For(Duration::from_secs(30 * 86_400)),
                log_purge_every: Duration::from_secs(600),
            },
            circuit: CircuitSettings {
                failure_threshold: 3,
                cooldown: Duration::from_millis(500),
                on_redis_down: RedisDownPolicy::Open,
            },
            outbox: OutboxSettings {
                namespace: format!("paygate_test_{}.", std::process::id()),
                queue_expires: Some(Duration::from_secs(600)),
                poll_interval: Duration::from_millis(200),
                lease: Duration::from_secs(5),
                batch_size: 500,
            },
            notifier: NotifierSettings {
                retry_schedule: vec![Duration::from_millis(50), Duration::from_millis(100)],
                timeout: Duration::from_secs(2),
                concurrency: 16,
                per_merchant_concurrency: None,
                allow_private_callbacks: true,
            },
            http: crate::http::server::ServerTimeouts::default(),
            hsts_max_age: 0,
            request_lease: Duration::from_secs(60),
            reconcile_after: Duration::from_secs(600),
            reconcile_busy_rate: 200,
            payment_expiry: Duration::from_secs(86_400),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Serve {
        #[command(flatten)]
        config: Config,
    }

    fn serve(args: &[&str]) -> Result<Config, clap::Error> {
        use clap::Parser;
        Serve::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .map(|s| s.config)
    }

    #[test]
    fn redis_down_policies_are_open_unless_set_closed() {
        let defaults = serve(&[]).unwrap();
        assert_eq!(defaults.rate_limit.on_redis_down, RedisDownPolicy::Open);
        assert_eq!(defaults.circuit.on_redis_down, RedisDownPolicy::Open);
        let closed = serve(&[
            "--rate-limit-on-redis-down",
            "closed",
            "--circuit-on-redis-down",
            "closed",
        ])
        .unwrap();
        assert_eq!(closed.rate_limit.on_redis_down, RedisDownPolicy::Closed);
        assert_eq!(closed.circuit.on_redis_down, RedisDownPolicy::Closed);
        let refused = serve(&["--circuit-on-redis-down", "maybe"]).err().unwrap();
        assert!(refused.to_string().contains("open, closed"), "{refused}");
    }

    #[test]
    fn redacted_urls_keep_no_password() {
        assert_eq!(
            redacted("redis://:hunter2@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        assert_eq!(
            redacted("amqp://guest:hunter2@mq:5672/%2f"),
            "amqp://guest:***@mq:5672/%2f"
        );
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert!(!redacted("redis://:hunter2@[bad").contains("hunter2"));
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2days"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn webhook_settings_have_defaults_and_retention_can_be_off() {
        let defaults = serve(&[]).unwrap().webhooks;
        assert_eq!((defaults.per_alias, defaults.per_ip), (60_000, 6000));
        assert_eq!(defaults.window, Duration::from_secs(60));
        let month = Duration::from_secs(30 * 86_400);
        assert_eq!(defaults.log_retention, Retention::For(month));
        for off in ["off", "0", "0d"] {
            let kept = serve(&["--webhook-log-retention", off]).unwrap();
            assert_eq!(kept.webhooks.log_retention, Retention::Forever, "{off}");
        }
        let zero = serve(&["--webhook-rate-window", "0s"]).err().unwrap();
        assert!(zero.to_string().contains("webhook-rate-window"), "{zero}");
    }

    /// Security review, finding 3: an empty token matched an empty
    /// `Authorization: Bearer `, leaving the admin API open.
    #[test]
    fn an_empty_admin_token_is_refused() {
        for empty in ["", "   "] {
            let error = serve(&["--admin-token", empty]).map(|_| ()).unwrap_err();
            assert!(error.to_string().contains("admin-token"), "{error}");
        }
        let set = serve(&["--admin-token", "a-long-enough-token"]).unwrap();
        assert_eq!(set.admin_token.unwrap().expose(), "a-long-enough-token");
        assert!(
            serve(&[]).unwrap().admin_token.is_none(),
            "unset: the admin API is off"
        );
    }
}
