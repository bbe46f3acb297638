//! The plugin runtime: sandboxed WebAssembly components behind the WIT
//! contract in `wit/`.
//!
//! [`PluginEngine`] owns the one wasmtime engine (pooling allocator, epoch
//! deadlines, fuel) and a linker per world. [`Loader`] turns bytes into a
//! type-checked [`LoadedPlugin`], caching compiled code by digest. Every call
//! ([`call`]) runs in a fresh store with its own limits. [`PluginSet`] holds
//! the serving versions and swaps them atomically; [`PluginDir`] watches a
//! directory and hot-reloads what changes. Host capabilities live in
//! `imports/`, one file per interface.

pub mod allow;
pub mod bindings;
pub mod call;
pub mod counters;
pub mod engine;
pub mod error;
mod imports;
pub mod limits;
pub mod loaded;
pub mod loader;
pub mod operator;
pub mod registry;
pub mod services;
pub mod set;
pub mod state;
pub mod stdio;
pub mod watch;

pub use call::CallStats;
pub use counters::Counters;
pub use engine::{EngineSettings, PluginEngine};
pub use error::{LoadError, PluginError};
pub use limits::Limits;
pub use loaded::LoadedPlugin;
pub use loader::{CodeSource, CompiledComponent, Loader};
pub use registry::RegistrySource;
pub use services::{Clock, HostServices};
pub use set::{PluginInfo, PluginSet};
pub use watch::PluginDir;
