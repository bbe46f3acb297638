//! paygate: a payments gateway whose provider integrations, webhook verifiers
//! and rate-limit policies are sandboxed WebAssembly components.
//!
//! [`plugins`] is the runtime those components run in: one engine, a fresh
//! store per call, hard limits, hot reload. [`config`] is every setting in one
//! typed place; [`app`] wires settings into a running server; [`http`] is the
//! router; [`telemetry`] sets up logging.

pub mod app;
pub mod config;
pub mod http;
pub mod plugins;
pub mod secret;
pub mod telemetry;

pub use app::App;
pub use config::Config;
