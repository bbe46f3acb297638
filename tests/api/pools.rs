//! `db::LeanPool`, the connections of the statements every create and show
//! makes: one round trip per statement (sqlx's own pool adds a ping on
//! every release), and a connection whose statement failed or was
//! cancelled never handed out again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use paygate::db::LeanPool;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::app::databases;

/// A TCP relay to the local PostgreSQL that counts the chunks clients
/// send: one per flush, since each waits for the answer before the next.
struct CountingRelay {
    port: u16,
    sent: Arc<AtomicUsize>,
}

impl CountingRelay {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = Arc::new(AtomicUsize::new(0));
        let counted = sent.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect("127.0.0.1:5432").await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 << 10];
                    while let Ok(n @ 1..) = client_read.read(&mut buf).await {
                        counted.fetch_add(1, Ordering::SeqCst);
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
            }
        });
        Self { port, sent }
    }

    /// A one-connection sqlx pool to the payments database through the relay.
    async fn pool(&self) -> PgPool {
        let database = databases().await.payments;
        let name = database.rsplit('/').next().unwrap();
        let url = format!(
            "postgres://postgres@127.0.0.1:{}/{name}?sslmode=disable",
            self.port
        );
        PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap()
    }

    fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }
}

async fn lean_pool() -> (PgPool, LeanPool) {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&databases().await.payments)
        .await
        .unwrap();
    let lean = LeanPool::beside(&pool);
    (pool, lean)
}

async fn backend_pid(lean: &LeanPool) -> i32 {
    let mut conn = lean.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn.get())
        .await
        .unwrap();
    conn.release();
    pid
}

#[tokio::test]
async fn a_lean_statement_is_one_round_trip_where_sqlx_pool_makes_two() {
    const STATEMENTS: usize = 20;
    let relay = CountingRelay::start().await;

    // sqlx's pool, as the host used it for every statement before.
    let pool = relay.pool().await;
    sqlx::query("SELECT 1").execute(&pool).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = relay.sent();
    for _ in 0..STATEMENTS {
        sqlx::query("SELECT 1").fetch_optional(&pool).await.unwrap();
        // The connection's release (and its ping) runs in a task of its own.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let through_sqlx_pool = relay.sent() - before;

    // The lean pool beside it, over the same relay; the first statement
    // opens the connection and prepares the statement.
    let lean = LeanPool::beside(&pool);
    let mut before = 0;
    for round in 0..=STATEMENTS {
        if round == 1 {
            before = relay.sent();
        }
        let mut conn = lean.acquire().await.unwrap();
        sqlx::query("SELECT 1")
            .fetch_optional(conn.get())
            .await
            .unwrap();
        conn.release();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let through_lean_pool = relay.sent() - before;

    assert!(
        through_sqlx_pool >= 2 * STATEMENTS,
        "sqlx's pool sent {through_sqlx_pool} chunks for {STATEMENTS} statements"
    );
    assert_eq!(
        through_lean_pool, STATEMENTS,
        "the lean pool sent {through_lean_pool} chunks for {STATEMENTS} statements"
    );
}

#[tokio::test]
async fn a_released_lean_connection_is_the_next_one_handed_out() {
    let (_pool, lean) = lean_pool().await;
    let first = backend_pid(&lean).await;
    assert_eq!(backend_pid(&lean).await, first);
}

#[tokio::test]
async fn a_lean_connection_whose_statement_failed_is_closed_not_reused() {
    let (pool, lean) = lean_pool().await;
    let first = backend_pid(&lean).await;
    {
        let mut conn = lean.acquire().await.unwrap();
        let failed = sqlx::query("SELECT 1 / 0").execute(conn.get()).await;
        assert!(failed.is_err());
        // Dropped without release.
    }
    let next = backend_pid(&lean).await;
    assert_ne!(next, first, "the failed statement's connection came back");
    wait_until_gone(&pool, first).await;
}

#[tokio::test]
async fn a_lean_connection_whose_statement_was_cancelled_is_closed_not_reused() {
    let (pool, lean) = lean_pool().await;
    let first = backend_pid(&lean).await;
    {
        let mut conn = lean.acquire().await.unwrap();
        let cancelled = tokio::time::timeout(
            Duration::from_millis(200),
            sqlx::query("SELECT pg_sleep(2)").execute(conn.get()),
        )
        .await;
        assert!(cancelled.is_err(), "the statement was not cut short");
    }
    // The next statement is answered at once, on another connection: on
    // the same one it would wait for the sleep to end.
    let answered = tokio::time::timeout(Duration::from_secs(1), backend_pid(&lean)).await;
    let next = answered.expect("the next statement waited for the cancelled one");
    assert_ne!(next, first);
    wait_until_gone(&pool, first).await;
}

#[tokio::test]
async fn a_lean_connection_killed_while_idle_is_replaced_before_use() {
    let (pool, lean) = lean_pool().await;
    let first = backend_pid(&lean).await;
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(first)
        .execute(&pool)
        .await
        .unwrap();
    // Idle for longer than the pool trusts a connection without a ping.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let next = backend_pid(&lean).await;
    assert_ne!(next, first);
}

#[tokio::test]
async fn a_lean_pool_refuses_once_its_sqlx_pool_is_closed() {
    let (pool, lean) = lean_pool().await;
    backend_pid(&lean).await;
    pool.close().await;
    assert!(matches!(
        lean.acquire().await.map(|_| ()),
        Err(sqlx::Error::PoolClosed)
    ));
}

#[tokio::test]
async fn a_full_lean_pool_hands_a_released_connection_to_the_waiter_or_times_out() {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_millis(300))
        .connect(&databases().await.payments)
        .await
        .unwrap();
    let lean = LeanPool::beside(&pool);
    let (first, second) = (lean.acquire().await.unwrap(), lean.acquire().await.unwrap());

    // Both held: a third waits the pool's acquire timeout, then gives up.
    let started = std::time::Instant::now();
    assert!(matches!(
        lean.acquire().await.map(|_| ()),
        Err(sqlx::Error::PoolTimedOut)
    ));
    assert!(started.elapsed() >= Duration::from_millis(250));

    // A waiter gets the connection released while it waits.
    let waiter = {
        let lean = lean.clone();
        tokio::spawn(async move { backend_pid(&lean).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "the waiter did not wait");
    first.release();
    tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .expect("the waiter did not get the released connection")
        .unwrap();
    drop(second);
}

/// Waits until the server no longer has backend `pid`: its connection was
/// closed, not left open.
async fn wait_until_gone(pool: &PgPool, pid: i32) {
    for _ in 0..100 {
        let alive: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                .bind(pid)
                .fetch_one(pool)
                .await
                .unwrap();
        if !alive {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("backend {pid} is still connected");
}

/// The plan a connection would run `claim` with now, after it ran it six
/// times on an empty queue (a scratch copy of the outbox, on that
/// connection only) and the queue then filled up.
async fn plan_after_the_queue_filled(pool: &PgPool) -> String {
    let mut conn = pool.acquire().await.unwrap();
    for statement in [
        "CREATE TEMP TABLE queue (LIKE outbox INCLUDING ALL)",
        // What the notifier's claim does: a batch of ids joined to the table.
        "PREPARE claim(bigint[], uuid[], int[]) AS
             UPDATE queue q SET attempts = q.attempts + 1
             FROM unnest($1, $2, $3) AS m(id, event_id, attempts)
             WHERE q.id = m.id AND q.event_id = m.event_id AND q.attempts = m.attempts
               AND q.status = 'LOG_PROCESSING'",
    ] {
        sqlx::query(statement).execute(&mut *conn).await.unwrap();
    }
    let run = "EXECUTE claim('{1,2}', '{00000000-0000-0000-0000-000000000001,00000000-0000-0000-0000-000000000002}', '{0,0}')";
    for _ in 0..6 {
        sqlx::query(run).execute(&mut *conn).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO queue (payment_id, event_id, event_type, payload)
         SELECT n, gen_random_uuid(), 'payment.finished', '{}' FROM generate_series(1, 20000) n",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {run}"))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    for statement in ["DEALLOCATE claim", "DROP TABLE queue"] {
        sqlx::query(statement).execute(&mut *conn).await.unwrap();
    }
    plan.join("\n")
}

#[tokio::test]
async fn the_outbox_connections_plan_each_claim_on_the_queue_as_it_is() {
    let dbs =
        paygate::db::Databases::connect_and_migrate(&databases().await, 2, &Default::default())
            .await
            .unwrap();
    // The mechanism: an ordinary connection keeps the plan it fixed while
    // the queue was empty, a scan of every row for a batch of two.
    let kept = plan_after_the_queue_filled(&dbs.payments).await;
    assert!(kept.contains("Seq Scan on queue"), "{kept}");
    for pool in [&dbs.outbox, &dbs.outbox_relaxed] {
        let plan = plan_after_the_queue_filled(pool).await;
        assert!(plan.contains("Index Scan"), "{plan}");
        assert!(!plan.contains("Seq Scan on queue"), "{plan}");
    }
}
