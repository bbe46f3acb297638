//! Every setting of `paygate serve`, from flags or environment variables,
//! with defaults that run on a developer machine.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Settings of the server.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Address the merchant API listens on.
    #[arg(long, env = "PAYGATE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Directory of plugins (`<name>.wasm` + `<name>.toml`), watched for changes.
    #[arg(long, env = "PAYGATE_PLUGIN_DIR", default_value = ".paygate/plugins")]
    pub plugin_dir: PathBuf,

    /// Where compiled plugin code is cached, keyed by digest and engine settings.
    #[arg(
        long,
        env = "PAYGATE_PLUGIN_CACHE_DIR",
        default_value = ".paygate/cache"
    )]
    pub plugin_cache_dir: PathBuf,

    /// Redis, for rate-limit counters shared by every replica.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Prefix of every Redis key this host writes.
    #[arg(long, env = "PAYGATE_REDIS_PREFIX", default_value = "paygate:")]
    pub redis_prefix: String,

    /// Plugin calls that may run at once.
    #[arg(
        long,
        env = "PAYGATE_PLUGIN_MAX_CONCURRENT_CALLS",
        default_value_t = 1000
    )]
    pub plugin_max_concurrent_calls: u32,

    /// Demo mode: permissive defaults for a local try-out.
    #[arg(long)]
    pub demo: bool,
}

impl Config {
    /// Settings for tests: port 0 and the given directories.
    pub fn for_tests(plugin_dir: PathBuf, plugin_cache_dir: PathBuf) -> Self {
        Self {
            listen: "127.0.0.1:0".parse().expect("static address"),
            plugin_dir,
            plugin_cache_dir,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_prefix: format!("paygate-test-{}:", std::process::id()),
            plugin_max_concurrent_calls: 200,
            demo: false,
        }
    }
}
