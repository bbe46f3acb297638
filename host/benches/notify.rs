//! Merchant notification benchmark (issue 4): the real outbox producer,
//! RabbitMQ and the notifier of one host, delivering to a merchant endpoint
//! on loopback that counts what it receives.
//!
//! 1. Latency: payments move to finished at a steady rate (default 300 per
//!    second) through the same transaction a provider webhook commits; the
//!    figure is commit → notification received at the merchant.
//! 2. Drain: a backlog of pending notifications (default 100,000) is
//!    written while no host runs; then a host starts and the receiver counts
//!    until every one arrived, checking that none is missing or repeated.
//! 3. Bulk replay: part of the drained backlog (default 10,000) is marked
//!    failed, as dead letters after an outage; the admin API's bulk replay
//!    (its store call, `OutboxStore::retry_all_failed`) queues them all, and
//!    the receiver counts until each arrived once more. Figures: the time to
//!    queue, and the rate they are delivered at.
//! 4. Baseline, same run: the receiver's own ceiling, signed POSTs from one
//!    client with the notifier's concurrency and no broker or database.
//!
//! Settings (environment): `BENCH_RATE` (transitions per second, 300),
//! `BENCH_SECONDS` (latency phase, 10), `BENCH_BACKLOG` (100000),
//! `BENCH_REPLAY` (10000),
//! `NOTIFIER_CONCURRENCY` (64), `RUST_LOG` (warn). Run with
//! `scripts/bench-notify`; docs/BENCHMARKS.md holds the recorded figures.
//! `BENCH_JSON` names a file for the same figures as JSON (scripts/report).

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use paygate::config::DatabaseUrls;
use paygate::merchants::NewMerchant;
use paygate::notifier::Deliverer;
use paygate::payments::PaymentStatus;
use paygate::payments::webhook::{PaymentLookup, ProviderEvent, Source};
use paygate::plugins::Secret;
use paygate::{App, Config, MerchantId, PaymentId};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use common::{fresh_databases, percentile_ms, setting, write_json};

const PREFIX: &str = "paygate_bench_notify";

/// What the merchant endpoint saw: arrival time of each payment's
/// notifications (more than one would be a duplicate).
#[derive(Clone, Default)]
struct Receiver {
    arrivals: Arc<Mutex<HashMap<i64, Vec<Instant>>>>,
}

impl Receiver {
    async fn start(&self) -> String {
        let arrivals = self.arrivals.clone();
        let router = Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let arrivals = arrivals.clone();
                async move {
                    let now = Instant::now();
                    let parsed: serde_json::Value =
                        serde_json::from_slice(&body).unwrap_or_default();
                    let id = parsed["payment_id"].as_i64().unwrap_or(-1);
                    if headers.contains_key("webhook-signature") {
                        arrivals.lock().unwrap().entry(id).or_default().push(now);
                    }
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        url
    }

    fn counts(&self) -> (usize, usize) {
        let arrivals = self.arrivals.lock().unwrap();
        let received: usize = arrivals.values().map(Vec::len).sum();
        (arrivals.len(), received - arrivals.len())
    }

    fn clear(&self) {
        self.arrivals.lock().unwrap().clear();
    }
}

fn config(urls: &DatabaseUrls, plugin_dir: &std::path::Path) -> Config {
    let mut config = Config::for_tests(
        urls.clone(),
        plugin_dir.to_owned(),
        plugin_dir.join("cache"),
        "paygate-bench-notify:".into(),
    );
    // As `paygate serve` runs, except that the merchant is on loopback.
    config.db_pool_size = 32;
    config.outbox.namespace = "paygate_bench.".into();
    config.outbox.poll_interval = Duration::from_secs(1);
    config.outbox.lease = Duration::from_secs(60);
    config.notifier.retry_schedule = vec![Duration::from_secs(5)];
    config.notifier.timeout = Duration::from_secs(10);
    config.notifier.concurrency = setting("NOTIFIER_CONCURRENCY", 64) as u16;
    config.notifier.allow_private_callbacks = true;
    config
}

/// The broker may hold messages of an earlier, interrupted run.
async fn purge_queues() {
    let connection = paygate::outbox::connect(
        &paygate::outbox::Broker::at("amqp://guest:guest@127.0.0.1:5672/%2f"),
        "bench",
    )
    .await
    .expect("RabbitMQ on 127.0.0.1:5672");
    let channel = connection.create_channel().await.unwrap();
    for queue in [
        "paygate_bench.payments.merchant",
        "paygate_bench.payments.merchant.dead",
    ] {
        let _ = channel.queue_delete(queue.into(), Default::default()).await;
    }
}

/// Payments of `merchant_id` written straight to the database.
async fn insert_payments(
    pool: &sqlx::PgPool,
    merchant_id: MerchantId,
    n: i64,
    status: &str,
) -> Vec<i64> {
    sqlx::query_scalar(
        "INSERT INTO payments (merchant_id, order_id, subscription_id, alias, amount, price, currency, status)
         SELECT $1, nextval('payments_id_seq'), 1, 'sandbox', 1, 10.00, 'EUR', $3
         FROM generate_series(1, $2)
         RETURNING id",
    )
    .bind(merchant_id)
    .bind(n)
    .bind(status)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn start_host(
    config: &Config,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    Host,
) {
    let app = App::build(config).await.expect("host starts");
    let host = Host {
        services: app.services.clone(),
        dbs: app.dbs.clone(),
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run(shutdown.clone()));
    (shutdown, task, host)
}

/// What the benchmark reaches past the API for.
#[derive(Clone)]
struct Host {
    services: paygate::http::AppState,
    dbs: paygate::db::Databases,
}

async fn wait_until(deadline: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    paygate::telemetry::init();
    let rate = setting("BENCH_RATE", 300);
    let seconds = setting("BENCH_SECONDS", 10);
    let backlog = setting("BENCH_BACKLOG", 100_000) as i64;
    let urls = fresh_databases(PREFIX).await;
    purge_queues().await;
    let plugin_dir = tempfile::tempdir().unwrap();
    let config = config(&urls, plugin_dir.path());
    let receiver = Receiver::default();
    let callback = receiver.start().await;

    // Phase 1: commit → received at a steady rate.
    let (shutdown, task, host) = start_host(&config).await;
    let merchant = host
        .services
        .merchants
        .store
        .create(&NewMerchant {
            name: "bench merchant".into(),
            callback_url: Some(callback.clone()),
            tokens: 0,
            currency: "EUR".into(),
            require_signed_writes: false,
        })
        .await
        .unwrap();
    let total = (rate * seconds) as i64;
    let ids = insert_payments(
        &host.dbs.payments,
        merchant.merchant_id,
        total,
        "PAYMENT_PENDING",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await; // producer and notifier connected
    let committed: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut commits = Vec::with_capacity(ids.len());
    for id in &ids {
        tick.tick().await;
        let (host, committed, id) = (host.clone(), committed.clone(), *id);
        commits.push(tokio::spawn(async move {
            let event = ProviderEvent {
                lookup: PaymentLookup::Id(PaymentId::new(id)),
                status: PaymentStatus::Finished,
                provider_type: "bench",
                event_id: "bench",
                amount: None,
                source: Source::Webhook,
            };
            host.services
                .webhooks
                .payments
                .apply_provider_event(&event, &["sandbox".to_owned()])
                .await
                .unwrap();
            committed.lock().unwrap().insert(id, Instant::now());
        }));
    }
    for commit in commits {
        commit.await.unwrap();
    }
    let offered = ids.len() as f64 / started.elapsed().as_secs_f64();
    let all = wait_until(Duration::from_secs(60), || receiver.counts().0 >= ids.len()).await;
    let (unique, duplicates) = receiver.counts();
    let mut latencies: Vec<Duration> = {
        let committed = committed.lock().unwrap();
        let arrivals = receiver.arrivals.lock().unwrap();
        committed
            .iter()
            .filter_map(|(id, at)| Some(arrivals.get(id)?[0].saturating_duration_since(*at)))
            .collect()
    };
    latencies.sort();
    let [p50, p90, p99, max] = [0.5, 0.9, 0.99, 1.0].map(|p| percentile_ms(&latencies, p));
    println!("## Commit of a status change → notification received (loopback merchant)\n");
    println!("| transitions | offered rate | received | duplicates | median | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {offered:.0}/s | {unique}{} | {duplicates} | {p50:.1} ms | {p90:.1} ms | {p99:.1} ms | {max:.1} ms |\n",
        ids.len(),
        if all { "" } else { " (timed out)" },
    );
    let latency = json!({
        "rate": rate, "seconds": seconds, "transitions": ids.len(), "offered_rate": offered,
        "received": unique, "timed_out": !all, "duplicates": duplicates,
        "median_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max,
    });
    shutdown.cancel();
    let _ = task.await;
    receiver.clear();

    // Phase 2: a backlog written while no host runs, then drained.
    let pool = host.dbs.payments.clone();
    let backlog_ids =
        insert_payments(&pool, merchant.merchant_id, backlog, "PAYMENT_FINISHED").await;
    sqlx::query(
        "WITH p AS (SELECT *, gen_random_uuid() AS event_id FROM payments WHERE id = ANY($1))
         INSERT INTO outbox (payment_id, event_id, event_type, payload)
         SELECT p.id, p.event_id, 'payment.finished',
                jsonb_build_object('event_id', p.event_id::text, 'event_type', 'payment.finished',
                    'payment_id', p.id, 'order_id', p.order_id, 'merchant_id', p.merchant_id,
                    'status', p.status, 'amount', p.amount::text, 'price', p.price::text,
                    'currency', p.currency, 'created_at', p.created_at)
         FROM p",
    )
    .bind(&backlog_ids)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("VACUUM ANALYZE outbox")
        .execute(&pool)
        .await
        .unwrap();
    let started = Instant::now();
    let (shutdown, task, host) = start_host(&config).await;
    let all = wait_until(Duration::from_secs(600), || {
        receiver.counts().0 >= backlog_ids.len()
    })
    .await;
    let elapsed = started.elapsed();
    let (unique, duplicates) = receiver.counts();
    tokio::time::sleep(Duration::from_secs(2)).await; // anything repeated late
    let (_, late_duplicates) = receiver.counts();
    let stats = host.services.outbox.stats().await.unwrap();
    println!("## Draining a backlog of pending notifications\n");
    println!(
        "| backlog | received | lost | duplicates | time (incl. host start) | rate | rows LOG_SUCCESS |"
    );
    println!("|---|---|---|---|---|---|---|");
    let (lost, drain_rate) = (
        backlog_ids.len() - unique,
        unique as f64 / elapsed.as_secs_f64(),
    );
    println!(
        "| {} | {unique}{} | {lost} | {late_duplicates} | {:.1} s | {drain_rate:.0}/s | {} |\n",
        backlog_ids.len(),
        if all { "" } else { " (timed out)" },
        elapsed.as_secs_f64(),
        stats.delivered,
    );
    let drain = json!({
        "backlog": backlog_ids.len(), "received": unique, "timed_out": !all, "lost": lost,
        "duplicates": late_duplicates, "seconds": elapsed.as_secs_f64(), "rate": drain_rate,
        "rows_delivered": stats.delivered,
    });
    let _ = duplicates;

    // Phase 3: dead letters replayed in bulk.
    receiver.clear();
    let replay = setting("BENCH_REPLAY", 10_000) as i64;
    sqlx::query(
        "UPDATE outbox SET status = 'LOG_FAILED'
         WHERE id IN (SELECT id FROM outbox WHERE status = 'LOG_SUCCESS' ORDER BY id LIMIT $1)",
    )
    .bind(replay)
    .execute(&pool)
    .await
    .unwrap();
    let started = Instant::now();
    let queued = host
        .services
        .outbox
        .retry_all_failed(paygate::outbox::Replay::default())
        .await
        .unwrap();
    let queue_seconds = started.elapsed().as_secs_f64();
    let all = wait_until(Duration::from_secs(600), || {
        receiver.counts().0 >= queued as usize
    })
    .await;
    let replay_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await; // anything repeated late
    let (received, replay_duplicates) = receiver.counts();
    let replay_rate = received as f64 / replay_seconds;
    println!("## Bulk replay of failed notifications\n");
    println!("| failed | queued | queued in | received | duplicates | all delivered in | rate |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {replay} | {queued} | {queue_seconds:.2} s | {received}{} | {replay_duplicates} | {replay_seconds:.1} s | {replay_rate:.0}/s |\n",
        if all { "" } else { " (timed out)" },
    );
    let replayed = json!({
        "failed": replay, "queued": queued, "queue_seconds": queue_seconds, "received": received,
        "timed_out": !all, "duplicates": replay_duplicates, "seconds": replay_seconds,
        "rate": replay_rate,
    });
    shutdown.cancel();
    let _ = task.await;

    // Baseline: the same receiver fed directly, same concurrency.
    receiver.clear();
    let deliverer = Deliverer::new(Duration::from_secs(10), true, &Default::default());
    let secret = Secret::new(merchant.webhook_secret.clone());
    let n = 20_000usize;
    let concurrency = usize::from(config.notifier.concurrency);
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (deliverer, secret, callback, next) = (
                deliverer.clone(),
                secret.clone(),
                callback.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let body = serde_json::json!({"payment_id": i as i64, "event_id": "e"});
                    deliverer
                        .deliver(
                            &callback,
                            &[&secret],
                            "e",
                            serde_json::to_vec(&body).unwrap(),
                        )
                        .await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let baseline_rate = receiver.counts().0 as f64 / started.elapsed().as_secs_f64();
    println!("## Baseline: signed POSTs straight to the receiver (no database, no broker)\n");
    println!("| requests | concurrency | rate |");
    println!("|---|---|---|");
    println!("| {n} | {concurrency} | {baseline_rate:.0}/s |\n");
    write_json(&json!({
        "bench": "notify",
        "notifier_concurrency": concurrency,
        "outbox_batch_size": config.outbox.batch_size,
        "latency": latency,
        "drain": drain,
        "replay": replayed,
        "baseline": {"requests": n, "concurrency": concurrency, "rate": baseline_rate},
    }));
}
