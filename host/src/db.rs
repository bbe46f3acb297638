//! The four PostgreSQL databases, one per domain, each with its own pool
//! and migrations. One server holding all four is the default; any may move.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::config::DatabaseUrls;
use crate::tls::TrustedCa;

/// A pool per database.
#[derive(Clone, Debug)]
pub struct Databases {
    pub payments: PgPool,
    /// The payments database again, for the outbox's own statements
    /// (settling attempts, replays, what operators read), each planned for
    /// the table as it is when it runs ([`OUTBOX_PLANNING`]).
    pub outbox: PgPool,
    /// The same with `synchronous_commit = off`: for the outbox's claims,
    /// whose loss in a database crash only means a notification is
    /// published or offered again (never lost: the settling writes go
    /// through `outbox`, durably).
    pub outbox_relaxed: PgPool,
    pub merchants: PgPool,
    pub providers: PgPool,
    pub logs: PgPool,
}

/// The outbox is a queue: it is empty when a deployment starts and holds
/// thousands of rows in flight a minute later, so its statistics are
/// always behind. A prepared statement's generic plan, fixed by its sixth
/// run while the table was still small, joins a batch's ids to a
/// sequential scan of the whole table, and kept doing so on every claim
/// and settlement (docs/benchmarks/notes/reconcile.md, session 20). Its
/// connections plan each run on the table's size at that moment instead.
pub const OUTBOX_PLANNING: (&str, &str) = ("plan_cache_mode", "force_custom_plan");

/// The migrations of each database, embedded at build time.
static PAYMENTS: LazyLock<Migrator> =
    LazyLock::new(|| for_rolling_upgrades(sqlx::migrate!("../migrations/payments")));
static MERCHANTS: LazyLock<Migrator> =
    LazyLock::new(|| for_rolling_upgrades(sqlx::migrate!("../migrations/merchants")));
static PROVIDERS: LazyLock<Migrator> =
    LazyLock::new(|| for_rolling_upgrades(sqlx::migrate!("../migrations/providers")));
static LOGS: LazyLock<Migrator> =
    LazyLock::new(|| for_rolling_upgrades(sqlx::migrate!("../migrations/logs")));

/// `migrator`, made to start against a database that a newer release has
/// already migrated further: during a rolling upgrade, a replica of this
/// release that restarts must not refuse the newer migrations it does not
/// know. Migrations only expand the schema the release before relies on
/// (docs/upgrades.md), so that is safe; the ones it knows are still checked
/// against their checksums.
pub fn for_rolling_upgrades(mut migrator: Migrator) -> Migrator {
    migrator.set_ignore_missing(true);
    migrator
}

impl Databases {
    /// Connects to all four, creating a missing database when the server
    /// allows it, and applies pending migrations.
    /// `ca` is trusted besides the system's roots (`sslmode=verify-full`).
    pub async fn connect_and_migrate(
        urls: &DatabaseUrls,
        pool_size: u32,
        ca: &TrustedCa,
    ) -> anyhow::Result<Self> {
        let pool = |var, url, size| pool_with(var, url, size, &[], ca);
        // The payments and merchants pools each have a `LeanPool` of their
        // size beside them (the hot statements' connections), so each gets
        // half of its share: the server's connections stay what they were
        // before the lean pools (PostgreSQL's default limit is 100, shared
        // by every replica).
        let dbs = Self {
            payments: pool(
                "PAYGATE_PAYMENTS_DATABASE_URL",
                &urls.payments,
                pool_size / 2 + 1,
            )
            .await?,
            // A producer's claims and a notifier's claims and settlements
            // are one statement at a time each; operators' reads and
            // merchants' looks at their notifications share the rest.
            outbox: pool_with(
                "PAYGATE_PAYMENTS_DATABASE_URL",
                &urls.payments,
                pool_size / 4 + 1,
                &[OUTBOX_PLANNING],
                ca,
            )
            .await?,
            outbox_relaxed: pool_with(
                "PAYGATE_PAYMENTS_DATABASE_URL",
                &urls.payments,
                pool_size / 8 + 2,
                &[OUTBOX_PLANNING, ("synchronous_commit", "off")],
                ca,
            )
            .await?,
            merchants: pool(
                "PAYGATE_MERCHANTS_DATABASE_URL",
                &urls.merchants,
                pool_size / 4 + 1,
            )
            .await?,
            providers: pool("PAYGATE_PROVIDERS_DATABASE_URL", &urls.providers, 4).await?,
            logs: pool("PAYGATE_LOGS_DATABASE_URL", &urls.logs, pool_size / 4 + 1).await?,
        };
        for (name, migrator, db) in [
            ("payments", &*PAYMENTS, &dbs.payments),
            ("merchants", &*MERCHANTS, &dbs.merchants),
            ("providers", &*PROVIDERS, &dbs.providers),
            ("logs", &*LOGS, &dbs.logs),
        ] {
            migrator
                .run(db)
                .await
                .with_context(|| format!("migrating the {name} database"))?;
        }
        Ok(dbs)
    }
}

/// Connects to one database, named by the setting `var` in errors,
/// creating it when the server allows, and applies `migrator`: for a
/// companion with its own database and migrations, such as the demo shop.
pub async fn connect_and_migrate(
    var: &str,
    url: &str,
    pool_size: u32,
    migrator: &Migrator,
) -> anyhow::Result<PgPool> {
    let db = pool_with(var, url, pool_size, &[], &TrustedCa::default()).await?;
    migrator
        .run(&db)
        .await
        .with_context(|| format!("migrating the database of {var}"))?;
    Ok(db)
}

/// One connection to a database that must exist, for a command that
/// only reads it (nothing is created or migrated).
pub async fn connect_existing(var: &str, url: &str, ca: &TrustedCa) -> anyhow::Result<PgPool> {
    pool_of(var, connect_options(var, url, &[], ca)?, 1).await
}

fn connect_options(
    var: &str,
    url: &str,
    settings: &[(&str, &str)],
    ca: &TrustedCa,
) -> anyhow::Result<PgConnectOptions> {
    let options: PgConnectOptions = url
        .parse()
        .with_context(|| format!("{var} is not a PostgreSQL URL"))?;
    let options = plain_on_this_machine(url, options, std::env::var_os("PGSSLMODE").is_some());
    Ok(ca
        .postgres(url, options)
        .disable_statement_logging()
        .options(settings.iter().copied()))
}

/// A server on this machine (loopback or a Unix socket), reached with a
/// URL that names no `sslmode` (nor `PGSSLMODE`), is spoken to in the clear
/// when it allows that, and over TLS only when it insists (`allow`), where
/// libpq's default (`prefer`) would encrypt whenever the server offers it.
/// Unchecked TLS over loopback protects nothing (`prefer` verifies no
/// certificate, and the bytes never leave the machine) and cost a quarter of
/// the host's CPU on the read path (docs/benchmarks/notes/api.md). A URL
/// that asks for a mode gets exactly that one.
fn plain_on_this_machine(url: &str, options: PgConnectOptions, env_mode: bool) -> PgConnectOptions {
    let host = options
        .get_host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let local = options.get_socket().is_some()
        || host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if local && !env_mode && !url.contains("sslmode=") {
        options.ssl_mode(PgSslMode::Allow)
    } else {
        options
    }
}

/// A pooled connection idle longer than this is pinged before it is
/// handed out.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(2);

async fn pool_of(var: &str, options: PgConnectOptions, size: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(size.max(1))
        .acquire_timeout(Duration::from_secs(5))
        // sqlx pings every connection it hands out: one more round trip,
        // with both processes woken for it, on every query. A busy pool's
        // connections were just used; only one idle for a while (across a
        // database restart, say) is checked first. One that broke in use
        // fails its query, which answers 503 and closes it.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_WHEN_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .with_context(|| format!("connecting to {var}"))
}

async fn pool_with(
    var: &str,
    url: &str,
    size: u32,
    settings: &[(&str, &str)],
    ca: &TrustedCa,
) -> anyhow::Result<PgPool> {
    let options = connect_options(var, url, settings, ca)?;
    create_if_missing(&options)
        .await
        .with_context(|| format!("creating the database of {var}"))?;
    pool_of(var, options, size).await
}

/// Whether `e` is the database being away or busy for a moment: it cannot
/// be reached, the pool timed out, the server is shutting down or refuses
/// connections, or the transaction lost a serialization or deadlock race.
/// A retry may succeed, so the API answers 503 with `Retry-After`. Every
/// other error (a bug, a constraint the code did not expect, a row it
/// cannot decode) is not: retrying would fail the same way.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 40001 serialization failure; 40P01
            // deadlock; 53: insufficient resources (too many connections,
            // out of memory or disk); 57P01–57P03: shutdown, crash
            // recovery, cannot connect now.
            code.starts_with("08")
                || code.starts_with("53")
                || matches!(
                    code.as_ref(),
                    "40001" | "40P01" | "57P01" | "57P02" | "57P03"
                )
        }),
        _ => false,
    }
}

/// Runs a compensating write again, with backoff, until it succeeds or
/// `within` has passed: for one that failed because the database was away
/// for a moment (a restart, a failover), such as giving back a quota token.
/// The caller's request has already been answered; giving up is logged.
pub fn retry_in_background<F, Fut>(what: &'static str, within: Duration, mut write: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), sqlx::Error>> + Send,
{
    tokio::spawn(async move {
        let started = Instant::now();
        let mut backoff = crate::outbox::Backoff::new();
        loop {
            tokio::time::sleep(backoff.next_delay()).await;
            match write().await {
                Ok(()) => {
                    tracing::info!(
                        what,
                        after_ms = started.elapsed().as_millis() as u64,
                        "compensating write done on a retry"
                    );
                    return;
                }
                Err(e) if started.elapsed() < within => {
                    tracing::debug!(what, error = %e, "compensating write failed; retrying");
                }
                Err(e) => {
                    tracing::error!(what, error = %e, "compensating write abandoned");
                    return;
                }
            }
        }
    });
}

/// Creates the URL's database through the server's `postgres` database.
async fn create_if_missing(options: &PgConnectOptions) -> anyhow::Result<()> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    if sqlx::PgConnection::connect_with(options).await.is_ok() {
        return Ok(());
    }
    let mut admin = sqlx::PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS "exists!""#,
        name,
    )
    .fetch_one(&mut admin)
    .await?;
    if !exists {
        // Identifiers cannot be bound, so this statement is built, not
        // checked; quote it. A concurrent creator may win the race.
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        if let Err(e) = sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut admin)
            .await
        {
            // 42P04: exists; 23505: another creator won between check and create.
            let raced = e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "42P04" || c == "23505");
            if !raced {
                return Err(e.into());
            }
        }
        tracing::info!(database = %name, "created database");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_server_on_this_machine_without_a_chosen_mode_is_spoken_to_in_the_clear() {
        let mode = |url: &str, env_mode: bool| {
            let options: PgConnectOptions = url.parse().unwrap();
            format!(
                "{:?}",
                plain_on_this_machine(url, options, env_mode).get_ssl_mode()
            )
        };
        for local in [
            "postgres://u@127.0.0.1:5432/db",
            "postgres://u@localhost/db",
            "postgres://u@[::1]:5432/db",
            "postgres://u@%2Fvar%2Frun%2Fpostgresql/db",
        ] {
            assert_eq!(mode(local, false), "Allow", "{local}");
            assert_ne!(mode(local, true), "Allow", "{local} with PGSSLMODE");
        }
        let chosen = "postgres://u@127.0.0.1/db?sslmode=require";
        assert_eq!(mode(chosen, false), "Require");
        let verified = "postgres://u@localhost/db?sslmode=verify-full";
        assert_eq!(mode(verified, false), "VerifyFull");
        assert_eq!(mode("postgres://u@db.internal:5432/db", false), "Prefer");
        assert_eq!(mode("postgres://u@10.0.0.5/db", false), "Prefer");
    }
}

/// Connections for the hottest statements, handed back to their pool
/// without the round trip sqlx's own pool makes on every release.
///
/// sqlx 0.8 pings each connection as it returns to its pool (a `Sync` and
/// its `ReadyForQuery`, in a task spawned for it), so every query costs
/// two round trips and wakes PostgreSQL twice. Here a connection goes back
/// only when its user says the statement finished ([`LeanConnection::release`]);
/// one whose statement failed or was cancelled is closed instead, so a
/// connection in an unknown state is never handed out again. A statement's
/// trailing messages (its `ReadyForQuery`) are read by the next statement
/// on the connection, from the socket's buffer, as sqlx does for any
/// statement. A connection idle for more than [`PING_WHEN_IDLE_FOR`] is
/// pinged before it is handed out, as [`pool_of`] does.
///
/// It borrows its settings (address, TLS, size, timeout) from the sqlx
/// pool beside it, and refuses once that pool is closed. It opens its
/// connections when first asked for them.
#[derive(Clone, Debug)]
pub struct LeanPool(std::sync::Arc<LeanInner>);

#[derive(Debug)]
struct LeanInner {
    beside: PgPool,
    idle: std::sync::Mutex<Vec<(sqlx::PgConnection, Instant)>>,
    permits: tokio::sync::Semaphore,
}

/// A connection of a [`LeanPool`]; dropped without [`Self::release`], it
/// is closed.
#[derive(Debug)]
pub struct LeanConnection<'a> {
    pool: &'a LeanInner,
    conn: Option<sqlx::PgConnection>,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl LeanPool {
    /// A pool of as many connections as `pool` may open, to the same
    /// database with the same options.
    pub fn beside(pool: &PgPool) -> Self {
        let size = pool.options().get_max_connections() as usize;
        Self(std::sync::Arc::new(LeanInner {
            beside: pool.clone(),
            idle: std::sync::Mutex::new(Vec::with_capacity(size)),
            permits: tokio::sync::Semaphore::new(size),
        }))
    }

    /// A connection: the one used last, or a new one. Waits for a free one
    /// as long as the sqlx pool beside it would (`PoolTimedOut` then).
    pub async fn acquire(&self) -> Result<LeanConnection<'_>, sqlx::Error> {
        let inner = &*self.0;
        if inner.beside.is_closed() {
            return Err(sqlx::Error::PoolClosed);
        }
        // A free permit is taken without a timer: most statements find one.
        let permit = match inner.permits.try_acquire() {
            Ok(permit) => permit,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(sqlx::Error::PoolClosed),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                let wait = inner.beside.options().get_acquire_timeout();
                tokio::time::timeout(wait, inner.permits.acquire())
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)?
                    .map_err(|_| sqlx::Error::PoolClosed)?
            }
        };
        let kept = inner.lock().pop();
        let conn = match kept {
            Some((mut conn, since)) if since.elapsed() > PING_WHEN_IDLE_FOR => {
                match conn.ping().await {
                    Ok(()) => conn,
                    Err(_) => inner.connect().await?,
                }
            }
            Some((conn, _)) => conn,
            None => inner.connect().await?,
        };
        Ok(LeanConnection {
            pool: inner,
            conn: Some(conn),
            _permit: permit,
        })
    }
}

impl LeanInner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(sqlx::PgConnection, Instant)>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn connect(&self) -> Result<sqlx::PgConnection, sqlx::Error> {
        sqlx::PgConnection::connect_with(&*self.beside.connect_options()).await
    }
}

impl LeanConnection<'_> {
    /// The connection, to run a statement on.
    pub fn get(&mut self) -> &mut sqlx::PgConnection {
        self.conn
            .as_mut()
            .expect("a lean connection is held until released")
    }

    /// Gives the connection back for the next statement: call it once the
    /// statement succeeded.
    pub fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.lock().push((conn, Instant::now()));
        }
    }
}

impl Drop for LeanConnection<'_> {
    fn drop(&mut self) {
        // Not released: its statement failed or was cancelled midway.
        if let Some(conn) = self.conn.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), conn.close()).await;
            });
        }
    }
}
