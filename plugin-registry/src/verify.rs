//! A full check of the store, for `paygate plugins verify` and for CI.

use std::collections::BTreeMap;

use crate::signing::trusted_signer;
use crate::{Covered, Digest, PluginSpec, Registry, RegistryError};

/// What [`Registry::verify`] found. Each problem is the error a load of the
/// affected version would fail with.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Blobs hashed, referenced or not.
    pub blobs: usize,
    /// Published versions checked.
    pub versions: usize,
    /// Whether signatures were required (the registry trusts some key).
    pub signatures_required: bool,
    /// Everything found wrong; empty when the store is sound.
    pub problems: Vec<RegistryError>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Registry {
    /// Hashes every blob and compares it with its name, checks that every
    /// published version's blob is there and, when the registry trusts keys,
    /// that a trusted key signed it with the spec it is served with. Only an unreadable manifest or key
    /// directory is an error; everything else is a problem in the report.
    pub fn verify(&self) -> Result<VerifyReport, RegistryError> {
        let manifest = self.manifest()?;
        let trusted = self.trusted_keys()?;
        let mut report = VerifyReport {
            signatures_required: !trusted.is_empty(),
            ..VerifyReport::default()
        };

        let mut owners: BTreeMap<Digest, Vec<(String, String, PluginSpec)>> = BTreeMap::new();
        for (name, plugin) in manifest.plugins() {
            for (version, entry) in plugin.versions() {
                owners.entry(entry.digest()).or_default().push((
                    format!("{name}@{version}"),
                    name.to_string(),
                    entry.spec(version, plugin.kind()),
                ));
            }
        }
        // Blobs no version names (e.g. left by an interrupted publish) are
        // checked too: a later publish of the same bytes would reuse them.
        for path in self.files_in(&self.blobs_dir())? {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if let Ok(digest) = name.parse::<Digest>() {
                owners.entry(digest).or_default();
            }
        }

        for (digest, components) in &owners {
            report.blobs += 1;
            let owner = if components.is_empty() {
                "unreferenced blob".to_owned()
            } else {
                let names: Vec<&str> = components.iter().map(|(c, _, _)| c.as_str()).collect();
                names.join(", ")
            };
            if let Err(problem) = self.read_blob(&owner, digest) {
                report.problems.push(problem);
            }
            for (component, name, spec) in components {
                report.versions += 1;
                let covered = Covered::new(name, *digest, spec);
                let signed = self
                    .read_signatures(digest)
                    .and_then(|sigs| trusted_signer(component, &covered, &sigs, &trusted));
                if let Err(problem) = signed {
                    report.problems.push(problem);
                }
            }
        }
        Ok(report)
    }
}
