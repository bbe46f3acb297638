//! What PostgreSQL did over a window: transactions, rows written and WAL,
//! from its cumulative statistics views, so the API's cost per request in
//! the database can be set beside the pgbench ceiling's, commit for commit.

use super::*;

/// Cumulative counters of the whole server (every database), as
/// `pg_stat_database` and `pg_stat_wal` hold them. Backends report them
/// when they go idle, at most once a second, so a window's figures are
/// exact to about a second of its traffic.
#[derive(Clone, Copy)]
pub(crate) struct PgActivity {
    commits: i64,
    rows_written: i64,
    wal_records: i64,
    wal_fpi: i64,
    wal_bytes: i64,
    wal_syncs: i64,
}

impl PgActivity {
    /// Reads the counters now, on a connection of its own; `None` (and the
    /// table left out) when the server cannot be read.
    pub(crate) async fn sample() -> Option<Self> {
        let mut admin = admin().await?;
        let row: Result<(i64, i64, i64, i64, i64, i64), _> = sqlx::query_as(
            "SELECT d.commits, d.written, w.wal_records, w.wal_fpi, w.wal_bytes::int8, w.wal_sync
             FROM (SELECT sum(xact_commit)::int8 AS commits,
                          sum(tup_inserted + tup_updated + tup_deleted)::int8 AS written
                   FROM pg_stat_database) d,
                  pg_stat_wal w",
        )
        .fetch_one(&mut admin)
        .await;
        match row {
            Ok((commits, rows_written, wal_records, wal_fpi, wal_bytes, wal_syncs)) => Some(Self {
                commits,
                rows_written,
                wal_records,
                wal_fpi,
                wal_bytes,
                wal_syncs,
            }),
            Err(e) => {
                println!("Cannot read PostgreSQL's statistics: {e}");
                None
            }
        }
    }

    /// What happened since `before`, per `requests` (each one request or
    /// pgbench transaction).
    pub(crate) fn per_request(&self, before: &Self, requests: f64) -> PgPerRequest {
        let per = |a: i64, b: i64| (a - b) as f64 / requests;
        PgPerRequest {
            commits: per(self.commits, before.commits),
            rows_written: per(self.rows_written, before.rows_written),
            wal_records: per(self.wal_records, before.wal_records),
            wal_fpi: per(self.wal_fpi, before.wal_fpi),
            wal_bytes: per(self.wal_bytes, before.wal_bytes),
            wal_syncs: per(self.wal_syncs, before.wal_syncs),
        }
    }
}

/// PostgreSQL's work per request over a window.
#[derive(Clone, Copy, serde::Serialize)]
pub(crate) struct PgPerRequest {
    pub(crate) commits: f64,
    pub(crate) rows_written: f64,
    pub(crate) wal_records: f64,
    pub(crate) wal_fpi: f64,
    pub(crate) wal_bytes: f64,
    pub(crate) wal_syncs: f64,
}
