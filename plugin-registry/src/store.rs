//! The registry directory and every operation on it.
//!
//! ```text
//! <root>/manifest.toml            all plugins (see [`Manifest`])
//! <root>/blobs/sha256/<hex>       component bytes, named by their SHA-256
//! <root>/signatures/<hex>.sig     signatures of a blob, one per line
//! <root>/trusted_keys/<id>.pub    public keys whose signatures are accepted
//! <root>/.lock                    held by whoever changes the manifest
//! ```
//!
//! Every file is replaced atomically, so readers never take a lock: they see
//! the manifest before or after a change. Writers change the manifest under
//! the lock (read, modify, write), so two operators cannot lose each other's
//! update. Blobs are written before the manifest that names them and never
//! removed, so a manifest never points at a blob that is not there.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{SubsecRound as _, Utc};

use crate::files::{RegistryLock, write_atomic};
use crate::manifest::{PublishOutcome, VersionEntry, check_name, check_version};
use crate::signing::{add_to_signature_file, read_signature_file, trusted_signer};
use crate::{
    ComponentSignature, Covered, Digest, KeyId, Manifest, PluginEntry, PluginKind, PluginSpec,
    PublicKey, RegistryError,
};

/// A registry directory, shared safely by any number of processes.
#[derive(Clone, Debug)]
pub struct Registry {
    root: PathBuf,
}

/// What to publish. `spec` gives hosts, limits, config and secrets; the
/// version and world are `version` and `kind` (the caller detects the world
/// from the component), and a `spec.kind` that disagrees is refused.
#[derive(Clone, Copy, Debug)]
pub struct Publish<'a> {
    /// The plugin's name, e.g. `stripe`: lower-case letters, digits, `-`, `_`.
    pub name: &'a str,
    /// Any printable version without spaces or `@`, e.g. `1.4.0`.
    pub version: &'a str,
    /// The component.
    pub bytes: &'a [u8],
    /// The world the component implements, as the caller detected it.
    pub kind: PluginKind,
    /// Hosts, limits, config and secrets; `spec.version` is ignored.
    pub spec: &'a PluginSpec,
    /// Required, by a trusted key, when the registry trusts any key. It
    /// must cover the bytes and the spec as released
    /// ([`Publish::covered`]).
    pub signature: Option<&'a ComponentSignature>,
    /// Make this version active in the same change.
    pub activate: bool,
}

/// The result of [`Registry::publish`].
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    /// The SHA-256 of the published bytes.
    pub digest: Digest,
    /// Whether the version is new or was already there.
    pub outcome: PublishOutcome,
    /// The key recorded as the component's signer, if any.
    pub signed_by: Option<KeyId>,
    /// Whether the version became active (false if it already was).
    pub activated: bool,
    /// The manifest revision after the publish.
    pub revision: u64,
}

/// The result of [`Registry::activate`] and [`Registry::rollback`].
#[derive(Clone, Debug, PartialEq)]
pub struct Activation {
    /// The plugin.
    pub name: String,
    /// The version active before, if any.
    pub from: Option<String>,
    /// The version active now.
    pub to: String,
    /// The manifest revision after the change.
    pub revision: u64,
}

/// One line of `paygate plugins list`.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginSummary {
    /// The plugin.
    pub name: String,
    /// The world it implements.
    pub kind: PluginKind,
    /// The version hosts should serve, if one was activated.
    pub active: Option<String>,
    /// The digest of the active version.
    pub digest: Option<Digest>,
    /// Every published version, sorted as strings.
    pub versions: Vec<String>,
    /// The key that signed the active version, when it was signed.
    pub signer: Option<KeyId>,
}

/// A version ready to load: bytes checked against their digest and, when
/// the registry trusts keys, against a trusted signature.
#[derive(Clone)]
pub struct Release {
    /// The plugin.
    pub name: String,
    /// The version.
    pub version: String,
    /// The world it implements; the loader must find the same one.
    pub kind: PluginKind,
    /// The SHA-256 of `bytes`, checked.
    pub digest: Digest,
    /// The key recorded as its signer, if any.
    pub signed_by: Option<KeyId>,
    /// The spec to load with; its `version` and `kind` are filled in.
    pub spec: PluginSpec,
    /// The component.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Release({}@{} {}, {} bytes)",
            self.name,
            self.version,
            self.digest,
            self.bytes.len()
        )
    }
}

impl Publish<'_> {
    /// What a signature of this version covers: the bytes, and the spec
    /// with this version and world, exactly as hosts will load it.
    pub fn covered(&self) -> Covered {
        Covered::new(
            self.name,
            Digest::of(self.bytes),
            &self.spec.released(self.version, self.kind),
        )
    }
}

impl Activation {
    /// Whether the active version changed.
    pub fn changed(&self) -> bool {
        self.from.as_deref() != Some(self.to.as_str())
    }
}

impl Registry {
    /// Opens the registry at `root`, creating its directories and an empty
    /// manifest if they are missing. The manifest is not parsed here, so a
    /// broken one is reported by the operation that reads it.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, RegistryError> {
        let registry = Self { root: root.into() };
        for dir in [
            registry.blobs_dir(),
            registry.root.join("signatures"),
            registry.trusted_keys_dir(),
        ] {
            std::fs::create_dir_all(&dir).map_err(RegistryError::io("create", &dir))?;
        }
        let _lock = registry.lock()?;
        let manifest = registry.manifest_path();
        if !manifest.exists() {
            write_atomic(&manifest, Manifest::default().to_toml().as_bytes())?;
        }
        Ok(registry)
    }

    /// The registry directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The manifest file; watch it (it is replaced by a rename) and compare
    /// [`Manifest::revision`] to notice changes.
    pub fn manifest_path(&self) -> PathBuf {
        self.root.join("manifest.toml")
    }

    /// The manifest as it is now.
    pub fn manifest(&self) -> Result<Manifest, RegistryError> {
        let path = self.manifest_path();
        let text = std::fs::read_to_string(&path).map_err(RegistryError::io("read", &path))?;
        Manifest::parse(&text, &path)
    }

    /// The manifest's revision, which grows by one with every change.
    pub fn revision(&self) -> Result<u64, RegistryError> {
        Ok(self.manifest()?.revision())
    }

    /// Every plugin with its active version, sorted by name.
    pub fn list(&self) -> Result<Vec<PluginSummary>, RegistryError> {
        let manifest = self.manifest()?;
        let summary = |(name, plugin): (&str, &PluginEntry)| PluginSummary {
            name: name.to_owned(),
            kind: plugin.kind(),
            active: plugin.active().map(str::to_owned),
            digest: plugin
                .active()
                .and_then(|v| plugin.version(name, v).ok())
                .map(VersionEntry::digest),
            versions: plugin.versions().map(|(v, _)| v.to_owned()).collect(),
            signer: plugin
                .active()
                .and_then(|v| plugin.version(name, v).ok())
                .and_then(|v| v.signed_by().cloned()),
        };
        Ok(manifest.plugins().map(summary).collect())
    }

    /// Everything the manifest says about `name`.
    pub fn get(&self, name: &str) -> Result<PluginEntry, RegistryError> {
        self.manifest()?.plugin(name).cloned()
    }

    /// Stores a component and records it as `name@version`, and activates it
    /// if asked, in one manifest change. Publishing the same bytes and spec
    /// again is a no-op; anything else under a published version is refused.
    /// Nothing is written unless every check passes.
    pub fn publish(&self, request: &Publish<'_>) -> Result<Published, RegistryError> {
        let Publish {
            name,
            version,
            bytes,
            kind,
            spec,
            signature,
            activate,
        } = *request;
        check_name(name)?;
        check_version(name, version)?;
        spec.check().map_err(|source| RegistryError::InvalidSpec {
            name: name.into(),
            version: version.into(),
            source: Box::new(source),
        })?;
        if let Some(declared) = spec.kind.filter(|k| *k != kind) {
            return Err(RegistryError::KindMismatch {
                name: name.into(),
                existing: declared,
                new: kind,
            });
        }
        let component = format!("{name}@{version}");
        let covered = request.covered();
        let digest = covered.component;
        if let Some(signature) = signature.filter(|s| !s.verifies(&covered)) {
            let (component, key) = (component, signature.signer().id());
            return Err(if signature.is_legacy() {
                RegistryError::LegacySignature {
                    component,
                    digest,
                    key,
                }
            } else {
                RegistryError::BadSignature {
                    component,
                    digest,
                    key,
                }
            });
        }
        let trusted = self.trusted_keys()?;

        let ((outcome, signed_by, activated), revision) = self.update(|manifest| {
            let mut signatures = self.read_signatures(&digest)?;
            signatures.extend(signature.cloned());
            let vouching = trusted_signer(&component, &covered, &signatures, &trusted)?;
            // The key that vouches, if the registry trusts any; else the offered signer.
            let signed_by = vouching.or_else(|| signature.map(|s| s.signer().id()));
            let published_at = Utc::now().trunc_subsecs(0);
            let entry = VersionEntry::new(digest, published_at, signed_by, spec);
            let outcome = manifest.add_version(name, kind, version, entry)?;
            // An earlier publish of the same version may have recorded another signer.
            let recorded = manifest.plugin(name)?.version(name, version)?;
            let signed_by = recorded.signed_by().cloned();
            self.store_blob(&component, &digest, bytes)?;
            if let Some(signature) = signature {
                self.add_signature(&digest, signature)?;
            }
            let activated =
                activate && manifest.activate(name, version)?.as_deref() != Some(version);
            Ok((outcome, signed_by, activated))
        })?;
        Ok(Published {
            digest,
            outcome,
            signed_by,
            activated,
            revision,
        })
    }

    /// Makes a published version the active one.
    pub fn activate(&self, name: &str, version: &str) -> Result<Activation, RegistryError> {
        let (from, revision) = self.update(|manifest| manifest.activate(name, version))?;
        Ok(Activation {
            name: name.into(),
            from,
            to: version.into(),
            revision,
        })
    }

    /// Makes the previous active version active again.
    pub fn rollback(&self, name: &str) -> Result<Activation, RegistryError> {
        let ((from, to), revision) = self.update(|manifest| manifest.rollback(name))?;
        Ok(Activation {
            name: name.into(),
            from,
            to,
            revision,
        })
    }

    /// The active version of `name`, checked and ready to load.
    pub fn active_component(&self, name: &str) -> Result<Release, RegistryError> {
        let manifest = self.manifest()?;
        let version = manifest
            .plugin(name)?
            .active()
            .ok_or_else(|| RegistryError::NoActiveVersion { name: name.into() })?;
        self.release_from(&manifest, name, version)
    }

    /// A published version of `name`, checked and ready to load.
    pub fn release(&self, name: &str, version: &str) -> Result<Release, RegistryError> {
        self.release_from(&self.manifest()?, name, version)
    }

    fn release_from(
        &self,
        manifest: &Manifest,
        name: &str,
        version: &str,
    ) -> Result<Release, RegistryError> {
        let plugin = manifest.plugin(name)?;
        let entry = plugin.version(name, version)?;
        let component = format!("{name}@{version}");
        let digest = entry.digest();
        let bytes = self.read_blob(&component, &digest)?;
        let spec = entry.spec(version, plugin.kind());
        let trusted = self.trusted_keys()?;
        if !trusted.is_empty() {
            trusted_signer(
                &component,
                &Covered::new(name, digest, &spec),
                &self.read_signatures(&digest)?,
                &trusted,
            )?;
        }
        Ok(Release {
            name: name.into(),
            version: version.into(),
            kind: plugin.kind(),
            digest,
            signed_by: entry.signed_by().cloned(),
            spec,
            bytes,
        })
    }

    /// Trusts `key`: from now on every publish and load needs a signature by
    /// a trusted key. Trusting a key twice is harmless. To revoke a key,
    /// delete its file from `trusted_keys/`.
    pub fn trust(&self, key: &PublicKey) -> Result<KeyId, RegistryError> {
        let id = key.id();
        let path = self.trusted_keys_dir().join(format!("{id}.pub"));
        write_atomic(&path, format!("{key}\n").as_bytes())?;
        Ok(id)
    }

    /// The public keys in `trusted_keys/`. A file there that is not a public
    /// key is an error, not silently skipped: it was meant to be trusted.
    pub fn trusted_keys(&self) -> Result<Vec<PublicKey>, RegistryError> {
        let mut keys = Vec::new();
        for path in self.files_in(&self.trusted_keys_dir())? {
            let text = std::fs::read_to_string(&path).map_err(RegistryError::io("read", &path))?;
            keys.push(PublicKey::parse(
                &text,
                format!("trusted key file {}", path.display()),
            )?);
        }
        Ok(keys)
    }

    /// Runs `change` on the current manifest under the registry lock and, if
    /// it changed anything, writes the result with the next revision.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut Manifest) -> Result<T, RegistryError>,
    ) -> Result<(T, u64), RegistryError> {
        let _lock = self.lock()?;
        let current = self.manifest()?;
        let mut next = current.clone();
        let result = change(&mut next)?;
        if next != current {
            next.bump_revision();
            write_atomic(&self.manifest_path(), next.to_toml().as_bytes())?;
        }
        Ok((result, next.revision()))
    }

    fn lock(&self) -> Result<RegistryLock, RegistryError> {
        RegistryLock::acquire(&self.root.join(".lock"))
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn trusted_keys_dir(&self) -> PathBuf {
        self.root.join("trusted_keys")
    }

    pub(crate) fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    fn signatures_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("signatures")
            .join(format!("{}.sig", digest.hex()))
    }

    /// The files of `dir`, sorted, without temporary files (`.tmp…`).
    pub(crate) fn files_in(&self, dir: &Path) -> Result<Vec<PathBuf>, RegistryError> {
        let entries = std::fs::read_dir(dir).map_err(RegistryError::io("list", dir))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(RegistryError::io("list", dir))?;
            if !entry.file_name().to_string_lossy().starts_with('.') {
                files.push(entry.path());
            }
        }
        files.sort();
        Ok(files)
    }

    /// Reads the blob of `digest` and checks that it still hashes to it.
    /// `component` names its owner in errors.
    pub(crate) fn read_blob(
        &self,
        component: &str,
        digest: &Digest,
    ) -> Result<Vec<u8>, RegistryError> {
        let path = self.blob_path(digest);
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => RegistryError::BlobMissing {
                component: component.into(),
                digest: *digest,
                path: path.clone(),
            },
            _ => RegistryError::io("read", &path)(e),
        })?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(RegistryError::DigestMismatch {
                component: component.into(),
                path,
                expected: *digest,
                actual,
            });
        }
        Ok(bytes)
    }

    /// Writes a blob unless an intact copy is already there (a corrupt one
    /// is replaced by the good bytes).
    fn store_blob(
        &self,
        component: &str,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<(), RegistryError> {
        match self.read_blob(component, digest) {
            Ok(_) => Ok(()),
            Err(RegistryError::BlobMissing { .. } | RegistryError::DigestMismatch { .. }) => {
                write_atomic(&self.blob_path(digest), bytes)
            }
            Err(e) => Err(e),
        }
    }

    /// The signatures stored for a blob; none if it has no signature file.
    pub(crate) fn read_signatures(
        &self,
        digest: &Digest,
    ) -> Result<Vec<ComponentSignature>, RegistryError> {
        read_signature_file(&self.signatures_path(digest))
    }

    fn add_signature(
        &self,
        digest: &Digest,
        signature: &ComponentSignature,
    ) -> Result<(), RegistryError> {
        add_to_signature_file(&self.signatures_path(digest), signature)
    }
}

#[cfg(test)]
mod tests;
