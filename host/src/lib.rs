//! paygate: a payments gateway whose provider integrations, webhook verifiers
//! and rate-limit policies are sandboxed WebAssembly components.
//!
//! [`plugins`] is the runtime those components run in: one engine, a fresh
//! store per call, hard limits, hot reload. The domains each own their
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
//! up logging. [`harness`] runs a component's conformance suite against a
//! mock host (`paygate plugin test`), also from a plugin's own `cargo test`.

pub mod app;
pub mod config;
pub mod db;
pub mod demo;
pub mod gateway;
pub mod harness;
pub mod html;
pub mod http;
pub mod merchants;
pub mod metrics;
pub mod notifier;
pub mod outbox;
pub mod payments;
pub mod plugins;
pub mod providers;
pub mod quota;
pub mod sandbox;
pub mod secret;
pub mod shop;
pub mod telemetry;
pub mod webhooks;

pub use app::App;
pub use config::Config;
