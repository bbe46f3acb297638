//! Wiring settings into a running server.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::{AppState, router};
use crate::plugins::counters::RedisCounters;
use crate::plugins::{
    Counters, EngineSettings, HostServices, Loader, PluginDir, PluginEngine, PluginSet,
};

/// A built server: listener bound, plugins loaded, not yet serving.
pub struct App {
    listener: TcpListener,
    pub plugins: Arc<PluginSet>,
    plugin_dir: PluginDir,
}

impl App {
    /// Binds the listener (port 0 picks a free one), loads the plugin
    /// directory. Plugins that fail to load are logged and listed, not fatal.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let engine = PluginEngine::new(&EngineSettings {
            max_concurrent_calls: config.plugin_max_concurrent_calls,
            ..Default::default()
        })
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .context("creating the WebAssembly engine")?;
        let counters = RedisCounters::connect(
            &config.redis_url,
            &format!("{}counters:", config.redis_prefix),
        )
        .await
        .with_context(|| format!("connecting to Redis at REDIS_URL={}", config.redis_url))?;
        let services = HostServices::new(Counters::Redis(counters));
        let loader = Loader::new(
            Arc::new(engine),
            services,
            Some(config.plugin_cache_dir.clone()),
        );
        let plugins = Arc::new(PluginSet::new(loader));

        std::fs::create_dir_all(&config.plugin_dir).with_context(|| {
            format!(
                "creating PAYGATE_PLUGIN_DIR={}",
                config.plugin_dir.display()
            )
        })?;
        let plugin_dir = PluginDir::new(&config.plugin_dir);
        let dir = plugin_dir.clone();
        let set = plugins.clone();
        let failures = tokio::task::spawn_blocking(move || dir.load_all(&set))
            .await?
            .with_context(|| {
                format!("reading PAYGATE_PLUGIN_DIR={}", config.plugin_dir.display())
            })?;
        for failure in failures {
            tracing::error!(error = %failure, "plugin not loaded at start");
        }

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding PAYGATE_LISTEN={}", config.listen))?;
        Ok(Self {
            listener,
            plugins,
            plugin_dir,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight requests.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let addr = self.local_addr();
        let watcher = self
            .plugin_dir
            .watch(self.plugins.clone(), shutdown.clone())?;
        let app = router(AppState {
            plugins: self.plugins.clone(),
        });
        tracing::info!(%addr, "paygate serving");
        axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await?;
        shutdown.cancel();
        let _ = watcher.await;
        tracing::info!("paygate stopped");
        Ok(())
    }
}
