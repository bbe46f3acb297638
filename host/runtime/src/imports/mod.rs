//! Host capabilities a plugin imports, one file per WIT interface. Each
//! checks its grant and caps its sizes before it does anything.

mod clock;
mod config;
mod counters;
mod http;
mod log;
