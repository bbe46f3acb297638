//! Plugin descriptions shared by the paygate host and its CLI.
//!
//! A plugin is a WebAssembly component plus a [`PluginSpec`]: its name, the
//! world it implements ([`PluginKind`]), its version, the hosts it may call,
//! its resource limits, and its settings and secret references. Components are
//! identified by the SHA-256 of their bytes ([`Digest`]), so the same bytes
//! always have the same identity wherever they are stored.

mod digest;
mod kind;
mod spec;

pub use digest::{Digest, DigestError};
pub use kind::{PluginKind, UnknownKind};
pub use spec::{LimitsSpec, PluginSpec, SecretRef, SpecError};
