//! paygate: a payments gateway whose provider integrations, webhook verifiers
//! and rate-limit policies are sandboxed WebAssembly components.
//!
//! [`plugins`] is the runtime those components run in (the
//! `paygate-runtime` crate): one engine, a fresh store per call, hard
//! limits, hot reload; [`counters`] is its Redis counter store. The domains each own their
//! database: [`merchants`] (keys, quotas), [`providers`] (alias bindings,
//! circuit breaker), [`payments`] (payments, timeline, idempotency), and
//! [`quota`] gives back tokens whose payment never came to be; [`db`]
//! connects and migrates them. [`http`] is the API over a [`gateway::Gateway`]
//! of those services; [`config`] is every setting in one typed place; [`app`]
//! wires settings into a running server; [`outbox`] publishes committed
//! payment outcomes to RabbitMQ and [`notifier`] delivers them, signed, to
//! merchants; [`sandbox`] is the stand-in payment provider of tests and the
//! demo; [`shop`] is the demo shop, a merchant that uses paygate through its
//! public API only; [`html`] is what their pages share; [`telemetry`] sets
//! up logging. `paygate plugin test|run` is the `paygate-harness` crate's.

pub mod app;
pub mod cli;
pub mod config;
pub mod counters;
pub mod db;
pub mod demo;
pub mod gateway;
pub mod html;
pub mod http;
pub mod merchants;
pub mod metrics;
pub mod notifier;
pub mod outbox;
pub mod payments;
pub mod providers;
pub mod quota;
pub mod sandbox;
pub mod shop;
pub mod telemetry;
pub mod webhooks;

pub use app::App;
pub use config::Config;
/// The plugin runtime the gateway serves its plugins from.
pub use paygate_runtime as plugins;
