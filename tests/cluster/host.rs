//! The built `paygate serve` as a process of its own, on fixed loopback
//! ports, so a test can SIGKILL it, start it again on the same ports, or
//! run two side by side on one set of services.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use paygate::config::DatabaseUrls;
use tokio::process::{Child, Command};

use tokio_util::sync::{CancellationToken, DropGuard};

use crate::api::app::{
    ExtraPlugin, LAX_RATE_LIMIT, TestApp, cache_dir, isolated, spawn_app_with, stage_plugins,
};
use crate::faults::services::{free_port, wait_until};

/// The most a host may take to serve after it was started.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// Migrated databases with the aliases bound, a broker namespace, and a
/// sandbox provider, for the host processes of one test.
pub struct Services {
    /// An in-process app, stopped once it had migrated the databases and
    /// bound the aliases; its gateway's pools are the test's handles on the
    /// databases. Its own merchant has 1000 tokens and no callback.
    pub setup: TestApp,
    pub databases: DatabaseUrls,
    pub namespace: String,
    /// `host:port` of the sandbox provider the hosts' adapters call.
    pub sandbox_addr: String,
    _sandbox: DropGuard,
}

impl Services {
    /// `tag` names the databases and namespace; the sandbox provider sends
    /// its webhooks to `gateway_url`.
    pub async fn start(tag: &str, gateway_url: &str) -> Self {
        let (databases, namespace) = isolated(tag).await;
        let (dbs, ns) = (databases.clone(), namespace.clone());
        let mut setup = spawn_app_with(LAX_RATE_LIMIT, Vec::new(), move |mut c| {
            c.databases = dbs;
            c.outbox.namespace = ns;
            c
        })
        .await;
        // It must not serve, publish or deliver next to the hosts.
        setup.shutdown.cancel();
        setup
            .server
            .take()
            .expect("the set-up app runs")
            .await
            .unwrap()
            .unwrap();

        // Its sandbox stopped with it: the hosts get one of their own.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let args = paygate_demo::sandbox::SandboxArgs {
            listen: addr,
            public_url: format!("http://{addr}"),
            gateway_url: gateway_url.to_owned(),
            internal_webhook_secret: paygate::plugins::Secret::new("test-internal-secret"),
            stripe_webhook_secret: paygate::plugins::Secret::new("whsec_test"),
            adyen_api_key: paygate::plugins::Secret::new(paygate::config::TEST_ADYEN_API_KEY),
            adyen_hmac_key: paygate::plugins::Secret::new(paygate::config::TEST_ADYEN_HMAC_KEY),
            max_payments: paygate_demo::sandbox::DEFAULT_MAX_PAYMENTS,
        };
        tokio::spawn(paygate_demo::sandbox::serve(listener, args, stop.clone()));
        Self {
            setup,
            databases,
            namespace,
            sandbox_addr: addr.to_string(),
            _sandbox: stop.drop_guard(),
        }
    }

    /// What every host of this test shares, with `plugins` staged and the
    /// settings `env`.
    pub fn shared(&self, plugins: &[ExtraPlugin], env: &[(&str, &str)]) -> Shared {
        Shared::new(self.databases.clone(), self.namespace.clone(), plugins, env)
    }

    /// A count from the payments database; `$1` is `bind`, if any.
    pub async fn count(&self, sql: &str, bind: Option<i64>) -> i64 {
        let mut query = sqlx::query_scalar::<_, i64>(sql);
        if let Some(value) = bind {
            query = query.bind(value);
        }
        query.fetch_one(&self.setup.dbs.payments).await.unwrap()
    }
}

/// What every host of one test shares: databases, broker namespace, Redis
/// prefix, plugins and settings.
pub struct Shared {
    pub databases: DatabaseUrls,
    pub namespace: String,
    pub redis_prefix: String,
    plugin_dir: tempfile::TempDir,
    /// `paygate plugins` registry the hosts follow instead of the plugin
    /// directory, when set.
    pub registry_dir: Option<PathBuf>,
    /// Settings beyond the defaults below, as environment variables.
    pub env: Vec<(String, String)>,
}

impl Shared {
    /// The test's own databases and namespace (`tag`), with `plugins`
    /// staged in a plugin directory.
    pub fn new(
        databases: DatabaseUrls,
        namespace: String,
        plugins: &[ExtraPlugin],
        env: &[(&str, &str)],
    ) -> Self {
        let plugin_dir = tempfile::tempdir().unwrap();
        stage_plugins(plugin_dir.path(), plugins);
        Self {
            databases,
            redis_prefix: format!("paygate-test-{}:", uuid::Uuid::new_v4()),
            namespace,
            plugin_dir,
            registry_dir: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    pub fn plugin_dir(&self) -> &Path {
        self.plugin_dir.path()
    }
}

/// One `paygate serve` process.
pub struct HostProcess {
    pub url: String,
    pub admin_url: String,
    pub name: String,
    port: u16,
    admin_port: u16,
    log: PathBuf,
    child: Option<Child>,
    /// Times started, the first included.
    pub starts: u32,
}

impl HostProcess {
    /// Starts a host named `name` on free ports and waits until it serves.
    pub async fn start(shared: &Shared, name: &str) -> Self {
        Self::start_on(shared, name, free_port()).await
    }

    /// Starts a host named `name` serving the API on `port`.
    pub async fn start_on(shared: &Shared, name: &str, port: u16) -> Self {
        let admin_port = free_port();
        let log = std::env::temp_dir().join(format!(
            "paygate-test-{}-{name}-{port}.log",
            std::process::id()
        ));
        let mut host = Self {
            url: format!("http://127.0.0.1:{port}"),
            admin_url: format!("http://127.0.0.1:{admin_port}"),
            name: name.to_owned(),
            port,
            admin_port,
            log,
            child: None,
            starts: 0,
        };
        host.restart(shared).await;
        host
    }

    /// Starts the host again on its ports and waits until `/health` is 200.
    pub async fn restart(&mut self, shared: &Shared) {
        assert!(self.child.is_none(), "{} is still running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the host's log file");
        let databases = &shared.databases;
        let mut command = Command::new(env!("CARGO_BIN_EXE_paygate"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("PAYGATE_LISTEN", format!("127.0.0.1:{}", self.port))
            .env(
                "PAYGATE_ADMIN_LISTEN",
                format!("127.0.0.1:{}", self.admin_port),
            )
            .env("PAYGATE_ADMIN_TOKEN", "test-admin-token")
            .env("PAYGATE_PAYMENTS_DATABASE_URL", &databases.payments)
            .env("PAYGATE_MERCHANTS_DATABASE_URL", &databases.merchants)
            .env("PAYGATE_PROVIDERS_DATABASE_URL", &databases.providers)
            .env("PAYGATE_LOGS_DATABASE_URL", &databases.logs)
            .env("PAYGATE_DB_POOL_SIZE", "8")
            .env("PAYGATE_REDIS_PREFIX", &shared.redis_prefix)
            .env("PAYGATE_AMQP_NAMESPACE", &shared.namespace)
            .env("PAYGATE_AMQP_QUEUE_EXPIRES", "600s")
            .env("PAYGATE_SECRETS_KEY", paygate::config::TEST_SECRETS_KEY)
            .env("PAYGATE_INTERNAL_WEBHOOK_SECRET", "test-internal-secret")
            .env("PAYGATE_STRIPE_SECRET_KEY", "sk_test_123")
            .env("PAYGATE_STRIPE_WEBHOOK_SECRET", "whsec_test")
            .env("PAYGATE_PLUGIN_DIR", shared.plugin_dir())
            .env("PAYGATE_PLUGIN_CACHE_DIR", cache_dir())
            .env("PAYGATE_CIRCUIT_COOLDOWN", "500ms")
            .env("PAYGATE_OUTBOX_POLL_INTERVAL", "200ms")
            .env("PAYGATE_OUTBOX_LEASE", "5s")
            .env("PAYGATE_NOTIFIER_RETRY_SCHEDULE", "50ms,100ms")
            .env("PAYGATE_NOTIFIER_TIMEOUT", "2s")
            .env("PAYGATE_ALLOW_PRIVATE_CALLBACKS", "true")
            // Load from one loopback address is not a flood: the webhook
            // limits have tests of their own (api::webhook_guards).
            .env("PAYGATE_WEBHOOK_RATE_PER_IP", "0")
            .env("PAYGATE_WEBHOOK_RATE_PER_ALIAS", "0")
            .env("RUST_LOG", "warn")
            .envs(shared.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the host's log file"))
            .stderr(log)
            .kill_on_drop(true);
        if let Some(registry) = &shared.registry_dir {
            command.env("PAYGATE_REGISTRY_DIR", registry);
        }
        self.child = Some(command.spawn().expect("paygate serve starts"));
        self.starts += 1;
        let (client, health) = (reqwest::Client::new(), format!("{}/health", self.url));
        let what = format!("{} serving (log: {})", self.name, self.log.display());
        wait_until(&what, READY_WITHIN, || {
            let (client, health) = (client.clone(), health.clone());
            let exited = self.exited();
            let what = &what;
            async move {
                assert!(!exited, "{what}: the host exited while starting");
                client
                    .get(&health)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await;
    }

    fn exited(&self) -> bool {
        // `try_wait` needs `&mut`; a missing /proc entry says the same.
        let pid = self.child.as_ref().and_then(Child::id);
        pid.is_none_or(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |stat| stat.split_whitespace().nth(2) == Some("Z"))
        })
    }

    /// SIGKILL: the process ends at once, mid-request, mid-transaction.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("SIGKILL sent");
            child.wait().await.expect("the host is reaped");
        }
    }

    /// SIGTERM, then waits for the graceful shutdown to end.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
            let stopped = tokio::time::timeout(READY_WITHIN, child.wait()).await;
            assert!(stopped.is_ok(), "{} did not stop on SIGTERM", self.name);
        }
    }

    /// The host's log so far (for a failing assertion's message).
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = log.len().saturating_sub(4000);
        log[log.floor_char_boundary(start)..].to_owned()
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
        // A failing test keeps the log for its reader.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}
