//! Plugin descriptions and the plugin registry shared by the paygate host
//! and its CLI.
//!
//! A plugin is a WebAssembly component plus a [`PluginSpec`]: its name, the
//! world it implements ([`PluginKind`]), its version, the hosts it may call,
//! its resource limits, and its settings and secret references. Components are
//! identified by the SHA-256 of their bytes ([`Digest`]), so the same bytes
//! always have the same identity wherever they are stored.
//!
//! A [`Registry`] is a directory that stores components by digest and lists
//! every plugin's versions in a [`Manifest`], with the active version and the
//! earlier ones to roll back to. Operators publish, activate and roll back
//! through it; hosts read the active version of each plugin from it and watch
//! the manifest's revision to hot-swap. Plugins may be signed with ed25519
//! keys ([`signing`]), a signature covering the component and its spec;
//! once the registry trusts a key, only plugins signed by a trusted key are
//! published or loaded. Every refusal is a
//! [`RegistryError`] that names the plugin, version, digest or file.

/// Asserts that `result` is an error matching `pattern` and returns it;
/// the message is shown when it does not match.
#[cfg(test)]
macro_rules! assert_refused {
    ($result:expr, $pattern:pat) => {{
        let err = $result.unwrap_err();
        assert!(matches!(err, $pattern), "unexpected refusal: {err}");
        err
    }};
}

mod digest;
mod error;
mod files;
mod kind;
mod manifest;
pub mod signing;
mod spec;
mod store;
mod verify;

pub use digest::{Digest, DigestError};
pub use error::RegistryError;
pub use kind::{PluginKind, UnknownKind};
pub use manifest::{Manifest, PluginEntry, PublishOutcome, ROLLBACK_HISTORY, VersionEntry};
pub use signing::{ComponentSignature, Covered, KeyId, PublicKey, SecretKey, keygen, sign};
pub use spec::{LimitsSpec, PluginSpec, SecretRef, SpecError};
pub use store::{Activation, PluginSummary, Publish, Published, Registry, Release};
pub use verify::VerifyReport;
