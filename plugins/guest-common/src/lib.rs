//! Helpers shared by paygate's guest plugins.
//!
//! Everything here is plain Rust with no WIT imports, so it runs (and is
//! tested, and fuzzed from `fuzz/`) on the host target as well as inside a
//! component. Types that the bindings generate per crate are bridged with
//! the macros in [`provider`] and [`signature`].

// `settings` names `alloc` so that a guest without `std` can include it.
extern crate alloc;

pub mod crypto;
pub mod headers;
pub mod hex;
pub mod money;
pub mod provider;
pub mod reference;
pub mod settings;
pub mod signature;
pub mod url;
