use std::io;
use std::path::PathBuf;

use crate::{Digest, KeyId, PluginKind, SpecError};

/// Why the registry refused an operation. Every message names what it is
/// about (plugin, version, digest, key or file) so an operator can act on it
/// without reading logs.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("manifest {} is invalid: {reason}", path.display())]
    InvalidManifest { path: PathBuf, reason: String },
    #[error("invalid plugin name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("invalid version {version:?} of plugin {name}: {reason}")]
    InvalidVersion {
        name: String,
        version: String,
        reason: &'static str,
    },
    #[error("{name}@{version}: {source}")]
    InvalidSpec {
        name: String,
        version: String,
        /// Boxed: a TOML error is large, and every `Result` would carry its size.
        #[source]
        source: Box<SpecError>,
    },
    #[error("no plugin named {name} in the registry")]
    UnknownPlugin { name: String },
    #[error(
        "plugin {name} has no version {version} (published: {})",
        list(published)
    )]
    UnknownVersion {
        name: String,
        version: String,
        published: Vec<String>,
    },
    #[error(
        "{name}@{version} is already published as {existing}, and these bytes are {new}: \
         publish them under a new version"
    )]
    VersionExists {
        name: String,
        version: String,
        existing: Digest,
        new: Digest,
    },
    #[error(
        "{name}@{version} is already published with the same bytes but other hosts, limits, \
         config or secrets: publish a new version to change them"
    )]
    SpecChanged { name: String, version: String },
    #[error(
        "plugin {name} implements the {existing} world; a {new} component cannot be published under that name"
    )]
    KindMismatch {
        name: String,
        existing: PluginKind,
        new: PluginKind,
    },
    #[error("plugin {name} has no active version")]
    NoActiveVersion { name: String },
    #[error("plugin {name} has no earlier active version to roll back to")]
    NothingToRollBack { name: String },
    #[error("{component}: blob {digest} is missing ({})", path.display())]
    BlobMissing {
        component: String,
        digest: Digest,
        path: PathBuf,
    },
    #[error("{component}: blob {} is corrupt: expected {expected}, its bytes hash to {actual}", path.display())]
    DigestMismatch {
        component: String,
        path: PathBuf,
        expected: Digest,
        actual: Digest,
    },
    #[error(
        "{component} ({digest}) is unsigned, but the registry trusts {trusted} signing key(s): \
         sign it with one of them (`paygate plugins publish --sign-key`, or `paygate plugins \
         sign` for the plugin directory)"
    )]
    Unsigned {
        component: String,
        digest: Digest,
        trusted: usize,
    },
    #[error(
        "{component} ({digest}): the signature by key {key} does not match the component and \
         its spec (hosts, limits, config, secrets)"
    )]
    BadSignature {
        component: String,
        digest: Digest,
        key: KeyId,
    },
    #[error(
        "{component} ({digest}) is signed by key {key} only in the v1 format, which covers the \
         component but not its spec: sign it again (`paygate plugins publish --sign-key` with the \
         same version and spec, or `paygate plugins sign`)"
    )]
    LegacySignature {
        component: String,
        digest: Digest,
        key: KeyId,
    },
    #[error(
        "{component} ({digest}) is signed only by keys the registry does not trust ({}): \
         trust the signer's public key first",
        list(keys)
    )]
    UntrustedSigner {
        component: String,
        digest: Digest,
        keys: Vec<KeyId>,
    },
    #[error("invalid {what}: {reason}")]
    InvalidKey { what: String, reason: &'static str },
    #[error("invalid signature in {}, line {line}: {reason}", path.display())]
    InvalidSignatureFile {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("cannot generate a key: the operating system's random source failed: {0}")]
    Random(getrandom::Error),
}

/// `a, b, c`, or `none`.
fn list<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    items
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl RegistryError {
    /// An I/O failure while doing `action` ("read", "write", …) on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| RegistryError::Io {
            action,
            path,
            source,
        }
    }
}
