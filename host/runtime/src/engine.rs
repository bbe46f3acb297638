//! The one wasmtime `Engine` of the host, its linkers, and the epoch ticker
//! that enforces call deadlines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use paygate_plugin_registry::PluginKind;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings;
use super::limits::MAX_MEMORY_BYTES;
use super::state::CallState;

/// How often the epoch advances; deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Bytes of each linear memory and table kept resident between instances.
/// Measured on the token-bucket policy (docs/BENCHMARKS.md): 256 KiB took a
/// fresh-instance call from ~45 µs to ~21 µs; larger values cost more in
/// memset than they save in page faults.
const KEEP_RESIDENT_BYTES: usize = 256 << 10;

/// Engine-wide settings.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Plugin calls that may run at the same time (pool slots).
    pub max_concurrent_calls: u32,
    /// Count fuel, so limits can set a fuel budget.
    pub fuel: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            max_concurrent_calls: 1000,
            fuel: true,
        }
    }
}

/// The engine, one linker per world, and the ticker thread.
pub struct PluginEngine {
    pub engine: Engine,
    provider: Linker<CallState>,
    verifier: Linker<CallState>,
    policy: Linker<CallState>,
    pub fuel: bool,
    _ticker: Ticker,
}

impl PluginEngine {
    pub fn new(settings: &EngineSettings) -> wasmtime::Result<Self> {
        let n = settings.max_concurrent_calls;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n)
            .total_tables(n * 4)
            .total_stacks(n)
            .max_memories_per_component(2)
            .max_tables_per_component(8)
            .max_core_instances_per_component(32)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20)
            .max_memory_size(MAX_MEMORY_BYTES)
            // A fresh instance per call is cheap only if its first pages do
            // not fault in anew each time: keep the low pages of each memory
            // slot (where a small-stack guest's stack, data and first heap
            // pages live) and the top of each fiber stack resident, zeroed
            // by memset on release instead of returned to the kernel.
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES)
            .async_stack_keep_resident(64 << 10)
            // Where the kernel has `PAGEMAP_SCAN` (Linux 6.7 on), reset only
            // the pages a call dirtied instead of memsetting all of the
            // resident bytes: under load that memset was 6% of the host's
            // CPU per show (docs/benchmarks/notes/api.md).
            .pagemap_scan(Enabled::Auto);
        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true)
            .consume_fuel(settings.fuel);
        let engine = Engine::new(&config)?;

        Ok(Self {
            provider: linker::<bindings::provider::ProviderAdapter>(&engine)?,
            verifier: linker::<bindings::verifier::WebhookVerifier>(&engine)?,
            policy: linker::<bindings::policy::RateLimitPolicy>(&engine)?,
            fuel: settings.fuel,
            _ticker: Ticker::start(engine.clone()),
            engine,
        })
    }

    /// The linker that grants exactly the imports of `kind`'s world.
    pub fn linker(&self, kind: PluginKind) -> &Linker<CallState> {
        match kind {
            PluginKind::ProviderAdapter => &self.provider,
            PluginKind::WebhookVerifier => &self.verifier,
            PluginKind::RateLimitPolicy => &self.policy,
        }
    }

    /// A name of everything that makes compiled code valid for this
    /// engine: compiler settings, tunables, features, wasmtime's version.
    pub fn compatibility_key(&self) -> String {
        super::cache::compatibility_key(&self.engine)
    }
}

/// Adds WASI (as the sandbox grants it) and the world's own imports.
fn linker<W: AddToLinker>(engine: &Engine) -> wasmtime::Result<Linker<CallState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    W::add(&mut linker)?;
    Ok(linker)
}

trait AddToLinker {
    fn add(linker: &mut Linker<CallState>) -> wasmtime::Result<()>;
}

impl AddToLinker for bindings::provider::ProviderAdapter {
    fn add(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
        Self::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
    }
}

impl AddToLinker for bindings::verifier::WebhookVerifier {
    fn add(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
        Self::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
    }
}

/// Both `counters` a policy may import: 0.3.0's and 0.1.0's.
impl AddToLinker for bindings::policy::RateLimitPolicy {
    fn add(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
        Self::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
        bindings::counters_v0_1::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
    }
}

/// A thread advancing the engine's epoch every [`EPOCH_TICK`]; stopped on drop.
struct Ticker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("paygate-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        Self {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
