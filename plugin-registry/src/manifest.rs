//! The registry's manifest: every plugin, its versions, which one is active
//! and which were active before. Pure data and the rules for changing it; the
//! store decides when it is read and written.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Digest, KeyId, LimitsSpec, PluginKind, PluginSpec, RegistryError, SecretRef};

/// How many earlier active versions a plugin remembers for rollback.
pub const ROLLBACK_HISTORY: usize = 16;

/// What a hand editor sees first.
const HEADER: &str = "\
# paygate plugin registry manifest. Change it with `paygate plugins ...`.
# A hand edit must keep it valid: an invalid manifest is refused by every
# command and by every host, which keep serving what they already loaded.

";

/// All plugins of a registry. `revision` grows by one with every change, so
/// a reader can tell two manifests apart without comparing them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    revision: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    plugins: BTreeMap<String, PluginEntry>,
}

/// One plugin: its world, its published versions, the active one and the
/// earlier active ones (most recent last).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginEntry {
    kind: PluginKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    active: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    previous: Vec<String>,
    #[serde(default)]
    versions: BTreeMap<String, VersionEntry>,
}

/// One published version: the component's digest, who signed it, and the
/// capabilities and limits it runs with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionEntry {
    digest: Digest,
    published_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signed_by: Option<KeyId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    allowed_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    limits: LimitsSpec,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    config: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    secrets: BTreeMap<String, SecretRef>,
}

fn is_default(limits: &LimitsSpec) -> bool {
    *limits == LimitsSpec::default()
}

/// Whether a publish added a version or found it already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The version is new.
    Added,
    /// The same name, version, bytes and spec were already published.
    AlreadyPublished,
}

impl Manifest {
    /// Parses and checks a manifest; errors name `path` and, for syntax
    /// errors, the line and column.
    pub fn parse(text: &str, path: &Path) -> Result<Self, RegistryError> {
        let invalid = |reason: String| RegistryError::InvalidManifest {
            path: path.to_owned(),
            reason,
        };
        let manifest: Manifest = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        manifest.check().map_err(invalid)?;
        Ok(manifest)
    }

    /// The manifest as TOML, with a header for hand editors.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).expect("a manifest always serializes to TOML");
        format!("{HEADER}{body}")
    }

    /// Grows by one with every change written.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Every plugin, sorted by name.
    pub fn plugins(&self) -> impl Iterator<Item = (&str, &PluginEntry)> {
        self.plugins
            .iter()
            .map(|(name, entry)| (name.as_str(), entry))
    }

    /// The plugin called `name`.
    pub fn plugin(&self, name: &str) -> Result<&PluginEntry, RegistryError> {
        self.plugins
            .get(name)
            .ok_or_else(|| RegistryError::UnknownPlugin { name: name.into() })
    }

    fn plugin_mut(&mut self, name: &str) -> Result<&mut PluginEntry, RegistryError> {
        self.plugins
            .get_mut(name)
            .ok_or_else(|| RegistryError::UnknownPlugin { name: name.into() })
    }

    pub(crate) fn bump_revision(&mut self) {
        self.revision += 1;
    }

    /// Adds `version` of `name`. The same bytes and spec again is a no-op
    /// (that may record a signer the first publish lacked); other bytes or
    /// another spec under a published version, or another world under a
    /// known name, are refused.
    pub(crate) fn add_version(
        &mut self,
        name: &str,
        kind: PluginKind,
        version: &str,
        entry: VersionEntry,
    ) -> Result<PublishOutcome, RegistryError> {
        let plugin = self
            .plugins
            .entry(name.to_owned())
            .or_insert_with(|| PluginEntry {
                kind,
                active: None,
                previous: Vec::new(),
                versions: BTreeMap::new(),
            });
        if plugin.kind != kind {
            return Err(RegistryError::KindMismatch {
                name: name.into(),
                existing: plugin.kind,
                new: kind,
            });
        }
        let Some(existing) = plugin.versions.get_mut(version) else {
            plugin.versions.insert(version.to_owned(), entry);
            return Ok(PublishOutcome::Added);
        };
        if existing.digest != entry.digest {
            return Err(RegistryError::VersionExists {
                name: name.into(),
                version: version.into(),
                existing: existing.digest,
                new: entry.digest,
            });
        }
        if !existing.same_spec(&entry) {
            return Err(RegistryError::SpecChanged {
                name: name.into(),
                version: version.into(),
            });
        }
        existing.signed_by = existing.signed_by.take().or(entry.signed_by);
        Ok(PublishOutcome::AlreadyPublished)
    }

    /// Makes `version` the active version of `name`, remembering the one it
    /// replaces. Returns the replaced version; activating the active version
    /// changes nothing.
    pub(crate) fn activate(
        &mut self,
        name: &str,
        version: &str,
    ) -> Result<Option<String>, RegistryError> {
        let plugin = self.plugin_mut(name)?;
        plugin.version(name, version)?;
        if plugin.active.as_deref() == Some(version) {
            return Ok(plugin.active.clone());
        }
        let replaced = plugin.active.replace(version.to_owned());
        if let Some(old) = &replaced {
            plugin.previous.push(old.clone());
            let excess = plugin.previous.len().saturating_sub(ROLLBACK_HISTORY);
            plugin.previous.drain(..excess);
        }
        Ok(replaced)
    }

    /// Makes the most recent earlier active version of `name` active again.
    /// Returns (replaced, now active).
    pub(crate) fn rollback(
        &mut self,
        name: &str,
    ) -> Result<(Option<String>, String), RegistryError> {
        let plugin = self.plugin_mut(name)?;
        let target = plugin
            .previous
            .pop()
            .ok_or_else(|| RegistryError::NothingToRollBack { name: name.into() })?;
        let replaced = plugin.active.replace(target.clone());
        Ok((replaced, target))
    }

    /// What serde cannot check: names, versions and specs are well formed,
    /// and `active` and `previous` name published versions.
    fn check(&self) -> Result<(), String> {
        for (name, plugin) in &self.plugins {
            check_name(name).map_err(|e| e.to_string())?;
            for (version, entry) in &plugin.versions {
                check_version(name, version).map_err(|e| e.to_string())?;
                let spec = entry.spec(version, plugin.kind);
                spec.check().map_err(|e| format!("{name}@{version}: {e}"))?;
            }
            for version in plugin.active.iter().chain(&plugin.previous) {
                if !plugin.versions.contains_key(version) {
                    return Err(format!(
                        "plugin {name} refers to version {version}, which is not among its versions"
                    ));
                }
            }
        }
        Ok(())
    }
}

impl PluginEntry {
    /// The world every version of the plugin implements.
    pub fn kind(&self) -> PluginKind {
        self.kind
    }

    /// The version hosts should serve, if one was activated.
    pub fn active(&self) -> Option<&str> {
        self.active.as_deref()
    }

    /// Earlier active versions, most recent last; rollback takes the last.
    pub fn previous(&self) -> &[String] {
        &self.previous
    }

    /// Every published version, sorted by version string.
    pub fn versions(&self) -> impl Iterator<Item = (&str, &VersionEntry)> {
        self.versions.iter().map(|(v, e)| (v.as_str(), e))
    }

    /// The published `version` of this plugin, called `name`.
    pub fn version(&self, name: &str, version: &str) -> Result<&VersionEntry, RegistryError> {
        self.versions
            .get(version)
            .ok_or_else(|| RegistryError::UnknownVersion {
                name: name.into(),
                version: version.into(),
                published: self.versions.keys().cloned().collect(),
            })
    }
}

impl VersionEntry {
    /// Records a component's digest and the capabilities of `spec` (its
    /// `version` and `kind` are the manifest's business, not the entry's).
    pub(crate) fn new(
        digest: Digest,
        published_at: DateTime<Utc>,
        signed_by: Option<KeyId>,
        spec: &PluginSpec,
    ) -> Self {
        Self {
            digest,
            published_at,
            signed_by,
            allowed_hosts: spec.allowed_hosts.clone(),
            limits: spec.limits.clone(),
            config: spec.config.clone(),
            secrets: spec.secrets.clone(),
        }
    }

    /// The SHA-256 of the component's bytes.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// When the version was first published.
    pub fn published_at(&self) -> DateTime<Utc> {
        self.published_at
    }

    /// The trusted key that signed the component, if one did.
    pub fn signed_by(&self) -> Option<&KeyId> {
        self.signed_by.as_ref()
    }

    /// The spec the host loads this version with.
    pub fn spec(&self, version: &str, kind: PluginKind) -> PluginSpec {
        PluginSpec {
            version: version.to_owned(),
            kind: Some(kind),
            allowed_hosts: self.allowed_hosts.clone(),
            limits: self.limits.clone(),
            config: self.config.clone(),
            secrets: self.secrets.clone(),
        }
    }

    fn same_spec(&self, other: &VersionEntry) -> bool {
        self.allowed_hosts == other.allowed_hosts
            && self.limits == other.limits
            && self.config == other.config
            && self.secrets == other.secrets
    }
}

/// Plugin names become aliases and file names: 1 to 64 of `a-z 0-9 - _`,
/// starting with a letter or digit.
pub(crate) fn check_name(name: &str) -> Result<(), RegistryError> {
    let reason = if name.is_empty() || name.len() > 64 {
        "it must be 1 to 64 characters long"
    } else if !name
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'))
    {
        "use only lower-case letters, digits, '-' and '_'"
    } else if !name.as_bytes()[0].is_ascii_alphanumeric() {
        "it must start with a letter or a digit"
    } else {
        return Ok(());
    };
    Err(RegistryError::InvalidName {
        name: name.into(),
        reason,
    })
}

/// Versions are free-form ("1.2.0", "2024-06-rc1") but printable, without
/// spaces, and without '@', which separates name and version on the command line.
pub(crate) fn check_version(name: &str, version: &str) -> Result<(), RegistryError> {
    let reason = if version.is_empty() || version.len() > 64 {
        "it must be 1 to 64 characters long"
    } else if !version.bytes().all(|b| b.is_ascii_graphic() && b != b'@') {
        "use printable ASCII without spaces or '@'"
    } else {
        return Ok(());
    };
    Err(RegistryError::InvalidVersion {
        name: name.into(),
        version: version.into(),
        reason,
    })
}

#[cfg(test)]
mod tests;
