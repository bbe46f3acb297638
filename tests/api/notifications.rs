//! Merchant notifications end to end: a terminal transition goes through the
//! outbox, RabbitMQ and the notifier to a merchant endpoint on loopback,
//! signed; failures are retried on the schedule, recorded, and end failed;
//! nothing is delivered twice.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};
use paygate::PaymentId;
use serde_json::{Value, json};
use sha2::Sha256;

use super::app::{LAX_RATE_LIMIT, TestApp, isolated, isolated_app, merchant_with, spawn_app_with};
use crate::helpers::{FakeServer, Received};

/// The secret `Config::for_tests` gives the internal scheme.
const INTERNAL_SECRET: &[u8] = b"test-internal-secret";

/// What the merchant's endpoint does with a request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Answer {
    Status(u16),
    /// That status with a `Retry-After` header of that value.
    RetryAfter(u16, &'static str),
    /// Never answers (the notifier's timeout ends it).
    Hang,
    /// 200 after a while.
    Slow(Duration),
}

/// A merchant endpoint answering from a script, then 200.
pub(crate) struct MerchantEndpoint {
    server: FakeServer,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl MerchantEndpoint {
    pub(crate) async fn start(script: &[Answer]) -> Self {
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let next = script.clone();
        let router = Router::new().route(
            "/notifications",
            axum::routing::post(move || {
                let answer = next.lock().unwrap().pop_front();
                async move {
                    match answer.unwrap_or(Answer::Status(200)) {
                        Answer::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
                        Answer::RetryAfter(code, after) => {
                            let code = StatusCode::from_u16(code).unwrap();
                            (code, [("retry-after", after)]).into_response()
                        }
                        Answer::Hang => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            StatusCode::OK.into_response()
                        }
                        Answer::Slow(delay) => {
                            tokio::time::sleep(delay).await;
                            StatusCode::OK.into_response()
                        }
                    }
                }
            }),
        );
        Self {
            server: FakeServer::start(router).await,
            script,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("{}/notifications", self.server.url())
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.server.requests()
    }

    /// Waits until it has been notified `event_type` for `field` = `id`
    /// once, and returns that notification.
    pub(crate) async fn notified(&self, event_type: &str, field: &str, id: i64) -> Value {
        let started = Instant::now();
        loop {
            let seen: Vec<Value> = (self.received().iter())
                .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
                .filter(|b| b["event_type"] == event_type && b[field] == id)
                .collect();
            if let [one] = seen.as_slice() {
                return one.clone();
            }
            assert!(seen.len() < 2, "notified twice: {seen:?}");
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no {event_type} for {field} {id}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An app whose merchant's callback is `endpoint`; `tweak` adjusts settings.
pub(crate) async fn app_notifying(
    endpoint: &MerchantEndpoint,
    tweak: impl FnOnce(paygate::Config) -> paygate::Config,
) -> TestApp {
    let mut app = spawn_app_with(LAX_RATE_LIMIT, Vec::new(), tweak).await;
    app.merchant = merchant_with(&app.merchants, 1000, false, Some(endpoint.url())).await;
    app
}

/// [`app_notifying`] on databases and a broker namespace of its own: the
/// process's other apps share theirs and would deliver its notifications
/// with their own settings, as replicas do.
pub(crate) async fn app_notifying_alone(
    endpoint: &MerchantEndpoint,
    tag: &str,
    tweak: impl FnOnce(paygate::Config) -> paygate::Config,
) -> TestApp {
    let (databases, namespace) = isolated(tag).await;
    app_notifying(endpoint, move |mut c| {
        c.databases = databases;
        c.outbox.namespace = namespace;
        tweak(c)
    })
    .await
}

/// The provider's signed internal webhook moving payment `id` to `status`.
pub(crate) async fn provider_webhook(
    url: &str,
    client: &reqwest::Client,
    id: i64,
    status: &str,
) -> u16 {
    let body = json!({"payment_id": id, "status": status}).to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(INTERNAL_SECRET).unwrap();
    mac.update(body.as_bytes());
    client
        .post(format!("{url}/api/v1/payments/webhook"))
        .header("content-type", "application/json")
        .header(
            "x-internal-signature",
            hex::encode(mac.finalize().into_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A host started on the isolated databases `tag` after `first` stopped,
/// serving the same merchant.
async fn next_host(first: &TestApp, tag: &str) -> TestApp {
    let mut next = isolated_app(tag, Vec::new()).await;
    next.merchant = first.merchant.clone();
    next
}

/// Creates a payment and finishes (or fails) it as the provider would.
pub(crate) async fn settle_payment(app: &TestApp, order: i64, status: &str) -> i64 {
    let mut body = app.body(order);
    body["metadata"] = json!({"cart": format!("c-{order}")});
    let r = app.create(&body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let id = r.body["payment_id"].as_i64().unwrap();
    assert_eq!(
        provider_webhook(&app.url, &app.client, id, status).await,
        200
    );
    id
}

async fn notifications(app: &TestApp, id: i64) -> Value {
    let r = app
        .get(
            &format!("/api/v1/payments/{id}/notifications"),
            Some(&app.merchant.read_api_key.clone()),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

/// Waits until the payment's one notification reaches `status`.
pub(crate) async fn wait_for_status(app: &TestApp, id: i64, status: &str) -> Value {
    let started = Instant::now();
    loop {
        let body = notifications(app, id).await;
        if body["notifications"][0]["status"] == status {
            return body["notifications"][0].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "notification never reached {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn verify_signature(secret: &str, received: &Received) {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let id = &received.headers["webhook-id"];
    let timestamp = &received.headers["webhook-timestamp"];
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{}", received.body).as_bytes());
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    assert_eq!(received.headers["webhook-signature"], expected);
    let age = chrono::Utc::now().timestamp() - timestamp.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "timestamp {timestamp} is not now");
}

#[tokio::test]
async fn a_finished_payment_is_notified_once_signed_and_recorded() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = app_notifying(&endpoint, |c| c).await;
    let id = settle_payment(&app, 1, "finished").await;

    let notification = wait_for_status(&app, id, "LOG_SUCCESS").await;
    let received = endpoint.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let request = &received[0];
    verify_signature(&app.merchant.webhook_secret, request);
    assert_eq!(request.headers["webhook-id"], notification["event_id"]);
    let body: Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(body["event_id"], notification["event_id"]);
    assert_eq!(body["event_type"], "payment.finished");
    assert_eq!(body["payment_id"], id);
    assert_eq!(body["order_id"], 1);
    assert_eq!(body["merchant_id"], app.merchant.merchant_id.get());
    assert_eq!(body["status"], "PAYMENT_FINISHED");
    assert_eq!(
        (body["amount"].clone(), body["price"].clone()),
        (json!("1"), json!("10.00"))
    );
    assert_eq!(body["currency"], "EUR");
    assert_eq!(body["metadata"], json!({"cart": "c-1"}));
    let attempts = notification["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["status_code"], 200);
    assert_eq!(attempts[0]["error"], Value::Null);

    // The timeline shows the attempt.
    let kinds = app.timeline_types(id).await;
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("EVENT_MERCHANT_NOTIFICATION"),
        "{kinds:?}"
    );

    // The provider's webhook again changes nothing and notifies nobody.
    assert_eq!(
        provider_webhook(&app.url, &app.client, id, "finished").await,
        200
    );
    // Delivered is final: a retry finds nothing failed.
    let r = retry(&app, id, &app.merchant.api_key.clone()).await;
    assert_eq!((r.status, r.code()), (409, "nothing_to_retry"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(endpoint.received().len(), 1);
}

async fn retry(app: &TestApp, id: i64, key: &str) -> super::app::Reply {
    app.post_raw(
        &format!("/api/v1/payments/{id}/notifications/retry"),
        Some(key),
        &[],
        Vec::new(),
    )
    .await
}

#[tokio::test]
async fn failures_are_retried_on_schedule_then_failed_then_retried_by_hand() {
    // 500, 410, 503: all three attempts of the test schedule fail.
    let endpoint = MerchantEndpoint::start(&[
        Answer::Status(500),
        Answer::Status(410),
        Answer::Status(503),
    ])
    .await;
    let app = app_notifying(&endpoint, |c| c).await;
    let id = settle_payment(&app, 1, "failed").await;

    let failed = wait_for_status(&app, id, "LOG_FAILED").await;
    let codes: Vec<Value> = failed["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(codes, [json!(500), json!(410), json!(503)]);
    assert_eq!(failed["event_type"], "payment.failed");
    assert_eq!(endpoint.received().len(), 3);

    // A read key may not re-queue; another merchant's payment is not found.
    let r = retry(&app, id, &app.merchant.read_api_key.clone()).await;
    assert_eq!(r.status, 403);
    let other = merchant_with(&app.merchants, 10, false, None).await;
    let r = retry(&app, id, &other.api_key).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));

    // The merchant's endpoint recovered: the retry delivers the same event.
    let r = retry(&app, id, &app.merchant.api_key.clone()).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (202, json!({"status": "queued"}))
    );
    let delivered = wait_for_status(&app, id, "LOG_SUCCESS").await;
    assert_eq!(delivered["attempts"].as_array().unwrap().len(), 4);
    let received = endpoint.received();
    assert_eq!(received.len(), 4);
    let ids: Vec<&String> = received.iter().map(|r| &r.headers["webhook-id"]).collect();
    assert!(ids.iter().all(|i| **i == failed["event_id"]), "{ids:?}");
    for request in &received {
        verify_signature(&app.merchant.webhook_secret, request);
    }
    assert!(endpoint.script.lock().unwrap().is_empty());
}

/// With the producer's poll and every lease an hour away, only wake-ups
/// publish: the notifier's, when it schedules a retry, and the replay's.
#[tokio::test]
async fn retries_and_replays_are_published_without_waiting_for_the_poll() {
    let endpoint = MerchantEndpoint::start(&[Answer::Status(500), Answer::Status(500)]).await;
    let app = app_notifying_alone(&endpoint, "wake_on_retry", |mut c| {
        c.outbox.poll_interval = Duration::from_secs(3600);
        c.outbox.lease = Duration::from_secs(3600);
        // The notifier's lease is its timeout and 5 s.
        c.notifier.timeout = Duration::from_secs(3600);
        c.notifier.retry_schedule = vec![Duration::from_millis(50)];
        c
    })
    .await;
    let id = settle_payment(&app, 1, "failed").await;
    let failed = wait_for_status(&app, id, "LOG_FAILED").await;
    assert_eq!(failed["attempts"].as_array().unwrap().len(), 2, "{failed}");

    let r = retry(&app, id, &app.merchant.api_key.clone()).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let delivered = wait_for_status(&app, id, "LOG_SUCCESS").await;
    assert_eq!(delivered["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(endpoint.received().len(), 3);
}

#[tokio::test]
async fn hanging_and_hung_up_endpoints_are_attempts_with_their_errors() {
    let endpoint = MerchantEndpoint::start(&[Answer::Hang]).await;
    // The first connection is closed unanswered, the next request hangs
    // past the timeout, then the endpoint answers.
    endpoint
        .server
        .drop_connections
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let app = app_notifying_alone(&endpoint, "hangs", |mut c| {
        c.notifier.timeout = Duration::from_millis(500);
        c.notifier.retry_schedule = vec![Duration::from_millis(50); 3];
        c
    })
    .await;
    let id = settle_payment(&app, 1, "finished").await;

    let delivered = wait_for_status(&app, id, "LOG_SUCCESS").await;
    let attempts = delivered["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert_eq!(attempts[0]["status_code"], Value::Null);
    assert!(
        attempts[0]["error"].as_str().unwrap().contains("failed"),
        "{attempts:?}"
    );
    assert_eq!(attempts[1]["status_code"], Value::Null);
    assert!(
        attempts[1]["error"].as_str().unwrap().contains("timed out"),
        "{attempts:?}"
    );
    assert!(attempts[1]["latency_ms"].as_i64().unwrap() >= 400);
    assert_eq!(attempts[2]["status_code"], 200);
}

/// A merchant that answers 429 or 503 with `Retry-After` is left alone at
/// least that long, but never past the schedule's longest delay (an hour's
/// wait would outlast this test).
#[tokio::test]
async fn retry_after_on_429_and_503_is_honoured_up_to_the_schedules_longest_delay() {
    let endpoint = MerchantEndpoint::start(&[
        Answer::RetryAfter(503, "2"),
        Answer::RetryAfter(429, "3600"),
    ])
    .await;
    let app = app_notifying_alone(&endpoint, "retryafter", |mut c| {
        c.notifier.retry_schedule = vec![
            Duration::from_millis(50),
            Duration::from_millis(50),
            Duration::from_secs(3),
        ];
        c
    })
    .await;
    let id = settle_payment(&app, 1, "finished").await;
    let delivered = wait_for_status(&app, id, "LOG_SUCCESS").await;
    let attempts = delivered["attempts"].as_array().unwrap();
    let codes: Vec<&Value> = attempts.iter().map(|a| &a["status_code"]).collect();
    assert_eq!(codes, [503, 429, 200], "{attempts:?}");
    let at = |i: usize| {
        chrono::DateTime::parse_from_rfc3339(attempts[i]["at"].as_str().unwrap()).unwrap()
    };
    let gaps: Vec<i64> = (1..3)
        .map(|i| (at(i) - at(i - 1)).num_milliseconds())
        .collect();
    // Asked for 2 s where the schedule said 50 ms: at least 2 s.
    assert!(gaps[0] >= 2000, "{gaps:?}");
    // Asked for an hour: the schedule's longest, 3 s.
    assert!(gaps[1] >= 3000, "{gaps:?}");
}

#[tokio::test]
async fn loopback_callbacks_are_refused_unless_allowed() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = app_notifying_alone(&endpoint, "ssrf", |mut c| {
        c.notifier.allow_private_callbacks = false;
        c.notifier.retry_schedule = Vec::new();
        c
    })
    .await;
    let id = settle_payment(&app, 1, "finished").await;
    let failed = wait_for_status(&app, id, "LOG_FAILED").await;
    let error = failed["attempts"][0]["error"].as_str().unwrap().to_owned();
    assert!(error.contains("not public"), "{error}");
    assert!(endpoint.received().is_empty());
}

#[tokio::test]
async fn a_redelivered_message_of_a_delivered_event_is_not_delivered_again() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = app_notifying(&endpoint, |c| c).await;
    let id = settle_payment(&app, 1, "finished").await;
    let notification = wait_for_status(&app, id, "LOG_SUCCESS").await;

    // The same message again, as RabbitMQ would redeliver it.
    let (outbox_id,): (i64,) = sqlx::query_as("SELECT id FROM outbox WHERE payment_id = $1")
        .bind(id)
        .fetch_one(&app.dbs.payments)
        .await
        .unwrap();
    let connection = paygate::outbox::connect(
        &paygate::outbox::Broker::at("amqp://guest:guest@127.0.0.1:5672/%2f"),
        "test",
    )
    .await
    .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let mut headers = FieldTable::default();
    headers.insert("x-outbox-id".into(), AMQPValue::LongLongInt(outbox_id));
    headers.insert("x-attempts".into(), AMQPValue::LongInt(0));
    let event_id = notification["event_id"].as_str().unwrap();
    for _ in 0..3 {
        channel
            .basic_publish(
                format!("paygate_test_{}.payments", std::process::id()).into(),
                "payment.finished".into(),
                BasicPublishOptions::default(),
                b"{}",
                lapin::BasicProperties::default()
                    .with_message_id(event_id.into())
                    .with_headers(headers.clone()),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(endpoint.received().len(), 1);
    assert_eq!(
        wait_for_status(&app, id, "LOG_SUCCESS").await["attempts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn rows_claimed_by_a_producer_that_died_are_published_after_the_lease() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let mut first = app_notifying_alone(&endpoint, "lease", |c| c).await;
    let r = first.create(&first.body(1)).await;
    let id = r.body["payment_id"].as_i64().unwrap();
    // The host stops; a provider event commits; a producer claims the row
    // and dies before publishing.
    first.shutdown.cancel();
    first.server.take().unwrap().await.unwrap().unwrap();
    let event = paygate::payments::webhook::ProviderEvent {
        lookup: paygate::payments::webhook::PaymentLookup::Id(PaymentId::new(id)),
        status: paygate::payments::PaymentStatus::Finished,
        provider_type: "test",
        event_id: "evt-lease",
        amount: None,
        source: paygate::payments::webhook::Source::Webhook,
    };
    let applied = first
        .payment_store
        .apply_provider_event(&event, &["sandbox".to_owned()])
        .await
        .unwrap();
    assert!(matches!(
        applied,
        paygate::payments::webhook::Applied::Updated { .. }
    ));
    let claimed = first
        .outbox
        .claim_due(10, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);

    // A new host on the same databases publishes it once the lease is over.
    let second = next_host(&first, "lease").await;
    let started = Instant::now();
    let delivered = wait_for_status(&second, id, "LOG_SUCCESS").await;
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "published before the lease ran out"
    );
    assert_eq!(delivered["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(endpoint.received().len(), 1);
}

/// Closes this app's connections at the broker, as a network fault or a
/// broker restart would; how many were closed.
fn close_broker_connections(instance: &str) -> usize {
    let listed = std::process::Command::new("rabbitmqctl")
        .args(["list_connections", "pid", "client_properties", "--quiet"])
        .output()
        .expect("rabbitmqctl runs");
    let listed = String::from_utf8_lossy(&listed.stdout);
    let pids: Vec<&str> = listed
        .lines()
        .filter(|line| line.contains(instance))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    for pid in &pids {
        let closed = std::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "closed by a paygate test"])
            .output()
            .expect("rabbitmqctl runs");
        assert!(closed.status.success(), "{closed:?}");
    }
    pids.len()
}

/// Every payment's one notification delivered, each exactly once.
pub(crate) async fn assert_each_delivered_once(
    app: &TestApp,
    endpoint: &MerchantEndpoint,
    ids: &[i64],
) {
    for id in ids {
        wait_for_status(app, *id, "LOG_SUCCESS").await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut delivered: Vec<i64> = endpoint
        .received()
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["payment_id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    delivered.sort();
    assert_eq!(delivered, ids, "each payment notified exactly once");
}

#[tokio::test]
async fn broker_connections_dropped_under_load_lose_and_repeat_nothing() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = app_notifying_alone(&endpoint, "amqpdrop", |c| c).await;
    let mut ids = Vec::new();
    for order in 1..=40 {
        let r = app.create(&app.body(order)).await;
        ids.push(r.body["payment_id"].as_i64().unwrap());
    }
    let finishing = {
        let ids = ids.clone();
        let (url, client) = (app.url.clone(), app.client.clone());
        tokio::spawn(async move {
            for id in ids {
                assert_eq!(provider_webhook(&url, &client, id, "finished").await, 200);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    // Twice while the transitions commit: producer and notifier both lose
    // their connections and must reconnect.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let closed = tokio::task::spawn_blocking({
            let instance = app.instance.clone();
            move || close_broker_connections(&instance)
        })
        .await
        .unwrap();
        assert!(closed >= 1, "no connection of this app at the broker");
    }
    finishing.await.unwrap();
    assert_each_delivered_once(&app, &endpoint, &ids).await;
}

#[tokio::test]
async fn a_host_stopped_mid_delivery_hands_over_without_loss_or_repeat() {
    let endpoint = MerchantEndpoint::start(&[Answer::Slow(Duration::from_millis(200)); 20]).await;
    let mut first = app_notifying_alone(&endpoint, "handover", |c| c).await;
    let mut ids = Vec::new();
    for order in 1..=20 {
        ids.push(settle_payment(&first, order, "finished").await);
    }
    // Stop at once, whatever is in flight.
    first.shutdown.cancel();
    first.server.take().unwrap().await.unwrap().unwrap();

    let second = next_host(&first, "handover").await;
    assert_each_delivered_once(&second, &endpoint, &ids).await;
}

/// A merchant endpoint that never answers, counting the requests it holds.
struct HangingEndpoint {
    server: FakeServer,
    holding: Arc<std::sync::atomic::AtomicUsize>,
    most: Arc<std::sync::atomic::AtomicUsize>,
}

impl HangingEndpoint {
    async fn start() -> Self {
        Self::holding_for(Duration::from_secs(3600)).await
    }

    /// An endpoint that answers 200 after holding each request for `hold`.
    async fn holding_for(hold: Duration) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let (holding, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (h, m) = (holding.clone(), most.clone());
        let router = Router::new().route(
            "/notifications",
            axum::routing::post(move || {
                let (holding, most) = (h.clone(), m.clone());
                async move {
                    /// Counts the request while it is held (the notifier's
                    /// timeout drops it).
                    struct Held(Arc<AtomicUsize>);
                    impl Drop for Held {
                        fn drop(&mut self) {
                            self.0.fetch_sub(1, SeqCst);
                        }
                    }
                    let now = holding.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    let _held = Held(holding);
                    tokio::time::sleep(hold).await;
                    StatusCode::OK
                }
            }),
        );
        Self {
            server: FakeServer::start(router).await,
            holding,
            most,
        }
    }

    fn url(&self) -> String {
        format!("{}/notifications", self.server.url())
    }
}

/// Security review, finding 18: one merchant's endpoint that never answers
/// held every delivery slot (each attempt waiting out the timeout), so
/// every other merchant's notifications waited behind it. Now it holds at
/// most its share, and another merchant's notifications are delivered
/// while it hangs.
#[tokio::test]
async fn a_burst_over_a_merchants_share_waits_for_a_slot_not_for_the_timeout() {
    // One delivery at a time for the merchant, each taking 300 ms: a burst
    // of four is mostly over the share. Those wait until a slot is free
    // again, about a second, not the 30 s a hanging endpoint's would.
    let slow = HangingEndpoint::holding_for(Duration::from_millis(300)).await;
    let unused = MerchantEndpoint::start(&[]).await;
    let mut app = app_notifying_alone(&unused, "burst_share", |mut c| {
        c.notifier.per_merchant_concurrency = Some(1);
        c.notifier.timeout = Duration::from_secs(30);
        c.notifier.retry_schedule = Vec::new();
        c
    })
    .await;
    app.merchant = merchant_with(&app.merchants, 1000, false, Some(slow.url())).await;
    let mut ids = Vec::new();
    for order in 1..=4 {
        ids.push(settle_payment(&app, order, "finished").await);
    }
    delivered_at_first_attempt(&app, ids).await;
    assert_eq!(slow.most.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// Waits until each of `ids`' notifications is delivered, and checks it
/// took one attempt.
async fn delivered_at_first_attempt(app: &TestApp, ids: Vec<i64>) {
    for id in ids {
        let delivered = wait_for_status(app, id, "LOG_SUCCESS").await;
        assert_eq!(
            delivered["attempts"].as_array().unwrap().len(),
            1,
            "{delivered}"
        );
    }
}

/// A burst over a quick endpoint's share was put back, each notification
/// claimed, undone and published again a second later: most of the outbox's
/// and the broker's work under a steady stream of one merchant's refunds.
/// Now it waits in the notifier for the merchant's deliveries to end.
#[tokio::test]
async fn a_burst_to_a_quick_endpoint_over_its_share_is_never_put_back() {
    let quick = HangingEndpoint::holding_for(Duration::from_millis(100)).await;
    let unused = MerchantEndpoint::start(&[]).await;
    let mut app = app_notifying_alone(&unused, "burst_quick", |mut c| {
        c.notifier.per_merchant_concurrency = Some(1);
        c.notifier.retry_schedule = Vec::new();
        c
    })
    .await;
    app.merchant = merchant_with(&app.merchants, 1000, false, Some(quick.url())).await;
    let ids = futures_util::future::join_all(
        (1..=4).map(|order| settle_payment(&app, order, "finished")),
    )
    .await;
    delivered_at_first_attempt(&app, ids).await;
    assert_eq!(quick.most.load(std::sync::atomic::Ordering::SeqCst), 1);
    let deferred = "paygate_notifier_deliveries_total{outcome=\"deferred\"}";
    assert_eq!(app.metric(deferred).await, Some(0));
}

#[tokio::test]
async fn a_hanging_merchant_endpoint_holds_no_more_than_its_share() {
    use std::sync::atomic::Ordering::SeqCst;
    const SHARE: usize = 3;
    let hanging = HangingEndpoint::start().await;
    let healthy = MerchantEndpoint::start(&[]).await;
    let mut app = app_notifying_alone(&healthy, "fair_share", |mut c| {
        c.notifier.concurrency = 12;
        c.notifier.per_merchant_concurrency = Some(SHARE as u16);
        c.notifier.timeout = Duration::from_secs(30);
        c.notifier.retry_schedule = Vec::new();
        c
    })
    .await;
    let healthy_merchant = app.merchant.clone();
    app.merchant = merchant_with(&app.merchants, 1000, false, Some(hanging.url())).await;
    for order in 1..=30 {
        settle_payment(&app, order, "finished").await;
    }
    // The hanging endpoint takes what it may.
    let started = Instant::now();
    while hanging.holding.load(SeqCst) < SHARE {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the hanging endpoint was never called"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    app.merchant = healthy_merchant;
    let mut healthy_ids = Vec::new();
    for order in 100..105 {
        healthy_ids.push(settle_payment(&app, order, "finished").await);
    }
    for id in healthy_ids {
        wait_for_status(&app, id, "LOG_SUCCESS").await;
    }
    assert_eq!(healthy.received().len(), 5);
    let most = hanging.most.load(SeqCst);
    assert!(
        most <= SHARE,
        "the hanging endpoint held {most} deliveries at once"
    );
}
