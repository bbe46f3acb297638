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
//! merchants; [`webhook_log`] records every inbound provider webhook;
//! [`ids`] are the typed ids of their rows (`PaymentId`, `MerchantId` ...);
//! [`telemetry`] sets up logging; [`cli`] is the `paygate`
//! command. The sandbox provider and the demo shop are the `paygate-demo`
//! crate's, which uses this one like any embedder would. `paygate plugin test|run` is the `paygate-harness` crate's.

pub mod app;
pub mod cli;
pub mod config;
pub mod counters;
pub mod db;
pub mod gateway;
pub mod http;
pub mod ids;
pub mod merchants;
pub mod metrics;
pub mod notifier;
pub mod outbox;
pub mod payments;
pub mod providers;
pub mod quota;
pub mod telemetry;
pub mod webhook_log;

pub use app::App;
pub use config::Config;
pub use ids::{MerchantId, OrderId, OutboxId, PaymentId, SubscriptionId};
/// The plugin runtime the gateway serves its plugins from.
pub use paygate_runtime as plugins;
