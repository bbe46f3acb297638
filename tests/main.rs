//! paygate's test suite: the plugin runtime against real components built
//! from `plugins/` (run `plugins/build.sh` first; `scripts/test` does), and
//! against real Redis where a test needs shared state.

// The saga's futures nest deeper than the default limit lays out.
#![recursion_limit = "256"]

mod api;
mod cluster;
mod compile_cache;
mod compose;
mod faults;
mod harness;
mod helpers;
mod hot_reload;
mod logs;
mod outbound;
mod plugins;
mod polyglot;
mod sandbox;
mod sandbox_provider;
mod shop;
mod tls;
mod webdriver;
