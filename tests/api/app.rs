//! `spawn_app()`: one host per test, its own merchant and Redis prefix, over
//! databases shared by this test process.

use std::path::PathBuf;
use std::sync::Arc;

use paygate::config::DatabaseUrls;
use paygate::db::Databases;
use paygate::merchants::{CreatedMerchant, MerchantStore, NewMerchant};
use paygate::outbox::OutboxStore;
use paygate::payments::PaymentStore;
use paygate::payments::create::PaymentsService;
use paygate::payments::store::NewPayment;
use paygate::providers::{AliasBinding, ProviderStore};
use paygate::webhooks::Webhooks;
use paygate::{App, Config};
use paygate::{MerchantId, OrderId, SubscriptionId};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::helpers::wasm;

/// Databases and a broker namespace of their own, for a test that needs
/// no other app's producer or notifier near its rows (`tag` names them).
pub async fn isolated(tag: &str) -> (DatabaseUrls, String) {
    databases().await; // stale ones dropped first
    let urls = database_urls(&format!("paygate_test_{}_{tag}", std::process::id()));
    (urls, format!("paygate_test_{}_{tag}.", std::process::id()))
}

/// A host on the databases and broker namespace of [`isolated`]`(tag)`,
/// with the `extra` plugins: a replica of a host started there before.
pub async fn isolated_app(tag: &str, extra: Vec<ExtraPlugin>) -> TestApp {
    let (databases, namespace) = isolated(tag).await;
    spawn_app_with(LAX_RATE_LIMIT, extra, move |mut c| {
        c.databases = databases;
        c.outbox.namespace = namespace;
        c
    })
    .await
}

/// The four databases named `{prefix}_payments`, ... on the local server.
fn database_urls(prefix: &str) -> DatabaseUrls {
    let base = format!("postgres://postgres@127.0.0.1:5432/{prefix}");
    DatabaseUrls {
        payments: format!("{base}_payments"),
        merchants: format!("{base}_merchants"),
        providers: format!("{base}_providers"),
        logs: format!("{base}_logs"),
    }
}

/// Databases of this test process, created once; stale ones of dead test
/// processes are dropped first.
pub async fn databases() -> DatabaseUrls {
    static ONCE: OnceCell<DatabaseUrls> = OnceCell::const_new();
    ONCE.get_or_init(|| async {
        drop_stale_test_databases().await;
        let urls = database_urls(&format!("paygate_test_{}", std::process::id()));
        // Create and migrate once, before the apps race to.
        paygate::db::Databases::connect_and_migrate(&urls, 2, &Default::default())
            .await
            .expect("test databases");
        urls
    })
    .await
    .clone()
}

async fn drop_stale_test_databases() {
    use sqlx::Connection;
    let Ok(mut admin) =
        sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres").await
    else {
        return;
    };
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'paygate_test_%'")
            .fetch_all(&mut admin)
            .await
            .unwrap_or_default();
    for name in names {
        let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut admin)
                .await;
        }
    }
}

/// Compiled plugin code shared by every app of this process.
/// A sealer of the tests' secrets key, for stores built outside an app.
pub fn test_sealer() -> Arc<paygate::sealing::Sealer> {
    let key = paygate::plugins::Secret::new(paygate::config::TEST_SECRETS_KEY);
    Arc::new(paygate::sealing::Sealer::new(&key, &[]).unwrap())
}

pub fn cache_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("paygate-test-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Extra plugin set-up of a test: (name, component, spec).
pub type ExtraPlugin = (&'static str, &'static str, String);

pub struct TestApp {
    pub url: String,
    /// The creation saga's service, to call with no HTTP in front.
    pub payments: Arc<PaymentsService>,
    /// The app's services underneath the API, for set-up and checks.
    pub dbs: Databases,
    pub merchants: MerchantStore,
    pub providers: Arc<ProviderStore>,
    pub payment_store: PaymentStore,
    pub outbox: OutboxStore,
    /// Receiving provider webhooks, to call with no HTTP in front.
    pub webhooks: Arc<Webhooks>,
    pub merchant: CreatedMerchant,
    pub sandbox_url: String,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Names the app's RabbitMQ connections.
    pub instance: String,
    /// The admin API (token `test-admin-token`).
    pub admin_url: String,
    /// The metrics listener, when the test's config turned it on.
    pub metrics_url: Option<String>,
    _plugin_dir: tempfile::TempDir,
}

impl TestApp {
    /// The plugin directory the app watches.
    pub fn plugin_dir(&self) -> &std::path::Path {
        self._plugin_dir.path()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Rate limits so high no ordinary test meets them.
pub const LAX_RATE_LIMIT: &str = "[config]\nip-rate = \"100000\"\nip-burst = \"100000\"\nkey-rate = \"100000\"\nkey-burst = \"100000\"\n";

/// The plugins every host loads: both provider adapters calling the sandbox
/// provider at `sandbox_addr`, the rate-limit policy with `rate_limit` as
/// its spec, and both webhook verifiers.
pub fn standard_plugins(sandbox_addr: &str, rate_limit: &str) -> Vec<ExtraPlugin> {
    let provider_spec = provider_spec(sandbox_addr);
    vec![
        ("sandbox", "sandbox_adapter", provider_spec.clone()),
        ("stripe", "stripe_adapter", provider_spec),
        ("rate-limit", "token_bucket", rate_limit.to_owned()),
        (
            "internal-webhook",
            "internal_hmac",
            "[secrets]\nwebhook-secret = \"env:INTERNAL_WEBHOOK_SECRET\"\n".to_owned(),
        ),
        (
            "stripe-webhook",
            "stripe_verifier",
            "[secrets]\nwebhook-secret = \"env:STRIPE_WEBHOOK_SECRET\"\n".to_owned(),
        ),
    ]
}

/// The spec of a provider adapter calling the sandbox provider at
/// `sandbox_addr` (host:port), its secret from the environment.
pub fn provider_spec(sandbox_addr: &str) -> String {
    format!(
        "allowed_hosts = [\"{sandbox_addr}\"]\n[config]\nbase-url = \"http://{sandbox_addr}\"\n[secrets]\nsecret-key = \"env:STRIPE_SECRET_KEY\"\n"
    )
}

/// Writes each plugin's component and spec into the plugin directory `dir`.
pub fn stage_plugins(dir: &std::path::Path, plugins: &[ExtraPlugin]) {
    for (name, component, spec) in plugins {
        std::fs::write(dir.join(format!("{name}.wasm")), wasm(component)).unwrap();
        std::fs::write(dir.join(format!("{name}.toml")), spec).unwrap();
    }
}

/// A client that shows redirects instead of following them, as a test
/// clicking a provider's buttons needs.
pub fn clicker() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(LAX_RATE_LIMIT, Vec::new(), |c| c).await
}

/// A host with the given rate-limit spec, extra plugins, and config tweaks.
pub async fn spawn_app_with(
    rate_limit: &str,
    extra: Vec<ExtraPlugin>,
    tweak: impl FnOnce(Config) -> Config,
) -> TestApp {
    spawn_app_staging(rate_limit, |_| extra, tweak).await
}

/// [`spawn_app_with`], the extra plugins made from the sandbox provider's
/// address (host:port), for adapters that call it.
pub async fn spawn_app_staging(
    rate_limit: &str,
    extra: impl FnOnce(&str) -> Vec<ExtraPlugin>,
    tweak: impl FnOnce(Config) -> Config,
) -> TestApp {
    crate::logs::capture();
    let shutdown = CancellationToken::new();
    let sandbox_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox_addr = sandbox_listener.local_addr().unwrap();
    let sandbox_url = format!("http://{sandbox_addr}");

    let dir = tempfile::tempdir().unwrap();
    let mut plugins = standard_plugins(&sandbox_addr.to_string(), rate_limit);
    plugins.extend(extra(&sandbox_addr.to_string()));
    stage_plugins(dir.path(), &plugins);

    let prefix = format!("paygate-test-{}:", uuid::Uuid::new_v4());
    let config = tweak(Config::for_tests(
        databases().await,
        dir.path().to_owned(),
        cache_dir(),
        prefix,
    ));
    let app = App::build(&config).await.expect("building the app");
    let url = format!("http://{}", app.local_addr());
    let services = &app.services;
    let payments = services.payments.clone();
    let (merchants, providers) = (services.merchants.store.clone(), payments.providers.clone());
    let (payment_store, outbox) = (payments.payments.clone(), services.outbox.clone());
    let (webhooks, dbs) = (services.webhooks.clone(), app.dbs.clone());
    let instance = app.instance.clone();
    let admin_url = format!(
        "http://{}",
        app.admin_addr().expect("tests run the admin API")
    );
    let metrics_url = app.metrics_addr().map(|a| format!("http://{a}"));
    let server = Some(tokio::spawn(app.run(shutdown.clone())));

    let sandbox_args = paygate_demo::sandbox::SandboxArgs::signing_as(
        &config,
        sandbox_addr,
        sandbox_url.clone(),
        url.clone(),
    );
    tokio::spawn(paygate_demo::sandbox::serve(
        sandbox_listener,
        sandbox_args,
        shutdown.clone(),
    ));

    for (alias, plugin, verifier) in [
        ("sandbox", "sandbox", "internal-webhook"),
        ("stripe", "stripe", "stripe-webhook"),
    ] {
        bind_verified(&providers, alias, plugin, verifier).await;
    }
    let merchant = new_merchant(&merchants, 1000, false).await;
    TestApp {
        url,
        payments,
        dbs,
        merchants,
        providers,
        payment_store,
        outbox,
        webhooks,
        merchant,
        sandbox_url,
        client: reqwest::Client::new(),
        shutdown,
        server,
        instance,
        admin_url,
        metrics_url,
        _plugin_dir: dir,
    }
}

/// Binds `alias` to provider plugin `plugin` (the alias table is shared by
/// the process's apps; bindings name plugins each app loads itself).
pub async fn bind(providers: &ProviderStore, alias: &str, plugin: &str) {
    bind_binding(
        providers,
        AliasBinding {
            alias: alias.into(),
            provider_plugin: plugin.into(),
            verifier_plugin: None,
            available: true,
        },
    )
    .await;
}

/// Binds `alias` to a provider plugin and its webhook verifier plugin.
pub async fn bind_verified(providers: &ProviderStore, alias: &str, plugin: &str, verifier: &str) {
    let binding = AliasBinding {
        alias: alias.into(),
        provider_plugin: plugin.into(),
        verifier_plugin: Some(verifier.into()),
        available: true,
    };
    bind_binding(providers, binding).await;
}

async fn bind_binding(providers: &ProviderStore, binding: AliasBinding) {
    providers.set(&binding).await.unwrap();
}

pub async fn new_merchant(merchants: &MerchantStore, tokens: i64, signed: bool) -> CreatedMerchant {
    merchant_with(merchants, tokens, signed, None).await
}

/// A merchant whose notifications go to `callback_url`.
pub async fn merchant_with(
    merchants: &MerchantStore,
    tokens: i64,
    signed: bool,
    callback_url: Option<String>,
) -> CreatedMerchant {
    merchants
        .create(&NewMerchant {
            name: "test merchant".into(),
            callback_url,
            tokens,
            currency: "EUR".into(),
            require_signed_writes: signed,
        })
        .await
        .unwrap()
}

/// A payment row of one item at 1 EUR, with no key, URLs or metadata, for
/// a test that writes to the payments database with no create in front.
pub fn new_payment(
    merchant_id: MerchantId,
    order_id: OrderId,
    subscription_id: SubscriptionId,
) -> NewPayment<'static> {
    NewPayment {
        merchant_id,
        order_id,
        subscription_id,
        alias: "sandbox",
        amount: 1.into(),
        price: 1.into(),
        currency: "EUR",
        idempotency_key: None,
        return_url: None,
        cancel_url: None,
        metadata: serde_json::json!({}),
        expires_in: std::time::Duration::from_secs(86_400),
    }
}

/// A response's status, headers and JSON body.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }
}

impl TestApp {
    /// A create body for this app's merchant.
    pub fn body(&self, order_id: i64) -> Value {
        json!({"order_id": order_id, "amount": 1, "price": "10.00", "alias": "sandbox",
               "subscription_id": self.merchant.subscription_id})
    }

    pub async fn post_raw(
        &self,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let mut req = self.client.post(format!("{}{path}", self.url)).body(body);
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        reply(req.send().await.unwrap()).await
    }

    /// POSTs JSON with the merchant's write key.
    pub async fn create(&self, body: &Value) -> Reply {
        let key = self.merchant.api_key.clone();
        self.post_raw(
            "/api/v1/payments",
            Some(&key),
            &[("content-type", "application/json")],
            body.to_string().into_bytes(),
        )
        .await
    }

    /// Starts a create in the background, for requests that must overlap.
    pub fn spawn_create(
        &self,
        body: &Value,
    ) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
        let request = self
            .client
            .post(format!("{}/api/v1/payments", self.url))
            .header("x-api-key", &self.merchant.api_key)
            .json(body);
        tokio::spawn(request.send())
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        let mut req = self.client.get(format!("{}{path}", self.url));
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        reply(req.send().await.unwrap()).await
    }

    /// The event types of a payment's timeline, in order.
    pub async fn timeline_types(&self, id: i64) -> Vec<String> {
        let read = self.merchant.read_api_key.clone();
        let tracked = self
            .get(&format!("/api/v1/payments/{id}/tracking"), Some(&read))
            .await;
        tracked.body["events"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|e| e["event_type"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// An unlabelled counter's value on the admin API's `/metrics`.
    pub async fn metric(&self, name: &str) -> Option<u64> {
        admin_metric(&self.client, &self.admin_url, name).await
    }

    pub async fn tokens_used(&self) -> i64 {
        self.merchants
            .tokens_used(self.merchant.subscription_id)
            .await
            .unwrap()
    }

    pub async fn payment_count(&self) -> i64 {
        self.get("/api/v1/payments", Some(&self.merchant.read_api_key))
            .await
            .body["total"]
            .as_i64()
            .unwrap()
    }
}

/// An unlabelled counter's value on the `/metrics` of the admin API at
/// `admin_url` (token `test-admin-token`).
pub async fn admin_metric(client: &reqwest::Client, admin_url: &str, name: &str) -> Option<u64> {
    let exposition = client
        .get(format!("{admin_url}/metrics"))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("{name} ");
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str())?.trim().parse().ok())
}

/// Reads a response: status, headers, and the body as JSON (or as a string).
pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        headers,
        body,
    }
}
