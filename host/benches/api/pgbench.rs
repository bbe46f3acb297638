//! The ceiling: pgbench running the SQL of one create, of one show and of
//! one refund, against a database of its own, in the same run.

use super::*;

pub(crate) async fn admin() -> Option<sqlx::PgConnection> {
    match sqlx::PgConnection::connect(&pg_url("postgres")).await {
        Ok(c) => Some(c),
        Err(e) => {
            println!("Cannot reach PostgreSQL at {}: {e}", pg_host());
            None
        }
    }
}

pub(crate) async fn drop_databases(names: &[&str]) {
    let Some(mut admin) = admin().await else {
        return;
    };
    for name in names {
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("dropping {name}: {e}"));
    }
}

/// Version and the settings that decide commit cost.
pub(crate) async fn postgres_info() -> String {
    let Some(mut admin) = admin().await else {
        return "unreachable".into();
    };
    let mut parts = Vec::new();
    for (label, sql) in [
        ("", "SELECT split_part(version(), ' on ', 1)"),
        ("synchronous_commit", "SHOW synchronous_commit"),
        ("wal_sync_method", "SHOW wal_sync_method"),
        ("shared_buffers", "SHOW shared_buffers"),
        ("max_connections", "SHOW max_connections"),
    ] {
        let value: String = sqlx::query_scalar(sql)
            .fetch_one(&mut admin)
            .await
            .unwrap_or_else(|e| format!("? ({e})"));
        parts.push(if label.is_empty() {
            value
        } else {
            format!("{label}={value}")
        });
    }
    parts.join(", ")
}

/// One pgbench run.
pub(crate) struct Baseline {
    /// The API path whose SQL it runs.
    pub(crate) of: Kind,
    pub(crate) label: String,
    pub(crate) command: String,
    pub(crate) clients: usize,
    pub(crate) transactions: u64,
    pub(crate) failed: u64,
    pub(crate) tps: f64,
    pub(crate) latency_avg_ms: f64,
    pub(crate) cpu: CpuShare,
    /// PostgreSQL's work per transaction (one run of the script).
    pub(crate) pg: Option<PgPerRequest>,
    pub(crate) at: Bracket,
}

/// Whether `program --version` runs; prints why not.
pub(crate) async fn available(program: &str) -> bool {
    match tokio::process::Command::new(program)
        .arg("--version")
        .output()
        .await
    {
        Ok(o) if o.status.success() => true,
        _ => {
            println!(
                "`{program}` is not installed (it comes with the PostgreSQL client package, `postgresql-client` on Debian): the pgbench ceiling was not measured."
            );
            false
        }
    }
}

/// The SQL one `POST /api/v1/payments` commits, statement for statement,
/// taken from the checked queries (host/src/merchants/store.rs
/// `take_token`, host/src/payments/store.rs `insert` and
/// `record_provider_outcome`), for a request without an idempotency key, as
/// the bench sends them: three statements, each its own transaction.
pub(crate) fn create_script(merchant_id: i64, subscription_id: i64) -> String {
    let (m, s) = (merchant_id.to_string(), subscription_id.to_string());
    let (m, s) = (m.as_str(), s.as_str());
    let statements = [
        "\\set order_id random(1, 9000000000000000000)".to_owned(),
        checked_sql("FROM take_quota_token($1, $2, $3)", &[s, m, ":order_id"]) + ";",
        checked_sql(
            "WITH p AS ( INSERT INTO payments (merchant_id, order_id, subscription_id, alias",
            &[
                m,
                ":order_id",
                s,
                "'sandbox'",
                "1",
                "10.00",
                "'EUR'",
                "NULL::text",
                "NULL",
                "NULL",
                "'{}'",
                "86400",
            ],
        ) + " \\gset",
        checked_sql(
            "UPDATE payments SET provider_reference = $2, payment_url = $3",
            &[
                ":id",
                "'pl_bench'",
                "'http://sandbox.invalid/pay/pl_bench'",
                "'PAYMENT_PENDING'",
                "'provider session opened'",
                "'{\"plugin\": \"sandbox\", \"reference\": \"pl_bench\"}'",
                "NULL::bigint",
                "NULL::text",
                "NULL::smallint",
                "NULL::jsonb",
            ],
        ) + ";",
    ];
    statements.join("\n") + "\n"
}

/// The SELECT of `GET …/show` (host/src/payments/store.rs `get`), taken
/// from the checked query.
pub(crate) fn show_script(merchant_id: i64) -> String {
    let m = merchant_id.to_string();
    let select = checked_sql(
        "expires_at FROM payments WHERE id = $1 AND merchant_id = $2",
        &[":id", &m],
    );
    format!("\\set id random(1, :max_id)\n{select};\n")
}

/// The checked query (`.sqlx/`: what sqlx verified against the migrations,
/// and what the host runs) whose text contains `fragment`, for a pgbench
/// script: on one line, `$n` replaced by `args[n - 1]` (SQL, pgbench
/// variables allowed), and sqlx's column overrides (`AS "id: RefundId"`,
/// `AS "sum!"`) reduced to the plain names `\gset` can use. Panics unless
/// exactly one query matches, so a changed query cannot go unnoticed.
pub(crate) fn checked_sql(fragment: &str, args: &[&str]) -> String {
    // Comments go first: on one line, a `--` would hide the rest of the query.
    let one_line = |text: &str| {
        without_comments(text)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let fragment = one_line(fragment);
    let dir = repo_root().join(".sqlx");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let query: Value = serde_json::from_str(&text).unwrap();
        let query = one_line(query["query"].as_str().unwrap_or_default());
        if query.contains(&fragment) && !found.contains(&query) {
            found.push(query);
        }
    }
    assert!(
        found.len() == 1,
        "{} checked queries contain {fragment:?}",
        found.len()
    );
    let sql = plain_columns(&found[0]);
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql.as_str();
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits: String = rest[at + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let n: usize = digits.parse().expect("a numbered parameter");
        out.push_str(
            args.get(n - 1)
                .unwrap_or_else(|| panic!("no argument ${n} for {fragment:?}")),
        );
        rest = &rest[at + 1 + digits.len()..];
    }
    out.push_str(rest);
    out
}

/// `sql` without its `--` comments (those outside quotes and identifiers).
fn without_comments(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote = None;
    for line in sql.lines() {
        let mut chars = line.char_indices().peekable();
        let mut end = line.len();
        while let Some((at, c)) = chars.next() {
            match (quote, c) {
                (None, '\'' | '"') => quote = Some(c),
                (Some(q), _) if q == c => quote = None,
                (None, '-') if chars.peek().is_some_and(|&(_, n)| n == '-') => {
                    end = at;
                    break;
                }
                _ => {}
            }
        }
        out.push_str(&line[..end]);
        out.push('\n');
    }
    out
}

/// `AS "name: Type"`, `AS "name!"` and `AS "name?"` as `AS name`.
fn plain_columns(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find("AS \"") {
        out.push_str(&rest[..at + 3]);
        let quoted = &rest[at + 4..];
        let end = quoted.find('"').expect("a closed quote");
        let name: String = quoted[..end]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.push_str(&name);
        rest = &quoted[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The SQL one `POST /api/v1/payments/{id}/refunds` runs (host/src/payments/
/// refunds.rs), taken from the checked queries: the idempotency lookup, the
/// payment's alias and currency, the reservation (one statement: payment row
/// locked, the refund's part of the price taken, the refund and its timeline
/// row inserted) and the provider's `succeeded` recorded (one statement:
/// refund, payment's totals, timeline, notification in the outbox). `:pid`
/// is a finished payment between `:min_id` and `:max_id`; each refund has
/// its own key.
pub(crate) fn refund_script(merchant_id: i64) -> String {
    let m = merchant_id.to_string();
    let m = m.as_str();
    let statements = [
        "\\set pid random(:min_id, :max_id)".to_owned(),
        "\\set key random(1, 9000000000000000000)".to_owned(),
        checked_sql(
            "FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE (r.merchant_id = $1",
            &[m, ":key::text", "NULL::bigint"],
        ) + ";",
        checked_sql(
            "SELECT alias, currency FROM payments WHERE id = $1 AND merchant_id = $2",
            &[":pid", m],
        ) + ";",
        checked_sql(
            "WITH payment AS MATERIALIZED",
            &[
                ":pid",
                m,
                REFUND_PRICE,
                "'requested_by_customer'",
                ":key::text",
                "'\\x00'::bytea",
            ],
        ) + " \\gset",
        checked_sql(
            "WITH refund AS ( UPDATE refunds SET status = $2",
            &[
                ":refund_id",
                "'REFUND_SUCCEEDED'",
                "'rf_bench'",
                "NULL",
                "'EVENT_REFUND_SUCCEEDED'",
                "'provider rf_bench'",
                "NULL",
                "NULL",
                "gen_random_uuid()",
                "'refund.succeeded'",
                "true",
            ],
        ) + ";",
    ];
    statements.join("\n") + "\n"
}

/// When a ceiling ran, against the API phase it bounds: right before it and
/// right after it, so a machine whose speed drifts over the run (a shared
/// one) moves the ceiling's mean with the phase it is set against.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bracket {
    Before,
    After,
    /// Once, after every API phase (the simple-protocol create and the
    /// refund ceilings, which no target is measured against).
    Alone,
}

impl Bracket {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Bracket::Before => "before",
            Bracket::After => "after",
            Bracket::Alone => "alone",
        }
    }
}

/// The pgbench database (the host's schema from the migration files, one
/// merchant and its subscription) and the scripts run against it.
pub(crate) struct Ceilings {
    db: sqlx::PgConnection,
    scripts: tempfile::TempDir,
    clients: usize,
    refund_clients: usize,
    refund_payments: usize,
    seconds: u64,
}

impl Ceilings {
    /// Creates the database and writes the scripts; `None` (and no ceiling)
    /// without pgbench and psql.
    pub(crate) async fn prepare(settings: &Settings) -> Option<Self> {
        if !available("pgbench").await || !available("psql").await {
            return None;
        }
        drop_databases(&[PGBENCH_DATABASE]).await;
        let mut admin = admin().await?;
        sqlx::query(&format!("CREATE DATABASE \"{PGBENCH_DATABASE}\""))
            .execute(&mut admin)
            .await
            .expect("creating the pgbench database");
        drop(admin);

        // The same schema, applied with psql from the migration files.
        for dir in ["migrations/payments", "migrations/merchants"] {
            let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join(dir))
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "sql"))
                .collect();
            files.sort();
            for file in files {
                let out = tokio::process::Command::new("psql")
                    .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
                    .args(["-h", &pg_host(), "-p", PG_PORT, "-U", PG_USER])
                    .args(["-d", PGBENCH_DATABASE, "-f"])
                    .arg(&file)
                    .output()
                    .await
                    .expect("running psql");
                assert!(
                    out.status.success(),
                    "psql -f {}: {}",
                    file.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let mut db = sqlx::PgConnection::connect(&pg_url(PGBENCH_DATABASE))
            .await
            .expect("connecting to the pgbench database");
        let merchant_id: i64 = sqlx::query_scalar(
            "INSERT INTO merchants (name, webhook_secret) VALUES ('pgbench', 'whsec_bench') RETURNING id",
        )
        .fetch_one(&mut db)
        .await
        .unwrap();
        let subscription_id: i64 = sqlx::query_scalar(
            "INSERT INTO subscriptions (merchant_id, token_limit) VALUES ($1, 9000000000000000000) RETURNING id",
        )
        .bind(merchant_id)
        .fetch_one(&mut db)
        .await
        .unwrap();
        let scripts = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| {
            std::fs::write(scripts.path().join(name), text).unwrap();
        };
        write("create.sql", create_script(merchant_id, subscription_id));
        write("show.sql", show_script(merchant_id));
        write("refund.sql", refund_script(merchant_id));
        Some(Self {
            db,
            scripts,
            clients: settings.clients,
            refund_clients: settings.refund_clients,
            refund_payments: settings.refund_payments,
            seconds: settings.seconds.round().max(1.0) as u64,
        })
    }

    /// The create's SQL, with `-M prepared` as sqlx sends it, or in the
    /// simple protocol.
    pub(crate) async fn create(&self, prepared: bool, at: Bracket) -> Option<Baseline> {
        let (mode, what) = if prepared {
            (Some("prepared"), "`-M prepared`, as sqlx")
        } else {
            (None, "simple protocol")
        };
        let label = format!("pgbench ceiling: the SQL one create commits ({what})");
        self.run(
            Kind::Create,
            at,
            self.clients,
            mode,
            &[],
            "create.sql",
            label,
        )
        .await
    }

    /// The show's SELECT over the payments the create ceilings wrote, or
    /// `None` when they wrote none.
    pub(crate) async fn show(&mut self, at: Bracket) -> Option<Baseline> {
        let max_id: Option<i64> = sqlx::query_scalar("SELECT max(id) FROM payments")
            .fetch_one(&mut self.db)
            .await
            .unwrap();
        let define = format!("max_id={}", max_id?);
        let label = "pgbench ceiling: the SELECT of one show (`-M prepared`)".to_owned();
        self.run(
            Kind::Show,
            at,
            self.clients,
            Some("prepared"),
            &["-D", &define],
            "show.sql",
            label,
        )
        .await
    }

    /// The refund's SQL over as many finished payments as the API's refund
    /// phase has (the first payments the create ceilings wrote, finished
    /// here); `None` when the bench refunds nothing.
    pub(crate) async fn refund(&mut self) -> Option<Baseline> {
        if self.refund_payments == 0 {
            return None;
        }
        let (min_id, max_id): (Option<i64>, Option<i64>) = sqlx::query_as(
            "WITH f AS (UPDATE payments SET status = 'PAYMENT_FINISHED', provider_reference = 'pl_bench'
                        WHERE id IN (SELECT id FROM payments ORDER BY id LIMIT $1) RETURNING id)
             SELECT min(id), max(id) FROM f",
        )
        .bind(self.refund_payments as i64)
        .fetch_one(&mut self.db)
        .await
        .unwrap();
        let (min, max) = (format!("min_id={}", min_id?), format!("max_id={}", max_id?));
        let label = "pgbench ceiling: the SQL one refund runs (`-M prepared`)".to_owned();
        self.run(
            Kind::Refund,
            Bracket::Alone,
            self.refund_clients,
            Some("prepared"),
            &["-D", &min, "-D", &max],
            "refund.sql",
            label,
        )
        .await
    }

    pub(crate) async fn finish(self) {
        drop(self.db);
        drop_databases(&[PGBENCH_DATABASE]).await;
    }

    /// One pgbench run of `script` (a file of [`Ceilings::prepare`]),
    /// labelled with when it ran against its phase.
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        of: Kind,
        at: Bracket,
        clients: usize,
        mode: Option<&str>,
        extra: &[&str],
        script: &str,
        label: String,
    ) -> Option<Baseline> {
        let label = match at {
            Bracket::Alone => label,
            _ => format!("{label}, {} the API's phase", at.name()),
        };
        progress(&label);
        let script = self.scripts.path().join(script);
        let mut args: Vec<String> = vec![
            "-n".into(),
            "-c".into(),
            clients.to_string(),
            "-j".into(),
            "2".into(),
            "-T".into(),
            self.seconds.to_string(),
        ];
        if let Some(mode) = mode {
            args.extend(["-M".into(), mode.into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let command = format!(
            "pgbench {} -f {} {PGBENCH_DATABASE}",
            args.join(" "),
            script.file_name().unwrap().to_string_lossy()
        );
        args.extend(["-f".into(), script.display().to_string()]);
        args.extend([
            "-h".into(),
            pg_host(),
            "-p".into(),
            PG_PORT.into(),
            "-U".into(),
            PG_USER.into(),
            PGBENCH_DATABASE.into(),
        ]);
        let before = CpuTicks::sample();
        let pg_before = PgActivity::sample().await;
        // Sessions as the host opens them to a server on this machine
        // (`db::plain_on_this_machine`): in the clear unless the server insists,
        // or as `PGSSLMODE` says, which the host follows too.
        let mode = std::env::var("PGSSLMODE").unwrap_or_else(|_| "allow".into());
        let out = tokio::process::Command::new("pgbench")
            .args(&args)
            .env("PGSSLMODE", mode)
            .output()
            .await
            .expect("running pgbench");
        // pgbench's backends outlive it by a moment: until the postmaster has
        // reaped them, their CPU is in neither a live process nor its children
        // times (it read as "other processes"), and their last statistics are
        // unreported. The window ends when pgbench did; only PostgreSQL's
        // figure is read again once they are reaped (what it spent while
        // waiting for them is a few milliseconds of an idle server's).
        let mut after = CpuTicks::sample();
        backends_gone(PGBENCH_DATABASE).await;
        after.postgres = CpuTicks::sample().postgres;
        let cpu = after.since(&before);
        let pg_after = PgActivity::sample().await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            println!(
                "`{command}` failed ({}):\n```\n{}{}```",
                out.status,
                stdout,
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        let find = |prefix: &str| -> Option<f64> {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        };
        let transactions = find("number of transactions actually processed:").unwrap_or(f64::NAN);
        Some(Baseline {
            of,
            label,
            command,
            clients,
            transactions: transactions as u64,
            failed: find("number of failed transactions:").unwrap_or(0.0) as u64,
            tps: find("tps = ").unwrap_or(f64::NAN),
            latency_avg_ms: find("latency average = ").unwrap_or(f64::NAN),
            cpu,
            pg: pg_before
                .zip(pg_after)
                .map(|(before, after)| after.per_request(&before, transactions)),
            at,
        })
    }
}

/// The ceiling a phase of `kind` is set against: the `-M prepared` runs of
/// its SQL that bracket it, their mean rate (or the one that ran).
pub(crate) fn bracketed_ceiling(baselines: &[Baseline], kind: Kind) -> Option<f64> {
    let runs: Vec<f64> = baselines
        .iter()
        .filter(|b| b.of == kind && b.at != Bracket::Alone && b.tps.is_finite())
        .map(|b| b.tps)
        .collect();
    (!runs.is_empty()).then(|| runs.iter().sum::<f64>() / runs.len() as f64)
}

/// Waits (at most 2 s) until no backend serves `database`, then a moment
/// for the postmaster to reap them.
async fn backends_gone(database: &str) {
    let Some(mut admin) = admin().await else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let left: Result<i64, _> =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
                .bind(database)
                .fetch_one(&mut admin)
                .await;
        if !matches!(left, Ok(n) if n > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
}

// ---------------------------------------------------------------------------
// The report.
