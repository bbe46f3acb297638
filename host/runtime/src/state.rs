//! The data of one call's `Store`: created fresh for every call and dropped
//! with it, so nothing a call leaves behind is seen by the next.

use std::collections::BTreeMap;
use std::sync::Arc;

use paygate_plugin_registry::{Digest, PluginKind};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::allow::AllowList;
use super::limits::{Limits, MemoryLimiter};
use super::services::HostServices;
use super::stdio::CapturedOutput;
use crate::secret::Secret;

/// A loaded plugin's identity, grants and settings, shared by all its calls.
pub struct PluginContext {
    pub name: String,
    pub version: String,
    pub digest: Digest,
    pub kind: PluginKind,
    pub limits: Limits,
    pub allowed_hosts: AllowList,
    pub config: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, Secret>,
    /// The spec's secret references that resolved to nothing (`env:NAME`
    /// unset), so a host can refuse to start without them.
    pub missing_secrets: Vec<String>,
    pub services: Arc<HostServices>,
}

/// A merchant's own account at a provider, for that merchant's calls: each
/// setting it has replaces the plugin's own of that name in the `config`
/// import; the others are the plugin's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Account {
    pub config: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, Secret>,
}

/// Store data of one call.
pub struct CallState {
    /// Built when the guest first calls a WASI interface: a guest that
    /// imports none (the `no_std` token-bucket policy, on every request)
    /// never pays for its clocks, random generators and streams.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) plugin: Arc<PluginContext>,
    /// The merchant's account the call runs with, if any.
    pub(crate) account: Option<Arc<Account>>,
    pub(crate) request_id: Arc<str>,
    pub(crate) log_lines: u32,
    /// The first capability the guest asked for and was refused.
    pub(crate) denied: Option<String>,
    /// Whether a counter operation found the store unreachable: the
    /// host's policy, not the guest, then decides (see `decide_observed`).
    pub(crate) counters_unavailable: bool,
    pub(crate) stderr: CapturedOutput,
}

/// How much of the guest's stderr is kept, to recover panic messages.
const STDERR_CAPTURE_BYTES: usize = 4096;

impl CallState {
    pub fn new(plugin: Arc<PluginContext>, request_id: Arc<str>) -> Self {
        Self {
            wasi: None,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(plugin.limits.memory_bytes),
            plugin,
            account: None,
            request_id,
            log_lines: 0,
            denied: None,
            counters_unavailable: false,
            stderr: CapturedOutput::new(STDERR_CAPTURE_BYTES),
        }
    }

    /// The call runs with the merchant's `account`.
    pub fn with_account(mut self, account: Option<Arc<Account>>) -> Self {
        self.account = account;
        self
    }

    /// Records a refused capability; the call will fail with it whatever
    /// the guest returns.
    pub(crate) fn deny(&mut self, detail: String) {
        tracing::warn!(
            plugin = %self.plugin.name,
            version = %self.plugin.version,
            request_id = %self.request_id,
            %detail,
            "plugin capability denied"
        );
        self.denied.get_or_insert(detail);
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let stderr = &self.stderr;
        // No environment, arguments, directories or sockets: the guest gets
        // only clocks, randomness and a stderr the host reads back.
        let ctx = self.wasi.get_or_insert_with(|| {
            WasiCtx::builder()
                .stderr(stderr.clone())
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .build()
        });
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}
