//! paygate: a payments gateway whose provider integrations, webhook verifiers
//! and rate-limit policies are sandboxed WebAssembly components.
//!
//! [`plugins`] is the runtime those components run in (the
//! `paygate-runtime` crate): one engine, a fresh store per call, hard
//! limits, hot reload; [`RedisCounters`] is its Redis counter store. The domains each own their
//! database: [`merchants`] (keys, quotas, the authenticating service; its
//! secrets [`sealing`] seals at rest),
//! [`providers`] (alias bindings, circuit breaker), [`payments`] (the
//! creation saga's service, payments, timeline, idempotency), and [`quota`]
//! gives back tokens whose payment never came to be; [`secret_files`] reads
//! secrets given as `NAME_FILE`; [`db`] connects and
//! migrates them. [`webhooks`] receives provider webhooks (verify, log,
//! apply) and the [`WebhookLog`] keeps them; [`Health`] checks every backend.
//! None of these knows HTTP: [`http`] is the API, each handler taking only
//! the services it uses. [`config`] is every setting in one typed place;
//! [`App`] builds each service once from it and runs the server;
//! [`outbox`] publishes committed payment outcomes to RabbitMQ and
//! [`notifier`] delivers them, signed, to merchants; [`telemetry`] sets up
//! logging; [`tls`] is the CA every connection trusts; [`ids`] are the typed ids of their rows (`PaymentId`,
//! `MerchantId` ...); [`cli`] is the `paygate` command. The sandbox provider and the demo shop are the `paygate-demo`
//! crate's, which uses this one like any embedder would. `paygate plugin test|run` is the `paygate-harness` crate's.
// The creation saga's futures nest deeper than the default limit lets
// rustc compute their layout.
#![recursion_limit = "256"]

pub mod audit;
pub mod cli;
pub mod config;
pub mod db;
pub mod env_names;
pub mod foreground;
pub mod http;
pub mod ids;
pub mod merchants;
pub mod notifier;
pub mod outbox;
pub mod payments;
pub mod providers;
pub mod quota;
pub mod sealing;
pub mod secret_files;
pub mod telemetry;
pub mod tls;
pub mod webhooks;

mod app;
mod counters;
mod health;
mod metrics;
mod redis_batch;
mod webhook_log;

pub use app::{App, RefusedSetting, validate};
pub use config::Config;
pub use counters::RedisCounters;
pub use health::{Checks, Health};
pub use ids::{MerchantId, OrderId, OutboxId, PaymentId, RefundId, SubscriptionId};
pub use metrics::{BatchStage, Metrics};
/// The allocator paygate's processes run with (`#[global_allocator]` in
/// each binary): glibc's malloc took about a seventh of the host's CPU on
/// the show path, its consolidation and free lists most of it.
pub use mimalloc::MiMalloc as Allocator;
/// The plugin runtime the gateway serves its plugins from.
pub use paygate_runtime as plugins;
pub use redis_batch::BatchStats;
pub use webhook_log::WebhookLog;
