//! Plugin descriptions and the plugin registry shared by the paygate host
//! and its CLI.
//!
//! A plugin is a WebAssembly component plus a [`PluginSpec`]: its name, the
//! world it implements ([`PluginKind`]), its version, the hosts it may call,
//! its resource limits, and its settings and secret references. Components are
//! identified by the SHA-256 of their bytes ([`Digest`]), so the same bytes
//! always have the same identity wherever they are stored.
//!
//! Components may be signed with ed25519 keys ([`signing`]). Every refusal
//! is a [`RegistryError`] that names the plugin, version, digest or file.

mod digest;
mod error;
mod kind;
pub mod signing;
mod spec;

pub use digest::{Digest, DigestError};
pub use error::RegistryError;
pub use kind::{PluginKind, UnknownKind};
pub use signing::{ComponentSignature, KeyId, PublicKey, SecretKey, keygen, sign};
pub use spec::{LimitsSpec, PluginSpec, SecretRef, SpecError};
