//! Whether paygate can serve: every backing service and the plugin
//! runtime, each checked within a bound, all at once.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::db::Databases;
use crate::metrics::Metrics;
use crate::plugins::PluginSet;

/// What `/health` checks, built once at start.
pub struct Health {
    pub dbs: Databases,
    pub redis: ConnectionManager,
    /// The broker's URL; only reachability is checked here (the outbox,
    /// which talks AMQP to it, reports its own state).
    pub rabbitmq_url: String,
    pub plugins: Arc<PluginSet>,
    pub metrics: Arc<Metrics>,
    /// The last checks and when they ran; the lock makes callers who come
    /// while checks run wait for those instead of starting their own.
    pub last: Mutex<Option<(Instant, Checks)>>,
}

/// Each check's name and result, the error saying what failed.
pub type Checks = [(&'static str, Result<(), String>); 4];

/// How long checks' answers are reused: `/health` is unauthenticated, and
/// a flood of it must not become a flood on every backend (security
/// review, finding 14).
pub const CHECKS_FRESH_FOR: Duration = Duration::from_secs(1);

impl Health {
    pub fn new(
        dbs: Databases,
        redis: ConnectionManager,
        rabbitmq_url: String,
        plugins: Arc<PluginSet>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            dbs,
            redis,
            rabbitmq_url,
            plugins,
            metrics,
            last: Mutex::new(None),
        }
    }

    /// The checks of at most [`CHECKS_FRESH_FOR`] ago, run now if older:
    /// however many ask at once, the backends are asked once.
    pub async fn check_shared(&self) -> Checks {
        let mut last = self.last.lock().await;
        if let Some((at, checks)) = &*last
            && at.elapsed() < CHECKS_FRESH_FOR
        {
            return checks.clone();
        }
        let checks = self.check().await;
        self.metrics.health_checks.inc();
        *last = Some((Instant::now(), checks.clone()));
        checks
    }

    /// Checks PostgreSQL (every database), Redis, RabbitMQ and the plugins.
    pub async fn check(&self) -> Checks {
        // Concurrently and each within a bound: a server that is down makes a
        // pool wait out its whole acquire timeout, four times over if in turn.
        let postgres = async {
            let pools = [
                ("payments", &self.dbs.payments),
                ("merchants", &self.dbs.merchants),
                ("providers", &self.dbs.providers),
                ("logs", &self.dbs.logs),
            ];
            let pings = pools.map(|(name, pool)| {
                bounded(async move {
                    // A ping reads no table: a checked query would check nothing.
                    sqlx::query("SELECT 1")
                        .execute(pool)
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("{name} database: {e}"))
                })
            });
            futures_util::future::join_all(pings)
                .await
                .into_iter()
                .collect::<Result<Vec<()>, String>>()
                .map(|_| ())
        };
        let redis = bounded(async {
            let mut conn = self.redis.clone();
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        let rabbitmq = reachable(&self.rabbitmq_url);
        let (postgres, redis, rabbitmq) = tokio::join!(postgres, redis, rabbitmq);
        let plugins = if self.plugins.list().iter().any(|p| p.version.is_some()) {
            Ok(())
        } else {
            Err("no plugins loaded".to_owned())
        };
        [
            ("postgres", postgres),
            ("redis", redis),
            ("rabbitmq", rabbitmq),
            ("plugins", plugins),
        ]
    }
}

/// How long one check may take before it counts as failing.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

async fn bounded(check: impl Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {CHECK_TIMEOUT:?}")))
}

/// Whether the broker in an `amqp://` URL accepts a TCP connection within a
/// second. (The outbox, which talks AMQP to it, reports its own state.)
async fn reachable(url: &str) -> Result<(), String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let addr = match (host_port.rsplit_once(':'), url.starts_with("amqps://")) {
        (Some(_), _) => host_port.to_owned(),
        (None, true) => format!("{host_port}:5671"),
        (None, false) => format!("{host_port}:5672"),
    };
    match tokio::time::timeout(
        std::time::Duration::from_secs(1),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{addr}: {e}")),
        Err(_) => Err(format!("{addr}: no answer within 1 s")),
    }
}
