//! Two `paygate serve` processes side by side on one set of services (issue
//! 6, item 3): the same databases, broker namespace, Redis prefix and plugin
//! registry, different ports. Between them the outbox publishes each row
//! once, each notification is delivered once, quotas and rate limits hold
//! across both, and a plugin activation made through one reaches the other.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use paygate::merchants::CreatedMerchant;
use paygate::plugins::{CacheLocation, PublishRequest, publish};
use paygate_plugin_registry::{PluginSpec, Registry};
use serde_json::{Value, json};

use super::host::{HostProcess, Services, Shared};
use crate::api::app::{
    ExtraPlugin, LAX_RATE_LIMIT, Reply, cache_dir, merchant_with, new_merchant, reply,
    standard_plugins,
};
use crate::api::notifications::{MerchantEndpoint, provider_webhook};
use crate::faults::services::wait_until;
use crate::helpers::wasm;

/// The hosts' admin token (see `host.rs`).
const ADMIN_TOKEN: &str = "test-admin-token";

/// How long anything the hosts do in the background may take here.
const EVENTUALLY: Duration = Duration::from_secs(45);

/// Where the sandbox provider would send webhooks: nobody. Only its payment
/// pages send them, and these tests send their own.
const NO_GATEWAY: &str = "http://127.0.0.1:9";

/// Requests in flight at once from a test.
const IN_FLIGHT: usize = 8;

/// Starts two hosts on `shared` at once.
async fn two_hosts(shared: &Shared) -> (HostProcess, HostProcess) {
    tokio::join!(
        HostProcess::start(shared, "replica-a"),
        HostProcess::start(shared, "replica-b")
    )
}

fn logs(hosts: &[&HostProcess]) -> String {
    hosts
        .iter()
        .map(|h| format!("--- {} log ---\n{}", h.name, h.log_tail()))
        .collect()
}

/// POSTs a create for `order` to `host` with its own `Idempotency-Key`.
async fn create(
    client: &reqwest::Client,
    host: &HostProcess,
    merchant: &CreatedMerchant,
    alias: &str,
    order: i64,
) -> Reply {
    let response = client
        .post(format!("{}/api/v1/payments", host.url))
        .header("x-api-key", &merchant.api_key)
        .header("idempotency-key", format!("replicas-{order}"))
        .json(
            &json!({"order_id": order, "amount": 1, "price": "10.00", "alias": alias,
                      "subscription_id": merchant.subscription_id}),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("{} did not answer a create: {e}", host.name));
    reply(response).await
}

/// A value of an unlabelled counter on `host`'s `/metrics`.
async fn metric(client: &reqwest::Client, host: &HostProcess, name: &str) -> i64 {
    let value = crate::api::app::admin_metric(client, &host.admin_url, name).await;
    let value = value.unwrap_or_else(|| panic!("{name} missing from {}'s metrics", host.name));
    i64::try_from(value).expect("a counter fits an i64")
}

/// An extra queue of the test's own on the hosts' exchange: it receives a
/// copy of every message any host publishes, so it counts publications.
struct BrokerTap {
    /// The `x-outbox-id` header of every message seen, in order.
    seen: Arc<Mutex<Vec<i64>>>,
    _connection: lapin::Connection,
}

impl BrokerTap {
    async fn start(namespace: &str) -> Self {
        let connection = paygate::outbox::connect(
            &paygate::outbox::Broker::at("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "paygate test replicas tap",
        )
        .await
        .unwrap();
        let channel = connection.create_channel().await.unwrap();
        // Declared as every host declares it, in case none has yet.
        let exchange = format!("{namespace}payments");
        channel
            .exchange_declare(
                exchange.as_str().into(),
                lapin::ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let queue = format!("{namespace}test-tap-{}", uuid::Uuid::new_v4());
        let private = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        };
        channel
            .queue_declare(queue.as_str().into(), private, FieldTable::default())
            .await
            .unwrap();
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                "payment.*".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "paygate-test-tap".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let id = delivery
                    .properties
                    .headers()
                    .as_ref()
                    .and_then(|h| match h.inner().get("x-outbox-id") {
                        Some(AMQPValue::LongLongInt(v)) => Some(*v),
                        Some(AMQPValue::LongInt(v)) => Some(i64::from(*v)),
                        _ => None,
                    })
                    .unwrap_or(-1);
                record.lock().unwrap().push(id);
            }
        });
        Self {
            seen,
            _connection: connection,
        }
    }

    fn seen(&self) -> Vec<i64> {
        self.seen.lock().unwrap().clone()
    }
}

/// Payments of the notification test.
const PAYMENTS: i64 = 100;

#[tokio::test]
async fn two_replicas_publish_and_notify_each_payment_once() {
    let started = Instant::now();
    let endpoint = MerchantEndpoint::start(&[]).await;
    let services = Services::start("replicas_notify", NO_GATEWAY).await;
    let merchant =
        merchant_with(&services.setup.merchants, 1000, false, Some(endpoint.url())).await;
    let shared = services.shared(
        &standard_plugins(&services.sandbox_addr, LAX_RATE_LIMIT),
        &[],
    );
    let tap = BrokerTap::start(&services.namespace).await;
    let (a, b) = two_hosts(&shared).await;
    let client = reqwest::Client::new();

    // Each payment is created on one host and finished (every fourth one
    // failed) by the provider's webhook to the other.
    let (hosts, merchant_ref, client_ref) = ([&a, &b], &merchant, &client);
    let mut ids: Vec<i64> = futures_util::stream::iter(1..=PAYMENTS)
        .map(|order| async move {
            let (via, other) = (hosts[order as usize % 2], hosts[1 - order as usize % 2]);
            let created = create(client_ref, via, merchant_ref, "sandbox", order).await;
            assert_eq!(created.status, 200, "{}: {:?}", via.name, created.body);
            let id = created.body["payment_id"].as_i64().unwrap();
            let status = if order % 4 == 0 { "failed" } else { "finished" };
            // As a provider does, a webhook refused for the moment (503:
            // the machine is loaded past a database wait) is sent again.
            let mut answered = 503;
            for _ in 0..5 {
                answered = provider_webhook(&other.url, client_ref, id, status).await;
                if answered != 503 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            assert_eq!(answered, 200, "{}: webhook for payment {id}", other.name);
            id
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    ids.sort();
    let settled_in = started.elapsed();

    let took = wait_until("every outbox row LOG_SUCCESS", EVENTUALLY, || async {
        services
            .count(
                "SELECT count(*) FROM outbox WHERE status = 'LOG_SUCCESS'",
                None,
            )
            .await
            == PAYMENTS
    })
    .await;
    // Anything published late would arrive within this.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The database: one row per payment, delivered on its first attempt,
    // with one recorded attempt.
    let rows: Vec<(i64, i64, uuid::Uuid, String, i32, i64)> = sqlx::query_as(
        "SELECT o.id, o.payment_id, o.event_id, o.status, o.attempts,
                (SELECT count(*) FROM notification_attempts a WHERE a.outbox_id = o.id)
         FROM outbox o ORDER BY o.payment_id",
    )
    .fetch_all(&services.setup.dbs.payments)
    .await
    .unwrap();
    let row_payments: Vec<i64> = rows.iter().map(|r| r.1).collect();
    assert_eq!(row_payments, ids, "one outbox row per payment");
    for (id, payment, _, status, attempts, recorded) in &rows {
        assert_eq!(
            (status.as_str(), *attempts, *recorded),
            ("LOG_SUCCESS", 1, 1),
            "outbox row {id} (payment {payment})"
        );
    }

    // The merchant's endpoint: each event exactly once.
    let mut per_event: BTreeMap<String, (usize, i64)> = BTreeMap::new();
    for request in endpoint.received() {
        let body: Value = serde_json::from_str(&request.body).unwrap();
        let entry = per_event
            .entry(request.headers["webhook-id"].clone())
            .or_insert((0, body["payment_id"].as_i64().unwrap()));
        entry.0 += 1;
    }
    let repeated: Vec<_> = per_event.iter().filter(|(_, (n, _))| *n != 1).collect();
    assert!(
        repeated.is_empty(),
        "delivered more than once: {repeated:?}"
    );
    let mut delivered: Vec<i64> = per_event.values().map(|(_, id)| *id).collect();
    delivered.sort();
    assert_eq!(delivered, ids, "each payment notified exactly once");
    let events: Vec<String> = rows.iter().map(|r| r.2.to_string()).collect();
    assert!(
        events.iter().all(|e| per_event.contains_key(e)),
        "the webhook-ids are the outbox's event ids"
    );

    // The broker: each row published by one of the hosts, once, unless a
    // notifier deferred it (its merchant over its share of the delivery
    // slots gives the row back, to be published again), which a slow
    // machine makes happen; every extra publication is such a deferral.
    let mut published: BTreeMap<i64, usize> = BTreeMap::new();
    for id in tap.seen() {
        *published.entry(id).or_default() += 1;
    }
    let extra: i64 = published.values().map(|n| *n as i64 - 1).sum();
    let deferred = metric(
        &client,
        &a,
        "paygate_notifier_deliveries_total{outcome=\"deferred\"}",
    )
    .await
        + metric(
            &client,
            &b,
            "paygate_notifier_deliveries_total{outcome=\"deferred\"}",
        )
        .await;
    let twice: Vec<_> = published.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        extra <= deferred,
        "published more than once without a deferral ({deferred} deferred): {twice:?}"
    );
    let mut outbox_ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    outbox_ids.sort();
    assert_eq!(
        published.keys().copied().collect::<Vec<_>>(),
        outbox_ids,
        "every row published"
    );

    // And what the hosts say they did, together.
    let mut split = Vec::new();
    for host in [&a, &b] {
        let counts = (
            metric(&client, host, "paygate_outbox_published_total").await,
            metric(
                &client,
                host,
                "paygate_notifier_deliveries_total{outcome=\"delivered\"}",
            )
            .await,
            metric(
                &client,
                host,
                "paygate_notifier_deliveries_total{outcome=\"duplicate\"}",
            )
            .await,
        );
        split.push(counts);
    }
    println!(
        "replicas: {PAYMENTS} payments created and settled in {settled_in:?}, all delivered {took:?} later; \
         (published, delivered, duplicates dropped) per host {split:?}; test took {:?}",
        started.elapsed()
    );
    let sum = split
        .iter()
        .fold((0, 0, 0), |s, c| (s.0 + c.0, s.1 + c.1, s.2 + c.2));
    assert_eq!(sum, (PAYMENTS, PAYMENTS, 0), "{}", logs(&[&a, &b]));
}

#[tokio::test]
async fn quota_holds_across_replicas() {
    let started = Instant::now();
    let services = Services::start("replicas_quota", NO_GATEWAY).await;
    let merchant = new_merchant(&services.setup.merchants, 20, false).await;
    let shared = services.shared(
        &standard_plugins(&services.sandbox_addr, LAX_RATE_LIMIT),
        &[],
    );
    let (a, b) = two_hosts(&shared).await;
    let ready = started.elapsed();
    let client = reqwest::Client::new();

    // 60 creates at once, 30 on each host, for different orders, most of
    // them meeting a nearly spent subscription: every answer is 200 or 429.
    let calls: Vec<_> = (1..=60)
        .map(|order: i64| {
            let host = if order % 2 == 0 { &a } else { &b };
            let (client, url, name) = (client.clone(), host.url.clone(), host.name.clone());
            let (key, sub) = (merchant.api_key.clone(), merchant.subscription_id);
            tokio::spawn(async move {
                let r = client
                    .post(format!("{url}/api/v1/payments"))
                    .header("x-api-key", &key)
                    .json(&json!({"order_id": order, "amount": 1, "price": "1.00",
                                  "alias": "sandbox", "subscription_id": sub}))
                    .send()
                    .await
                    .unwrap();
                (name, reply(r).await)
            })
        })
        .collect();
    let mut created: BTreeMap<String, usize> = BTreeMap::new();
    let mut refused = 0;
    for call in calls {
        let (host, r) = call.await.unwrap();
        match (r.status, r.code()) {
            (200, _) => *created.entry(host).or_default() += 1,
            (429, "quota_exceeded") => refused += 1,
            _ => panic!("{host}: {} {:?}\n{}", r.status, r.body, logs(&[&a, &b])),
        }
    }
    println!(
        "replicas quota: created per host {created:?}, {refused} refused; \
         hosts ready after {ready:?}, test took {:?}",
        started.elapsed()
    );
    assert_eq!(created.values().sum::<usize>(), 20, "{created:?}");
    assert_eq!(refused, 40);
    let used = services
        .setup
        .merchants
        .tokens_used(merchant.subscription_id)
        .await
        .unwrap();
    let rows = services
        .count(
            "SELECT count(*) FROM payments WHERE merchant_id = $1",
            Some(merchant.merchant_id.get()),
        )
        .await;
    assert_eq!((used, rows), (20, 20), "tokens used and payment rows");
    // The 61st, on either host, is refused too.
    for (order, host) in [(61, &a), (62, &b)] {
        let r = create(&client, host, &merchant, "sandbox", order).await;
        assert_eq!(
            (r.status, r.code()),
            (429, "quota_exceeded"),
            "{}",
            host.name
        );
    }
}

/// The per-key bucket of the rate-limit test: `KEY_BURST` at once, then
/// one request every five seconds. The per-IP bucket never binds.
const KEY_BURST: f64 = 20.0;
const KEY_RATE: f64 = 0.2;

/// Requests of the rate-limit test, half on each host: more than a bucket
/// per host would let through.
const RATE_REQUESTS: usize = 100;

#[tokio::test]
async fn rate_limits_hold_across_replicas() {
    let started = Instant::now();
    let services = Services::start("replicas_rate", NO_GATEWAY).await;
    let spec = format!(
        "[config]\nip-rate = \"100000\"\nip-burst = \"100000\"\nkey-rate = \"{KEY_RATE}\"\nkey-burst = \"{KEY_BURST}\"\n"
    );
    let shared = services.shared(&standard_plugins(&services.sandbox_addr, &spec), &[]);
    let (a, b) = two_hosts(&shared).await;
    let client = reqwest::Client::new();
    let read_key = services.setup.merchant.read_api_key.clone();

    // Reads with one key, alternating between the hosts.
    let (hosts, client_ref, key_ref) = ([&a, &b], &client, &read_key);
    let sent = Instant::now();
    let replies: Vec<(usize, Reply)> = futures_util::stream::iter(0..RATE_REQUESTS)
        .map(|i| async move {
            let host = hosts[i % 2];
            let r = client_ref
                .get(format!("{}/api/v1/payments", host.url))
                .header("x-api-key", key_ref)
                .send()
                .await
                .unwrap();
            (i % 2, reply(r).await)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let elapsed = sent.elapsed();

    let mut allowed = [0usize; 2];
    let mut limited = [0usize; 2];
    for (host, r) in &replies {
        match (r.status, r.code()) {
            (200, _) => allowed[*host] += 1,
            (429, "rate_limited") => {
                limited[*host] += 1;
                assert_eq!(r.headers["ratelimit-limit"], KEY_BURST.to_string().as_str());
                assert!(r.headers.contains_key("retry-after"));
            }
            _ => panic!("{} {:?}\n{}", r.status, r.body, logs(&[&a, &b])),
        }
    }
    let total: usize = allowed.iter().sum();
    // One bucket for both hosts, and exact: its burst and what it refilled
    // while the requests ran, nothing more. Each request takes its token in
    // one atomic step in Redis (`counters.take`, WIT 0.3.0), so requests
    // racing on the key cannot overdraw it; the one token of slack is the
    // refill's rounding at the edges of the measured time. (Before `take`,
    // requests that kept losing a get/compare-and-swap race were let
    // through: up to one per request in flight more.)
    let global = KEY_BURST + KEY_RATE * elapsed.as_secs_f64() + 1.0;
    // A bucket per host would let each host's requests take its own burst.
    let per_host = 2.0 * KEY_BURST;
    println!(
        "replicas rate limit: allowed per host {allowed:?}, limited {limited:?} in {elapsed:?}; \
         one shared bucket allows at most {global:.1}, a bucket per host at least {per_host}; test took {:?}",
        started.elapsed()
    );
    assert!(
        total as f64 >= KEY_BURST,
        "the shared bucket's burst was allowed ({total})"
    );
    assert!(
        (total as f64) <= global,
        "allowed {total} > {global:.1}: the hosts do not share the limit"
    );
    assert!(
        (total as f64) < per_host,
        "allowed {total}: as many as per-host buckets would"
    );
    assert!(
        limited.iter().all(|n| *n > 0),
        "both hosts limit: {limited:?}"
    );
}

/// The spec of a provider adapter calling the sandbox at `addr`.
fn provider_spec(addr: &str) -> PluginSpec {
    PluginSpec::from_toml(&crate::api::app::provider_spec(addr)).unwrap()
}

/// (version, digest, calls) of plugin `name` as `host` serves it.
async fn serving(
    client: &reqwest::Client,
    host: &HostProcess,
    name: &str,
) -> Option<(String, String, u64)> {
    let listed: Value = client
        .get(format!("{}/admin/v1/plugins", host.admin_url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let plugin = listed["plugins"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)?
        .clone();
    Some((
        plugin["version"].as_str()?.to_owned(),
        plugin["digest"].as_str()?.to_owned(),
        plugin["calls"].as_u64()?,
    ))
}

/// Waits until both hosts serve `version` of `stripe` with `digest`; a
/// payment through each then runs on that version.
async fn both_serve(
    client: &reqwest::Client,
    hosts: [&HostProcess; 2],
    merchant: &CreatedMerchant,
    order: &mut i64,
    version: &str,
    digest: &str,
) {
    for host in hosts {
        wait_until(
            &format!("{} serving stripe@{version}", host.name),
            EVENTUALLY,
            || async {
                serving(client, host, "stripe")
                    .await
                    .is_some_and(|(v, d, _)| v == version && d == digest)
            },
        )
        .await;
    }
    for host in hosts {
        *order += 1;
        let r = create(client, host, merchant, "stripe", *order).await;
        assert_eq!(r.status, 200, "{}: {:?}", host.name, r.body);
        let (v, d, calls) = serving(client, host, "stripe").await.unwrap();
        assert_eq!((v.as_str(), d.as_str()), (version, digest), "{}", host.name);
        assert!(calls >= 1, "{}: stripe@{version} served no call", host.name);
    }
}

#[tokio::test]
async fn a_plugin_activation_reaches_both_replicas() {
    let started = Instant::now();
    let services = Services::start("replicas_registry", NO_GATEWAY).await;
    let merchant = services.setup.merchant.clone();
    let registry_dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(registry_dir.path()).unwrap();
    let release = |version: &str, component: &str, activate: bool| {
        publish(
            &registry,
            Some(CacheLocation {
                dir: cache_dir(),
                key_file: None,
            }),
            PublishRequest {
                name: "stripe".into(),
                version: version.into(),
                bytes: wasm(component),
                spec: provider_spec(&services.sandbox_addr),
                sign_key: None,
                activate,
            },
        )
        .unwrap()
        .digest
        .to_string()
    };
    let first = release("1.0.0", "stripe_adapter", true);

    // The `stripe` alias's plugin comes from the registry alone.
    let plugins: Vec<ExtraPlugin> = standard_plugins(&services.sandbox_addr, LAX_RATE_LIMIT)
        .into_iter()
        .filter(|(name, _, _)| *name != "stripe")
        .collect();
    let mut shared = services.shared(&plugins, &[]);
    shared.registry_dir = Some(registry_dir.path().to_owned());
    let (a, b) = two_hosts(&shared).await;
    let client = reqwest::Client::new();
    let mut order = 0;
    both_serve(&client, [&a, &b], &merchant, &mut order, "1.0.0", &first).await;
    let ready = started.elapsed();

    // 2.0.0 is another component (so another digest) of the same world,
    // published without activating it: neither host changes.
    let second = release("2.0.0", "sandbox_adapter", false);
    assert_ne!(first, second);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for host in [&a, &b] {
        let (version, _, _) = serving(&client, host, "stripe").await.unwrap();
        assert_eq!(
            version, "1.0.0",
            "{} swapped before the activation",
            host.name
        );
    }

    // An operator activates it through replica A's admin API; B follows.
    let activated: Value = client
        .post(format!("{}/admin/v1/plugins/stripe/activate", a.admin_url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"version": "2.0.0"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (activated["from"].as_str(), activated["serving"].as_str()),
        (Some("1.0.0"), Some("2.0.0")),
        "{activated}"
    );
    both_serve(&client, [&a, &b], &merchant, &mut order, "2.0.0", &second).await;
    let activated_at = started.elapsed();

    // And rolls back with the CLI on the registry: both follow.
    let root = registry_dir.path().to_str().unwrap().to_owned();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_paygate"))
        .args(["plugins", "--registry", &root, "rollback", "stripe"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("\"to\": \"1.0.0\""),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    both_serve(&client, [&a, &b], &merchant, &mut order, "1.0.0", &first).await;
    println!(
        "replicas registry: both on 1.0.0 after {ready:?}, on 2.0.0 after {activated_at:?}, \
         back on 1.0.0 after {:?}",
        started.elapsed()
    );
}
