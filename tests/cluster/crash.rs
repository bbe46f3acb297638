//! Crash safety (issue 6, item 1): while merchants create payments and
//! buyers settle them on the sandbox provider's page, the host is killed
//! with SIGKILL at random moments and started again. Afterwards every
//! created payment exists, each idempotency key made one payment, each
//! settled payment was notified once, and the quota charged equals the
//! payments created.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::host::{HostProcess, Services};
use crate::api::app::{LAX_RATE_LIMIT, TestApp, merchant_with, reply, standard_plugins};
use crate::api::notifications::{MerchantEndpoint, provider_webhook};
use crate::faults::services::{free_port, wait_until};

/// Kills during the load.
const KILLS: usize = 6;
/// Merchant clients creating payments at once.
const CLIENTS: i64 = 8;
/// How long an unfinished creation holds its key before a retry finishes
/// it: short, so clients cut off by a kill get their answer soon.
const REQUEST_LEASE: &str = "3s";
const EVENTUALLY: Duration = Duration::from_secs(90);

#[tokio::test]
async fn sigkill_under_load_loses_nothing_and_charges_each_key_once() {
    let started = Instant::now();
    let endpoint = MerchantEndpoint::start(&[]).await;
    let port = free_port();
    let mut services = Services::start("crash", &format!("http://127.0.0.1:{port}")).await;
    let callback = Some(endpoint.url());
    services.setup.merchant =
        merchant_with(&services.setup.merchants, 100_000, false, callback).await;
    let plugins = standard_plugins(&services.sandbox_addr, LAX_RATE_LIMIT);
    let shared = services.shared(&plugins, &[("PAYGATE_REQUEST_LEASE", REQUEST_LEASE)]);
    let mut host = HostProcess::start_on(&shared, "crash", port).await;
    let setup = &services.setup;

    let stop = CancellationToken::new();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(client(setup, &host.url, n, stop.clone())))
        .collect();
    let pauses: Vec<(u64, u64)> = {
        let mut rng = rand::rng();
        (0..KILLS)
            .map(|_| (rng.random_range(600..2000), rng.random_range(0..400)))
            .collect()
    };
    for (running, down) in pauses {
        tokio::time::sleep(Duration::from_millis(running)).await;
        host.kill().await;
        tokio::time::sleep(Duration::from_millis(down)).await;
        host.restart(&shared).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let mut seen = Seen::default();
    for client in futures_util::future::join_all(clients).await {
        seen.absorb(client.unwrap());
    }
    println!(
        "{} kills; {} payments created by {} requests, {} retried after a lost answer; {:?} so far",
        host.starts - 1,
        seen.created.len(),
        seen.requests,
        seen.retried,
        started.elapsed()
    );
    assert!(
        seen.created.len() >= 20,
        "too little load to prove anything"
    );
    assert_eq!(host.starts as usize, KILLS + 1);

    assert_each_key_made_one_payment(setup, &seen).await;
    let settled = finish_what_the_provider_could_not_tell(setup, &host, &seen).await;
    assert_notified_once(setup, &endpoint, &settled).await;
    assert_quota_matches_payments(setup).await;
    host.stop().await;
    println!("crash test done in {:?}", started.elapsed());
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    /// Idempotency key → every payment id a 200 for it named.
    created: BTreeMap<String, Vec<i64>>,
    /// Payment id → the outcome the buyer chose on the sandbox page.
    settled: HashMap<i64, &'static str>,
    requests: usize,
    /// Keys sent again because the first answer never came.
    retried: usize,
}

impl Seen {
    fn absorb(&mut self, other: Seen) {
        self.created.extend(other.created);
        self.settled.extend(other.settled);
        self.requests += other.requests;
        self.retried += other.retried;
    }
}

/// Until `stop`: a new order with its own idempotency key, sent until it
/// has a final answer (a kill's lost answers, 503s and `request_in_progress`
/// are retried with the same key, as a merchant would), then paid or
/// declined on the sandbox page.
fn client(
    app: &TestApp,
    url: &str,
    n: i64,
    stop: CancellationToken,
) -> impl Future<Output = Seen> + use<> {
    let (url, client) = (url.to_owned(), reqwest::Client::new());
    let (key, subscription) = (app.merchant.api_key.clone(), app.merchant.subscription_id);
    async move {
        let mut seen = Seen::default();
        let mut order = n * 1_000_000;
        while !stop.is_cancelled() {
            order += 1;
            let idempotency_key = format!("crash-{order}");
            let body = json!({"order_id": order, "amount": 1, "price": "10.00",
                              "alias": "sandbox", "subscription_id": subscription});
            let mut tries = 0;
            let created = loop {
                tries += 1;
                seen.requests += 1;
                let sent = client
                    .post(format!("{url}/api/v1/payments"))
                    .header("x-api-key", &key)
                    .header("idempotency-key", &idempotency_key)
                    .json(&body)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                let answer = match sent {
                    Ok(response) => reply(response).await,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                match (answer.status, answer.code()) {
                    (200, _) => break answer.body,
                    (503, _) | (409, "request_in_progress") => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    (status, code) => {
                        panic!("{idempotency_key}: {status} {code}: {}", answer.body)
                    }
                }
            };
            if tries > 1 {
                seen.retried += 1;
            }
            let id = created["payment_id"].as_i64().expect("a payment id");
            seen.created.entry(idempotency_key).or_default().push(id);
            let outcome = if order % 5 == 0 { "decline" } else { "pay" };
            let page = created["payment_url"].as_str().expect("a payment page");
            let clicked = client
                .post(format!("{page}/{outcome}"))
                .send()
                .await
                .expect("the sandbox provider answers");
            assert!(clicked.status().is_success() || clicked.status().is_redirection());
            seen.settled.insert(id, outcome);
        }
        seen
    }
}

async fn payments_scalar(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(app.merchant.merchant_id)
        .fetch_one(&app.dbs.payments)
        .await
        .unwrap()
}

/// Every 200 names a stored payment; all the 200s of one key name the
/// same one; no payment exists that no key was answered with.
async fn assert_each_key_made_one_payment(app: &TestApp, seen: &Seen) {
    let mut ids = HashSet::new();
    for (key, answered) in &seen.created {
        assert!(
            answered.iter().all(|id| *id == answered[0]),
            "{key} was answered with different payments: {answered:?}"
        );
        assert!(
            ids.insert(answered[0]),
            "two keys got payment {}",
            answered[0]
        );
    }
    let stored: Vec<i64> = sqlx::query_scalar("SELECT id FROM payments WHERE merchant_id = $1")
        .bind(app.merchant.merchant_id)
        .fetch_all(&app.dbs.payments)
        .await
        .unwrap();
    let stored: HashSet<i64> = stored.into_iter().collect();
    assert_eq!(
        stored, ids,
        "the payments stored are exactly those the clients were given"
    );
}

/// Sends, as the provider's own retries would, the webhooks the sandbox
/// gave up on while the host was down. The payments settled, by id.
async fn finish_what_the_provider_could_not_tell(
    app: &TestApp,
    host: &HostProcess,
    seen: &Seen,
) -> Vec<i64> {
    let pending: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM payments WHERE merchant_id = $1 AND status = 'PAYMENT_PENDING'",
    )
    .bind(app.merchant.merchant_id)
    .fetch_all(&app.dbs.payments)
    .await
    .unwrap();
    println!(
        "{} settled payments missed their provider webhook while the host was down",
        pending.len()
    );
    let client = reqwest::Client::new();
    for id in &pending {
        let status = match seen.settled.get(id) {
            Some(&"pay") => "finished",
            Some(_) => "failed",
            None => panic!("payment {id} is pending but its buyer never chose"),
        };
        assert_eq!(provider_webhook(&host.url, &client, *id, status).await, 200);
    }
    let mut settled: Vec<i64> = seen.settled.keys().copied().collect();
    settled.sort();
    settled
}

/// One outbox row per settled payment, delivered; at the merchant, one
/// notification (one `webhook-id`) per payment.
async fn assert_notified_once(app: &TestApp, endpoint: &MerchantEndpoint, settled: &[i64]) {
    let waited = wait_until("every notification delivered", EVENTUALLY, || async {
        payments_scalar(
            app,
            "SELECT count(*) FROM outbox o JOIN payments p ON p.id = o.payment_id
             WHERE p.merchant_id = $1 AND o.status = 'LOG_SUCCESS'",
        )
        .await
            == settled.len() as i64
    })
    .await;
    println!("the last notification delivered {waited:?} after the load stopped");
    let rows = payments_scalar(
        app,
        "SELECT count(*) FROM outbox o JOIN payments p ON p.id = o.payment_id WHERE p.merchant_id = $1",
    )
    .await;
    assert_eq!(
        rows,
        settled.len() as i64,
        "one outbox row per settled payment"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut by_payment: BTreeMap<i64, HashSet<String>> = BTreeMap::new();
    let received = endpoint.received();
    for request in &received {
        let body: Value = serde_json::from_str(&request.body).unwrap();
        let id = body["payment_id"].as_i64().expect("a payment id");
        by_payment
            .entry(id)
            .or_default()
            .insert(request.headers["webhook-id"].clone());
    }
    let notified: Vec<i64> = by_payment.keys().copied().collect();
    assert_eq!(notified, settled, "each settled payment notified");
    for (id, webhook_ids) in &by_payment {
        assert_eq!(
            webhook_ids.len(),
            1,
            "payment {id} got distinct notifications"
        );
    }
    // A kill between the merchant's answer and the attempt's record makes
    // the next host deliver that notification again, under the same
    // `webhook-id` (at-least-once over HTTP; merchants drop repeats by id).
    println!(
        "{} notifications, {} HTTP deliveries ({} repeated a webhook-id after a kill)",
        by_payment.len(),
        received.len(),
        received.len() - by_payment.len()
    );
}

/// After the reconciler (run here at once: nothing is in flight), the
/// tokens used are the payments created.
async fn assert_quota_matches_payments(app: &TestApp) {
    let reconciled = paygate::quota::reconcile(&app.merchants, &app.payment_store, Duration::ZERO)
        .await
        .unwrap();
    println!("quota reconciler: {reconciled:?}");
    let created = payments_scalar(
        app,
        "SELECT count(*) FROM payments
         WHERE merchant_id = $1 AND NOT (status = 'PAYMENT_FAILED' AND payment_url IS NULL)",
    )
    .await;
    assert_eq!(
        app.tokens_used().await,
        created,
        "tokens used against payments"
    );
}
