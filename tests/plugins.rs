//! The shipped plugins, loaded into the real runtime and talking to loopback
//! fakes of the providers.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::any;
use futures_util::future::BoxFuture;
use hmac::{Hmac, Mac};
use paygate::RedisCounters;
use paygate::plugins::bindings::{
    Decision, EventStatus, LimitRequest, PaymentRef, ProviderError, VerifyError, WebhookRequest,
};
use paygate::plugins::{Bucket, CounterError, CounterStore, Counters, Taken};
use sha2::Sha256;

use crate::helpers::{FakeServer, Runtime, payment, payment_events};

/// A fake that answers every request with `status` and `body`.
fn canned(status: u16, body: &'static str) -> Router {
    Router::new().fallback(any(move || async move {
        (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            body,
        )
    }))
}

fn stripe_spec(base: &str) -> String {
    let port = base.rsplit(':').next().unwrap();
    format!(
        "version = \"1.0.0\"\nallowed_hosts = [\"127.0.0.1:{port}\"]\n[config]\nbase-url = \"{base}\"\n[secrets]\nsecret-key = \"env:PAYGATE_PLUGIN_SECRET_TEST_STRIPE_KEY\"\n"
    )
}

fn set_test_secrets() {
    // SAFETY: every test sets the same values, so concurrent writers agree.
    unsafe {
        std::env::set_var("PAYGATE_PLUGIN_SECRET_TEST_STRIPE_KEY", "sk_test_123");
        std::env::set_var(
            "PAYGATE_PLUGIN_SECRET_TEST_WEBHOOK_SECRET",
            "whsec_test_secret",
        );
    }
}

#[tokio::test]
async fn stripe_adapter_opens_a_checkout_session() {
    set_test_secrets();
    let fake = FakeServer::start(canned(
        200,
        r#"{"id":"cs_test_1","url":"https://checkout.stripe.com/c/pay/cs_test_1"}"#,
    ))
    .await;
    let rt = Runtime::new();
    let stripe = rt.install("stripe", "stripe_adapter", &stripe_spec(&fake.url()));

    let session = stripe
        .create_payment("req-1", &payment(42, &[]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.reference, "cs_test_1");
    assert_eq!(
        session.payment_url,
        "https://checkout.stripe.com/c/pay/cs_test_1"
    );

    let sent = &fake.requests()[0];
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/v1/checkout/sessions")
    );
    assert_eq!(sent.headers["authorization"], "Bearer sk_test_123");
    assert_eq!(sent.headers["idempotency-key"], "idem-42");
    assert_eq!(sent.headers["x-request-id"], "req-1");
    assert!(sent.headers["content-type"].starts_with("application/x-www-form-urlencoded"));
    let form: Vec<(String, String)> = url_pairs(&sent.body);
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(field("mode"), Some("payment"));
    assert_eq!(field("client_reference_id"), Some("42"));
    assert_eq!(
        field("line_items[0][price_data][unit_amount]"),
        Some("1000")
    );
    assert_eq!(field("line_items[0][price_data][currency]"), Some("eur"));
    assert_eq!(field("metadata[payment_id]"), Some("42"));
}

fn url_pairs(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// A provider's answer (status, body) and the error it must become.
type FailureCase = (u16, &'static str, fn(&ProviderError) -> bool);

#[tokio::test]
async fn stripe_adapter_maps_provider_failures() {
    set_test_secrets();
    let cases: [FailureCase; 4] = [
        (
            402,
            r#"{"error":{"type":"card_error","message":"Your card was declined."}}"#,
            |e| matches!(e, ProviderError::Declined(_)),
        ),
        (
            401,
            r#"{"error":{"type":"invalid_request_error","message":"Invalid API Key"}}"#,
            |e| matches!(e, ProviderError::Misconfigured(_)),
        ),
        (503, r#"{"error":{"message":"down"}}"#, |e| {
            matches!(e, ProviderError::Unavailable(_))
        }),
        (200, r#"not json"#, |e| {
            matches!(e, ProviderError::Unavailable(_))
        }),
    ];
    for (status, body, expected) in cases {
        let fake = FakeServer::start(canned(status, body)).await;
        let rt = Runtime::new();
        let stripe = rt.install("stripe", "stripe_adapter", &stripe_spec(&fake.url()));
        let err = stripe
            .create_payment("r", &payment(1, &[]))
            .await
            .unwrap()
            .unwrap_err();
        assert!(expected(&err), "{status} {body} gave {err:?}");
    }
}

#[tokio::test]
async fn stripe_adapter_without_its_secret_is_misconfigured() {
    let fake = FakeServer::start(canned(200, "{}")).await;
    let rt = Runtime::new();
    let spec = stripe_spec(&fake.url()).replace(
        "PAYGATE_PLUGIN_SECRET_TEST_STRIPE_KEY",
        "PAYGATE_PLUGIN_SECRET_TEST_UNSET",
    );
    let stripe = rt.install("stripe", "stripe_adapter", &spec);
    let err = stripe
        .create_payment("r", &payment(1, &[]))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, ProviderError::Misconfigured(_)), "{err:?}");
    assert!(
        fake.requests().is_empty(),
        "no request may leave without credentials"
    );
}

/// A spec may name only variables meant for plugins: one naming the
/// database URL (or any other process variable) is refused at load, with
/// the plugin and the variable in the error, and nothing is installed.
#[test]
fn a_spec_naming_a_process_variable_not_meant_for_plugins_is_refused() {
    // SAFETY: no other test reads or writes this variable.
    unsafe { std::env::set_var("DATABASE_URL", "postgres://paygate:hunter2@db/payments") };
    let rt = Runtime::new();
    for variable in ["DATABASE_URL", "PATH", "PAYGATE_ADMIN_TOKEN"] {
        let spec = paygate_plugin_registry::PluginSpec::from_toml(&format!(
            "[secrets]\nwebhook-secret = \"env:{variable}\"\n"
        ))
        .unwrap();
        let err = rt
            .set
            .install(
                "stripe-webhook",
                &crate::helpers::wasm("stripe_verifier"),
                &spec,
            )
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stripe-webhook") && err.contains(variable),
            "{variable}: {err}"
        );
        assert!(!err.contains("hunter2"), "the error shows the value: {err}");
        assert!(rt.set.get("stripe-webhook").is_none());
    }
}

#[tokio::test]
async fn sandbox_adapter_creates_a_payment_link() {
    let fake = FakeServer::start(canned(
        201,
        r#"{"id":"pl_9","payment_url":"http://localhost:8002/pay/pl_9"}"#,
    ))
    .await;
    let rt = Runtime::new();
    let port = fake.addr.port();
    let sandbox = rt.install(
        "sandbox",
        "sandbox_adapter",
        &format!(
            "allowed_hosts = [\"127.0.0.1:{port}\"]\n[config]\nbase-url = \"{}\"\n",
            fake.url()
        ),
    );
    let session = sandbox
        .create_payment("r", &payment(9, &[]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (session.reference.as_str(), session.payment_url.as_str()),
        ("pl_9", "http://localhost:8002/pay/pl_9")
    );
    let sent = &fake.requests()[0];
    assert_eq!(sent.path, "/payment-links");
    let body: serde_json::Value = serde_json::from_str(&sent.body).unwrap();
    assert_eq!(body["payment_id"], 9);
    assert_eq!(body["price"], "10.00");
}

fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

fn webhook(headers: &[(&str, &str)], body: &str) -> WebhookRequest {
    WebhookRequest {
        path: "/api/v1/payments/webhook".into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

const VERIFIER_SPEC: &str =
    "[secrets]\nwebhook-secret = \"env:PAYGATE_PLUGIN_SECRET_TEST_WEBHOOK_SECRET\"\n";

#[tokio::test]
async fn stripe_verifier_checks_signature_and_tolerance() {
    set_test_secrets();
    let rt = Runtime::new();
    let verifier = rt.install("stripe-webhook", "stripe_verifier", VERIFIER_SPEC);
    let now = rt.services.clock.now_ms() / 1000;
    let body = r#"{"id":"evt_1","type":"checkout.session.completed","data":{"object":{"id":"cs_1","client_reference_id":"42"}}}"#;
    let sign =
        |t: u64, body: &str| hmac_hex(b"whsec_test_secret", format!("{t}.{body}").as_bytes());

    // Valid, with a second stale v1 beside the good one (secret rotation).
    let header = format!("t={now},v1={},v1={}", "0".repeat(64), sign(now, body));
    let events = payment_events(
        verifier
            .verify("r", &webhook(&[("stripe-signature", &header)], body))
            .await
            .unwrap()
            .unwrap(),
    );
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_id, "evt_1");
    // The session, not the client reference anyone can set.
    assert!(matches!(&events[0].payment, PaymentRef::ProviderReference(s) if s == "cs_1"));
    assert_eq!(events[0].status, EventStatus::Finished);

    // Tampered body.
    let tampered = body.replace("42", "43");
    let out = verifier
        .verify("r", &webhook(&[("stripe-signature", &header)], &tampered))
        .await
        .unwrap();
    assert!(
        matches!(out, Err(VerifyError::InvalidSignature(_))),
        "{out:?}"
    );

    // Correctly signed but too old.
    let old = now - 301;
    let header = format!("t={old},v1={}", sign(old, body));
    let out = verifier
        .verify("r", &webhook(&[("stripe-signature", &header)], body))
        .await
        .unwrap();
    assert!(
        matches!(out, Err(VerifyError::SignatureExpired(_))),
        "{out:?}"
    );

    // Missing and malformed headers.
    for headers in [
        vec![],
        vec![("stripe-signature", "garbage")],
        vec![("stripe-signature", "t=1,v1=zz")],
    ] {
        let out = verifier
            .verify("r", &webhook(&headers, body))
            .await
            .unwrap();
        assert!(
            matches!(out, Err(VerifyError::InvalidSignature(_))),
            "{headers:?}: {out:?}"
        );
    }

    // Expired and failed sessions; untracked event types are acknowledged with no events.
    for (kind, expected) in [
        ("checkout.session.expired", Some(EventStatus::Failed)),
        (
            "checkout.session.async_payment_failed",
            Some(EventStatus::Failed),
        ),
        ("customer.created", None),
    ] {
        let body = body.replace("checkout.session.completed", kind);
        let header = format!("t={now},v1={}", sign(now, &body));
        let events = payment_events(
            verifier
                .verify("r", &webhook(&[("stripe-signature", &header)], &body))
                .await
                .unwrap()
                .unwrap(),
        );
        assert_eq!(events.first().map(|e| e.status), expected, "{kind}");
    }
}

#[tokio::test]
async fn internal_hmac_verifier_accepts_both_header_names() {
    set_test_secrets();
    let rt = Runtime::new();
    let verifier = rt.install("internal", "internal_hmac", VERIFIER_SPEC);
    let body = r#"{"payment_id": 42, "status": "failed"}"#;
    let sig = hmac_hex(b"whsec_test_secret", body.as_bytes());

    for (name, value) in [
        ("x-internal-signature", sig.clone()),
        ("x-provider-signature", sig.to_uppercase()),
    ] {
        let events = payment_events(
            verifier
                .verify("r", &webhook(&[(name, &value)], body))
                .await
                .unwrap()
                .unwrap(),
        );
        assert_eq!(events.len(), 1, "{name}");
        assert!(matches!(events[0].payment, PaymentRef::PaymentId(42)));
        assert_eq!(events[0].status, EventStatus::Failed);
    }
    // The same body always has the same event id, so a replay is recognizable.
    let a = payment_events(
        verifier
            .verify("r", &webhook(&[("x-internal-signature", &sig)], body))
            .await
            .unwrap()
            .unwrap(),
    );
    let b = payment_events(
        verifier
            .verify("r", &webhook(&[("x-internal-signature", &sig)], body))
            .await
            .unwrap()
            .unwrap(),
    );
    assert_eq!(a[0].event_id, b[0].event_id);

    let wrong = hmac_hex(b"another secret", body.as_bytes());
    let out = verifier
        .verify("r", &webhook(&[("x-internal-signature", &wrong)], body))
        .await
        .unwrap();
    assert!(
        matches!(out, Err(VerifyError::InvalidSignature(_))),
        "{out:?}"
    );
    let out = verifier
        .verify("r", &webhook(&[("x-internal-signature", &sig[..20])], body))
        .await
        .unwrap();
    assert!(
        matches!(out, Err(VerifyError::InvalidSignature(_))),
        "truncated: {out:?}"
    );

    let unknown = r#"{"payment_id": 42, "status": "refunded"}"#;
    let sig = hmac_hex(b"whsec_test_secret", unknown.as_bytes());
    let out = verifier
        .verify("r", &webhook(&[("x-internal-signature", &sig)], unknown))
        .await
        .unwrap();
    assert!(matches!(out, Err(VerifyError::Malformed(_))), "{out:?}");
}

fn limit_request(ip: &str, key: Option<&str>) -> LimitRequest {
    LimitRequest {
        route: "/api/v1/payments".into(),
        method: "POST".into(),
        client_ip: ip.into(),
        merchant_id: None,
        key_id: key.map(str::to_owned),
    }
}

async fn decide(rt: &Runtime, request: &LimitRequest) -> Decision {
    rt.set
        .require("rate-limit")
        .unwrap()
        .decide("r", request)
        .await
        .unwrap()
}

/// The policy runs in a fresh sandbox on every merchant request. Built
/// without Rust's `std`, it imports only what its world grants, so the host
/// instantiates and tears down no WASI interfaces for it on each call (with
/// `std` it imported thirteen: stdio, terminals, environment, exit, streams).
#[test]
fn the_token_bucket_imports_only_its_worlds_interfaces() {
    let engine = wasmtime::Engine::default();
    let component =
        wasmtime::component::Component::new(&engine, crate::helpers::wasm("token_bucket")).unwrap();
    let mut imports: Vec<String> = component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    imports.sort();
    assert_eq!(
        imports,
        [
            "paygate:plugins/config@0.1.0",
            "paygate:plugins/counters@0.3.0",
            "paygate:plugins/log@0.1.0",
        ]
    );
}

const POLICY_SPEC: &str =
    "[config]\nip-rate = \"20\"\nip-burst = \"40\"\nkey-rate = \"5\"\nkey-burst = \"10\"\n";

#[tokio::test]
async fn token_bucket_allows_the_burst_then_refills() {
    let rt = Runtime::new();
    rt.install("rate-limit", "token_bucket", POLICY_SPEC);
    let ip = limit_request("203.0.113.7", None);
    for i in 0..40 {
        let d = decide(&rt, &ip).await;
        assert!(d.allowed, "request {i} denied: {d:?}");
        assert_eq!(d.remaining, 39 - i);
    }
    let denied = decide(&rt, &ip).await;
    assert!(!denied.allowed);
    assert_eq!(denied.limit, 40);
    let wait = denied.retry_after_ms.expect("retry-after");
    assert!((1..=50).contains(&wait), "retry after {wait} ms at 20/s");
    // Another client is unaffected.
    assert!(
        decide(&rt, &limit_request("198.51.100.1", None))
            .await
            .allowed
    );
    // One emission interval later, one more request fits.
    rt.services.clock.set_ms(rt.services.clock.now_ms() + 50);
    assert!(decide(&rt, &ip).await.allowed);
    assert!(!decide(&rt, &ip).await.allowed);
}

#[tokio::test]
async fn token_bucket_limits_per_key_across_addresses() {
    let rt = Runtime::new();
    rt.install("rate-limit", "token_bucket", POLICY_SPEC);
    for i in 0..10 {
        let d = decide(&rt, &limit_request(&format!("10.0.0.{i}"), Some("key-a"))).await;
        assert!(d.allowed, "request {i}: {d:?}");
    }
    let d = decide(&rt, &limit_request("10.0.1.1", Some("key-a"))).await;
    assert!(!d.allowed && d.limit == 10, "{d:?}");
    assert!(
        decide(&rt, &limit_request("10.0.1.1", Some("key-b")))
            .await
            .allowed
    );
}

#[tokio::test]
async fn token_bucket_limits_hold_across_replicas_through_redis() {
    let prefix = test_prefix();
    let connect = || async {
        Counters::Shared(std::sync::Arc::new(
            RedisCounters::connect("redis://127.0.0.1:6379", &prefix)
                .await
                .expect("redis"),
        ))
    };
    // Two runtimes stand for two host processes sharing one Redis.
    let a = Runtime::with_counters(connect().await);
    let b = Runtime::with_counters(connect().await);
    a.install("rate-limit", "token_bucket", POLICY_SPEC);
    b.install("rate-limit", "token_bucket", POLICY_SPEC);
    let ip = limit_request("192.0.2.1", None);
    let mut allowed = 0;
    for i in 0..60 {
        let rt = if i % 2 == 0 { &a } else { &b };
        if decide(rt, &ip).await.allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 40, "the burst is shared, not per replica");
}

/// A counter store that counts the calls reaching the store behind it:
/// each is one round trip to Redis.
struct RoundTrips {
    inner: RedisCounters,
    calls: std::sync::atomic::AtomicUsize,
}

impl RoundTrips {
    fn one(&self) {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl CounterStore for RoundTrips {
    fn increment<'a>(
        &'a self,
        key: &'a str,
        delta: i64,
        window_ms: u64,
    ) -> BoxFuture<'a, Result<(i64, u64), CounterError>> {
        self.one();
        self.inner.increment(key, delta, window_ms)
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<i64>, CounterError>> {
        self.one();
        self.inner.get(key)
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<i64>,
        new: i64,
        ttl_ms: u64,
    ) -> BoxFuture<'a, Result<bool, CounterError>> {
        self.one();
        self.inner.compare_and_swap(key, expected, new, ttl_ms)
    }

    fn take<'a>(
        &'a self,
        buckets: &'a [Bucket],
        now_us: i64,
    ) -> BoxFuture<'a, Result<Vec<Taken>, CounterError>> {
        self.one();
        self.inner.take(buckets, now_us)
    }
}

/// A key prefix of its own for one test.
fn test_prefix() -> String {
    format!("paygate-test-{}-{}:", std::process::id(), rand_suffix())
}

/// A Redis counter store under `prefix`: two with one prefix are two
/// replicas sharing their counters.
async fn redis_counters(prefix: &str) -> RedisCounters {
    RedisCounters::connect("redis://127.0.0.1:6379", prefix)
        .await
        .expect("redis")
}

#[tokio::test]
async fn the_token_bucket_costs_one_round_trip_per_request_for_both_buckets() {
    let store = std::sync::Arc::new(RoundTrips {
        inner: redis_counters(&test_prefix()).await,
        calls: Default::default(),
    });
    let rt = Runtime::with_counters(Counters::Shared(store.clone()));
    rt.install("rate-limit", "token_bucket", POLICY_SPEC);
    let plugin = rt.set.require("rate-limit").unwrap();
    assert_eq!(plugin.wit_version(), "0.3.0");
    let keyed = limit_request("192.0.2.9", Some("key-rt"));
    for i in 0..12 {
        let d = decide(&rt, &keyed).await;
        // The key bucket (burst 10) binds: its tokens, then a refusal.
        assert_eq!(d.allowed, i < 10, "request {i}: {d:?}");
        assert_eq!(d.limit, 10);
    }
    assert_eq!(
        store.calls.load(std::sync::atomic::Ordering::Relaxed),
        12,
        "one store call per request, for the IP and the key bucket together"
    );
}

#[tokio::test]
async fn take_answers_in_redis_as_the_host_computes_it() {
    // The same takes, at the same instants, in memory (the host's GCRA in
    // Rust) and in Redis (the Lua script): the same answers, one by one.
    let memory = Counters::memory();
    let redis = Counters::Shared(std::sync::Arc::new(redis_counters(&test_prefix()).await));
    let now = 1_800_000_000_000_000_i64;
    let ip = Bucket {
        key: "ip".into(),
        interval_us: 333_333,
        burst: 3,
    };
    let key = Bucket {
        key: "key".into(),
        interval_us: 50_000,
        burst: 2,
    };
    let both = [ip.clone(), key.clone()];
    let script: Vec<(i64, &[Bucket])> = vec![
        (0, &both),
        (0, &both),
        (1, &both), // the key bucket is empty: refused there
        (49_999, std::slice::from_ref(&key)),
        (50_000, &both),
        (60_000, &both), // the IP bucket is empty: the key is not charged
        (60_000, std::slice::from_ref(&key)),
        (400_000, &both),
        (5_000_000, &both), // both full again after idling
    ];
    for (step, (at, buckets)) in script.into_iter().enumerate() {
        let in_memory = memory.take(buckets, now + at).await.unwrap();
        let in_redis = redis.take(buckets, now + at).await.unwrap();
        assert_eq!(in_redis, in_memory, "step {step} at +{at} µs");
    }
    // Redis keeps the TAT as a 0.1.0 policy's compare-and-swap does.
    assert_eq!(
        redis.get("ip").await.unwrap(),
        memory.get("ip").await.unwrap()
    );
    assert_eq!(redis.get("ip").await.unwrap(), Some(now + 5_333_333));
}

#[tokio::test]
async fn racing_takes_from_two_replicas_never_overdraw_a_bucket() {
    // 200 takes at once from two connections (two replicas), at one instant,
    // on a bucket of 50: exactly 50 pass. A read-then-swap loop lets
    // requests that lose every race through, so it passes more.
    let prefix = test_prefix();
    let a = std::sync::Arc::new(redis_counters(&prefix).await);
    let b = std::sync::Arc::new(redis_counters(&prefix).await);
    let (a, b) = (Counters::Shared(a), Counters::Shared(b));
    let hot = [Bucket {
        key: "hot".into(),
        interval_us: 3_600_000_000,
        burst: 50,
    }];
    let now = 1_800_000_000_000_000_i64;
    let takes = (0..200).map(|i| {
        let replica = if i % 2 == 0 { &a } else { &b };
        replica.take(&hot, now)
    });
    let answers = futures_util::future::join_all(takes).await;
    let allowed = answers
        .iter()
        .filter(|t| t.as_ref().unwrap()[0].allowed)
        .count();
    assert_eq!(allowed, 50);
}

#[tokio::test]
async fn concurrent_takes_share_a_script_call_and_answer_as_if_alone() {
    let redis = std::sync::Arc::new(redis_counters(&test_prefix()).await);
    let store = Counters::Shared(redis.clone());
    let now = 1_800_000_000_000_000_i64;
    let bucket = |key: &str, burst| Bucket {
        key: key.into(),
        interval_us: 3_600_000_000,
        burst,
    };
    // A bucket already empty: a take that names it first stops there.
    let empty = bucket("empty", 1);
    assert!(store.take(std::slice::from_ref(&empty), now).await.unwrap()[0].allowed);
    let calls_before = redis.take_stats().calls.get();

    // 40 takes at once: each its own fresh bucket, then a shared one of 10;
    // 8 more name the empty bucket first, then a fresh one.
    let shared = bucket("shared", 10);
    let owns: Vec<[Bucket; 2]> = (0..40)
        .map(|i| [bucket(&format!("own-{i}"), 3), shared.clone()])
        .collect();
    let blocked: Vec<[Bucket; 2]> = (0..8)
        .map(|i| [empty.clone(), bucket(&format!("spared-{i}"), 3)])
        .collect();
    let (owned, refused) = futures_util::future::join(
        futures_util::future::join_all(owns.iter().map(|b| store.take(b, now))),
        futures_util::future::join_all(blocked.iter().map(|b| store.take(b, now))),
    )
    .await;

    let mut shared_allowed = 0;
    for (i, answer) in owned.into_iter().enumerate() {
        let answer = answer.unwrap();
        assert_eq!(answer.len(), 2, "take {i}: both buckets answered");
        assert!(
            answer[0].allowed && answer[0].remaining == 2,
            "take {i}: {answer:?}"
        );
        if answer[1].allowed {
            // In order: the k-th allowed take leaves 10 - k tokens.
            shared_allowed += 1;
            assert_eq!(answer[1].remaining, 10 - shared_allowed, "take {i}");
        } else {
            assert_eq!(answer[1].retry_after_ms, Some(3_600_000), "take {i}");
        }
    }
    assert_eq!(shared_allowed, 10, "the shared bucket's burst, no more");
    // Stored once at the end of the batch: the TAT after its ten tokens.
    assert_eq!(
        store.get("shared").await.unwrap(),
        Some(now + 10 * 3_600_000_000)
    );
    for answer in refused {
        let answer = answer.unwrap();
        assert_eq!(answer.len(), 1, "stopped at the empty bucket: {answer:?}");
        assert!(!answer[0].allowed);
    }
    // The buckets after a refusal were not charged.
    for i in 0..8 {
        let spared = bucket(&format!("spared-{i}"), 3);
        let answer = store.take(&[spared], now).await.unwrap();
        assert_eq!(
            answer[0].remaining, 2,
            "spared-{i} still full before this take"
        );
    }

    let stats = redis.take_stats();
    let calls = stats.calls.get() - calls_before;
    // The 8 takes of the spared buckets went one by one; the 48 sent at
    // once were all queued before the sending task ran (one thread).
    assert!(
        calls <= 8 + 2,
        "56 takes in {calls} script calls: the concurrent ones were not batched"
    );
}

#[tokio::test]
async fn a_wit_0_1_policy_is_still_served_beside_0_3() {
    let rt = Runtime::with_counters(Counters::Shared(std::sync::Arc::new(
        redis_counters(&test_prefix()).await,
    )));
    let spec = "[config]\nlimit = \"3\"\nwindow-ms = \"3600000\"\n";
    rt.install("old-limit", "legacy_window", spec);
    let plugin = rt.set.require("old-limit").unwrap();
    assert_eq!(plugin.wit_version(), "0.1.0");
    let ip = limit_request("198.51.100.9", None);
    let mut allowed = 0;
    for _ in 0..5 {
        if plugin.decide("r", &ip).await.unwrap().allowed {
            allowed += 1;
        }
    }
    // Five requests within an hour's window of three.
    assert_eq!(allowed, 3);
}

#[tokio::test]
async fn a_remembered_read_never_makes_a_stale_swap_succeed() {
    let prefix = test_prefix();
    let a = RedisCounters::connect("redis://127.0.0.1:6379", &prefix)
        .await
        .unwrap();
    let b = RedisCounters::connect("redis://127.0.0.1:6379", &prefix)
        .await
        .unwrap();
    let (a, b) = (
        Counters::Shared(std::sync::Arc::new(a)),
        Counters::Shared(std::sync::Arc::new(b)),
    );
    assert_eq!(a.get("k").await.unwrap(), None); // a remembers "absent"
    assert!(b.compare_and_swap("k", None, 5, 60_000).await.unwrap());
    // a's read is stale; its swap is checked in Redis, fails, and teaches
    // it the current value, with which the next swap succeeds.
    assert_eq!(a.get("k").await.unwrap(), None);
    assert!(!a.compare_and_swap("k", None, 1, 60_000).await.unwrap());
    assert_eq!(a.get("k").await.unwrap(), Some(5));
    assert!(a.compare_and_swap("k", Some(5), 6, 60_000).await.unwrap());
    assert!(!b.compare_and_swap("k", Some(5), 7, 60_000).await.unwrap());
    assert_eq!(b.get("k").await.unwrap(), Some(6));
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}
