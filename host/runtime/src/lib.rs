//! paygate-runtime: the sandbox that paygate's plugins run in. Provider
//! adapters, webhook verifiers and rate-limit policies are WebAssembly
//! components behind the WIT contract in `wit/`; this crate knows nothing
//! of HTTP servers, databases or brokers, so the gateway, the plugin
//! harness and benchmarks all share it.
//!
//! Layout:
//! - [`PluginEngine`] (`engine`) owns the one wasmtime engine (pooling
//!   allocator, epoch deadlines, fuel) and a linker per world.
//! - [`Loader`] (`loader`) turns bytes and a spec into a type-checked
//!   [`LoadedPlugin`] (`loaded`), caching compiled code by digest in an
//!   authenticated compile cache (`cache`); `limits` and `allow` are what a
//!   spec grants.
//! - Every call (`call`) runs in a fresh store (`state`) with its own limits;
//!   the guest's output is captured (`stdio`), its failures named (`error`).
//! - Host capabilities live in `imports/`, one file per WIT interface, over
//!   the [`HostServices`] (`services`): HTTP client, [`Counters`] and clock.
//! - [`PluginSet`] (`set`) holds the serving versions and swaps them
//!   atomically; [`PluginDir`] (`watch`) and [`RegistrySource`] (`registry`)
//!   hot-reload them; `operator` publishes to a registry.
//! - [`bindings`] is the generated WIT types; [`Secret`] and [`Histogram`]
//!   are small shared values.

pub mod bindings;

mod allow;
mod cache;
mod call;
mod counters;
mod engine;
mod error;
mod imports;
mod limits;
mod loaded;
mod loader;
mod operator;
mod outbound;
mod registry;
mod secret;
mod services;
mod set;
mod state;
mod stats;
mod stdio;
mod watch;

pub use cache::{CacheLocation, CacheStats};
pub use call::{CallStats, Caller, Decided};
pub use counters::{
    Bucket, CounterError, CounterStore, Counters, Expiring, MemoryCounters, Taken, gcra,
};
pub use engine::{EngineSettings, PluginEngine};
pub use error::{LoadError, PluginError};
pub use limits::{Limits, MAX_MEMORY_BYTES};
pub use loaded::{LoadedPlugin, PluginStats};
pub use loader::{CodeSource, CompiledComponent, Loader, SECRET_ENV_PREFIX};
pub use operator::{PublishRequest, publish};
pub use outbound::HttpClient;
pub use registry::RegistrySource;
pub use secret::Secret;
pub use services::{Clock, HostServices, http_client, http_client_trusting, no_outgoing_headers};
pub use set::{PluginInfo, PluginSet};
pub use state::Account;
pub use stats::{Histogram, Snapshot as HistogramSnapshot};
pub use watch::PluginDir;
