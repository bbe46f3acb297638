//! The tables printed and the JSON written for scripts/report.

use super::*;

pub(crate) struct Report<'a> {
    pub(crate) settings: &'a Settings,
    pub(crate) started_at: chrono::DateTime<chrono::Utc>,
    pub(crate) server_info: String,
    pub(crate) load_at_start: String,
    pub(crate) load_at_end: String,
    pub(crate) phases: &'a [Phase],
    pub(crate) sweep: &'a [Phase],
    pub(crate) show_sweep: &'a [Phase],
    pub(crate) baselines: &'a [Baseline],
    pub(crate) rss_peak_kib: u64,
    /// Notifications the merchant's endpoint received over the run.
    pub(crate) notifications_received: usize,
    /// How PostgreSQL was given CPUs of its own, if it was.
    pub(crate) pinned: Option<&'a pin::Pinned>,
}

pub(crate) fn phase_label(p: &Phase, rate_limit: bool) -> &'static str {
    match (p.kind, rate_limit) {
        (Kind::Create, true) => {
            "`POST /api/v1/payments` (rate-limit + sandbox adapter plugins, sandbox provider over loopback)"
        }
        (Kind::Create, false) => {
            "`POST /api/v1/payments` (**no rate-limit policy**; sandbox adapter plugin, sandbox provider over loopback)"
        }
        (Kind::Show, true) => "`GET /api/v1/payments/{id}/show` (rate-limit plugin, read key)",
        (Kind::Show, false) => {
            "`GET /api/v1/payments/{id}/show` (**no rate-limit policy**, read key)"
        }
        (Kind::Refund, true) => {
            "`POST /api/v1/payments/{id}/refunds` (rate-limit + sandbox adapter plugins, sandbox provider over loopback; 0.01 EUR of a finished payment, `Idempotency-Key`)"
        }
        (Kind::Refund, false) => {
            "`POST /api/v1/payments/{id}/refunds` (**no rate-limit policy**; sandbox adapter plugin, sandbox provider over loopback; 0.01 EUR of a finished payment, `Idempotency-Key`)"
        }
    }
}

/// The machine's CPUs, including those a pinned run left to PostgreSQL.
fn cores(r: &Report<'_>) -> usize {
    r.pinned.map_or_else(
        || std::thread::available_parallelism().map_or(0, |n| n.get()),
        pin::Pinned::cpus,
    )
}

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The figures [`report`] prints, for `BENCH_JSON`.
pub(crate) fn report_json(r: &Report<'_>) -> Value {
    let s = r.settings;
    let sweep = |phases: &[Phase]| -> Vec<Value> { phases.iter().map(|p| p.json("")).collect() };
    json!({
        "bench": "api",
        "started_at": r.started_at.to_rfc3339(),
        "cores": cores(r),
        "load_at_start": r.load_at_start, "load_at_end": r.load_at_end,
        "postgres": r.server_info,
        "settings": {
            "seconds": s.seconds, "warmup_seconds": s.warmup.as_secs_f64(),
            "sweep_seconds": s.sweep_seconds, "sweep_warmup_seconds": s.sweep_warmup.as_secs_f64(),
            "clients": s.clients, "refund_clients": s.refund_clients,
            "refund_payments": s.refund_payments, "db_pool_size": s.db_pool_size,
            "client_threads": s.client_threads, "rate_limit": s.rate_limit,
            "pg_cpus": r.pinned.map(|p| &p.postgres), "other_cpus": r.pinned.map(|p| &p.rest),
            "rust_log": std::env::var("RUST_LOG").unwrap_or_default(),
        },
        "phases": r.phases.iter().map(|p| p.json(phase_label(p, s.rate_limit))).collect::<Vec<_>>(),
        "baselines": r.baselines.iter().map(|b| json!({
            "of": b.of.name(), "label": b.label, "command": b.command, "clients": b.clients,
            "transactions": b.transactions, "failed": b.failed, "tps": b.tps,
            "latency_avg_ms": b.latency_avg_ms, "cpu": b.cpu, "postgres_per_request": b.pg, "at": b.at.name(),
        })).collect::<Vec<_>>(),
        "sweep": sweep(r.sweep),
        "show_sweep": sweep(r.show_sweep),
        "rss_peak_mib": mib(r.rss_peak_kib),
        "notifications_received": r.notifications_received,
    })
}

/// One sweep's table: a row per client count.
pub(crate) fn sweep_table(path: &str, per: &str, sweep: &[Phase]) {
    println!();
    println!("### Concurrency sweep: `{path}`");
    println!();
    println!(
        "| clients | requests | errors | {per} | p50 ms | p90 ms | p99 ms | max ms | host cores | postgres cores | host RSS MiB (max) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for p in sweep {
        println!(
            "| {} | {} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
            p.clients,
            p.requests(),
            p.error_count(),
            p.per_second(),
            p.percentile_ms(0.5),
            p.percentile_ms(0.9),
            p.percentile_ms(0.99),
            p.max_ms(),
            p.cpu.host,
            p.cpu.postgres,
            mib(p.rss_max_kib)
        );
    }
}

pub(crate) fn report(r: &Report<'_>) {
    let s = r.settings;
    let cores = cores(r);
    println!();
    println!("## Merchant API under load");
    println!();
    println!(
        "Run {} UTC on {cores} cores; load average {} at start, {} at end. PostgreSQL: {}.",
        r.started_at.format("%Y-%m-%d %H:%M"),
        r.load_at_start,
        r.load_at_end,
        r.server_info
    );
    println!(
        "Host in this process: DB pool {} (payments), plugin calls ≤ 1000, rate-limit policy {}, log level `{}`; {} load generator thread(s); phases {} s after a {} s warm-up; sweep {} s per level after {} s.",
        s.db_pool_size,
        if s.rate_limit {
            "on (limits never reached)"
        } else {
            "**off** (`BENCH_RATE_LIMIT=off`)"
        },
        std::env::var("RUST_LOG").unwrap_or_default(),
        s.client_threads,
        s.seconds,
        s.warmup.as_secs_f64(),
        s.sweep_seconds,
        s.sweep_warmup.as_secs_f64()
    );
    if let Some(p) = r.pinned {
        println!("{}.", p.describe());
    }
    println!();
    println!(
        "| measurement | clients | requests | errors | per second | mean ms | p50 ms | p90 ms | p99 ms | max ms | host RSS MiB (max) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for p in r.phases {
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
            phase_label(p, s.rate_limit),
            p.clients,
            p.requests(),
            p.error_count(),
            p.per_second(),
            p.mean_ms(),
            p.percentile_ms(0.5),
            p.percentile_ms(0.9),
            p.percentile_ms(0.99),
            p.max_ms(),
            mib(p.rss_max_kib)
        );
    }
    for b in r.baselines {
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.2} | – | – | – | – | – |",
            b.label, b.clients, b.transactions, b.failed, b.tps, b.latency_avg_ms
        );
    }
    println!();
    println!(
        "Host RSS is `VmRSS` of the benchmark process, which also holds the load generator and the sandbox provider; its peak (`VmHWM`) over the run was {:.1} MiB. pgbench figures are transactions (one script run) per second and pgbench's average latency.",
        mib(r.rss_peak_kib)
    );
    for b in r.baselines {
        println!("- `{}`", b.command);
    }
    println!();
    println!(
        "Each refund's `refund.succeeded` notification goes to a loopback merchant endpoint that answers 200 at once; it received {} notifications over the run.",
        r.notifications_received
    );

    let create = r.phases.iter().find(|p| p.kind == Kind::Create);
    let show = r.phases.iter().find(|p| p.kind == Kind::Show);
    let refund = r.phases.iter().find(|p| p.kind == Kind::Refund);
    let ceiling = bracketed_ceiling(r.baselines, Kind::Create);
    let show_ceiling = bracketed_ceiling(r.baselines, Kind::Show);
    let refund_ceiling = r.baselines.iter().find(|b| b.of == Kind::Refund);
    println!();
    println!("| target | original system | measured | met |");
    println!("|---|---|---|---|");
    let verdict = |ok: bool| if ok { "yes" } else { "no" };
    if let Some(c) = create {
        println!(
            "| create ≥ 1,000 payments/s at {} clients | 9.8/s | {:.1}/s | {} |",
            c.clients,
            c.per_second(),
            verdict(c.per_second() >= 1000.0)
        );
        println!(
            "| create p99 ≤ 50 ms | p50 815 ms | p99 {:.2} ms (p50 {:.2} ms) | {} |",
            c.percentile_ms(0.99),
            c.percentile_ms(0.5),
            verdict(c.percentile_ms(0.99) <= 50.0)
        );
        println!(
            "| create: zero errors | | {} | {} |",
            c.error_count(),
            verdict(c.error_count() == 0)
        );
        if let Some(tps) = ceiling {
            println!(
                "| create ≥ 75% of the pgbench ceiling of its SQL (`-M prepared`, mean of the runs before and after the phase) | | {:.0}% of {tps:.0} tps | {} |",
                100.0 * c.per_second() / tps,
                verdict(c.per_second() >= 0.75 * tps)
            );
        }
    }
    if let Some(g) = show {
        println!(
            "| show ≥ 5,000 requests/s at {} clients | 258/s | {:.1}/s | {} |",
            g.clients,
            g.per_second(),
            verdict(g.per_second() >= 5000.0)
        );
        if let Some(tps) = show_ceiling {
            println!(
                "| show ≥ 30% of the pgbench ceiling of its SELECT (mean of the runs before and after the phase) | | {:.0}% of {tps:.0} tps | {} |",
                100.0 * g.per_second() / tps,
                verdict(g.per_second() >= 0.3 * tps)
            );
        }
    }
    if let Some(f) = refund {
        println!(
            "| refund ≥ 500 refunds/s at {} clients | | {:.1}/s | {} |",
            f.clients,
            f.per_second(),
            verdict(f.per_second() >= 500.0)
        );
        println!(
            "| refund p99 ≤ 50 ms | | p99 {:.2} ms (p50 {:.2} ms) | {} |",
            f.percentile_ms(0.99),
            f.percentile_ms(0.5),
            verdict(f.percentile_ms(0.99) <= 50.0)
        );
        if let Some(b) = refund_ceiling {
            println!(
                "| (refund throughput against the pgbench ceiling of its SQL) | | {:.0}% of {:.0} tps | |",
                100.0 * f.per_second() / b.tps,
                b.tps
            );
        }
    }

    let mut errors = Vec::new();
    for (name, p) in r
        .phases
        .iter()
        .map(|p| (format!("{} clients", p.clients), p))
        .chain(
            r.sweep
                .iter()
                .chain(r.show_sweep)
                .map(|p| (format!("sweep, {} clients", p.clients), p)),
        )
    {
        for (what, n) in &p.errors {
            errors.push(format!("| {}, {name} | {what} | {n} |", p.kind.request()));
        }
    }
    if !errors.is_empty() {
        println!();
        println!("| errors in | status and code | count |");
        println!("|---|---|---|");
        for line in errors {
            println!("{line}");
        }
    }

    for (path, per, sweep) in [
        ("POST /api/v1/payments", "payments/s", r.sweep),
        ("GET /api/v1/payments/{id}/show", "requests/s", r.show_sweep),
    ] {
        if !sweep.is_empty() {
            sweep_table(path, per, sweep);
        }
    }

    println!();
    println!("### Where the CPU went (average cores in use over each measured window)");
    println!();
    println!(
        "| phase | wall s | machine busy (of {cores}) | paygate host | load generator | sandbox provider | pgbench client | postgres (all) | redis | other processes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let cpu_row = |name: String, c: &CpuShare| {
        println!(
            "| {name} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            c.wall,
            c.machine,
            c.host,
            c.loadgen,
            c.sandbox,
            c.children,
            c.postgres,
            c.redis,
            c.other
        )
    };
    for p in r.phases {
        cpu_row(
            format!("{}, {} clients", p.kind.request(), p.clients),
            &p.cpu,
        );
    }
    for p in r.sweep {
        cpu_row(format!("sweep POST, {} clients", p.clients), &p.cpu);
    }
    for p in r.show_sweep {
        cpu_row(format!("sweep GET show, {} clients", p.clients), &p.cpu);
    }
    for b in r.baselines {
        cpu_row(b.label.clone(), &b.cpu);
    }
    println!();
    println!(
        "\"postgres (all)\" is every PostgreSQL process on the machine, including backends of other clients; \"other processes\" is everything else the machine ran (other builds and tests on a shared machine)."
    );
    postgres_table(r);
}

/// PostgreSQL's CPU and work per request of each phase beside the same per
/// transaction of each pgbench ceiling: where the API makes the database
/// work harder than its SQL alone does.
fn postgres_table(r: &Report<'_>) {
    let rows: Vec<(String, f64, &PgPerRequest)> = r
        .phases
        .iter()
        .filter_map(|p| {
            let name = format!("{}, {} clients", p.kind.request(), p.clients);
            Some((name, p.cpu.postgres * 1e6 / p.per_second(), p.pg.as_ref()?))
        })
        .chain(r.baselines.iter().filter_map(|b| {
            Some((
                b.label.clone(),
                b.cpu.postgres * 1e6 / b.tps,
                b.pg.as_ref()?,
            ))
        }))
        .collect();
    if rows.is_empty() {
        return;
    }
    println!();
    println!("### What PostgreSQL did per request (per transaction of a ceiling)");
    println!();
    println!(
        "| phase | PostgreSQL CPU µs | commits | rows written | WAL records | WAL bytes | full-page images | WAL flushes |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, cpu_us, pg) in rows {
        println!(
            "| {name} | {cpu_us:.0} | {:.2} | {:.2} | {:.1} | {:.0} | {:.3} | {:.3} |",
            pg.commits, pg.rows_written, pg.wal_records, pg.wal_bytes, pg.wal_fpi, pg.wal_syncs
        );
    }
    println!();
    println!(
        "From `pg_stat_database` (every database) and `pg_stat_wal` around each window, divided by the requests answered in it; backends report these at most once a second, so each figure is exact to about a second of the window's traffic. The statistics queries themselves add one commit per window."
    );
}
