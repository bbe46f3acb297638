//! The merchant REST API end to end: a real host on port 0 over real
//! PostgreSQL and Redis, the shipped plugins, and the sandbox provider.

pub(crate) mod admin;
mod admin_notifications;
mod admin_providers;
pub(crate) mod adyen;
pub(crate) mod app;
mod bench_client;
mod console;
mod create;
pub(crate) mod docs;
mod errors;
mod guards;
mod lifecycle;
mod listing;
mod logs;
mod merchant;
mod metrics;
mod migrations;
pub(crate) mod notifications;
mod pools;
mod providers;
mod quickstart;
mod reads;
mod reconcile;
mod redirects;
pub(crate) mod refunds;
pub(crate) mod registry;
mod reliability;
mod saga;
mod startup;
mod timeouts;
mod traces;
mod webhook_guards;
mod webhooks;
