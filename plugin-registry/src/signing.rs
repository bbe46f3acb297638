//! ed25519 keys and plugin signatures.
//!
//! A signature (format v2, text `ed25519-v2:<key>:<signature>`) covers a
//! plugin as it runs: its name, its component and its spec ([`Covered`]).
//! The signed message is the SHA-256 of `paygate-plugin-signature-v2\n`,
//! the 32 raw bytes of the component's digest, the 32 raw bytes of the
//! digest of the spec's canonical JSON ([`PluginSpec::canonical_json`]) and
//! the plugin's name: signing and checking costs a few hashes, no one can
//! widen a signed plugin's hosts, limits, config or secrets without
//! breaking its signature, and a plugin signed as `sandbox` cannot be served
//! as `stripe` (where the alias bindings would send it other payments).
//!
//! Format v1 (`ed25519:<key>:<signature>`, the component's digest alone) is
//! still read, so old signature files parse and say what they are, but it
//! never vouches for anything: a v1 signature is refused with
//! [`RegistryError::LegacySignature`], and the plugin must be signed again.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::files::write_atomic;
use crate::{Digest, PluginSpec, RegistryError};

/// What starts a secret key file, so it is never taken for a public key.
const SECRET_PREFIX: &str = "ed25519-secret-key:";
/// What starts a line of a signature file in the current format.
const SIGNATURE_PREFIX: &str = "ed25519-v2:";
/// What started a signature of the component alone (format v1).
const LEGACY_PREFIX: &str = "ed25519:";
/// Separates what a v2 signature signs from any other use of the key.
const DOMAIN: &[u8] = b"paygate-plugin-signature-v2\n";

/// A signing key. It never prints: `Debug` shows `[redacted]` and there is
/// no `Display`; it reaches a file only through [`SecretKey::save`], and its
/// memory is wiped when dropped.
pub struct SecretKey(SigningKey);

/// A public key that checks signatures; its text form is 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

/// A short name of a public key: its first 16 hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

/// A signature of a plugin, with the public key that made it.
/// Text form: `ed25519-v2:<public key hex>:<signature hex>` (or, read only,
/// the v1 form `ed25519:...`).
#[derive(Clone, PartialEq, Eq)]
pub struct ComponentSignature {
    key: PublicKey,
    signature: Signature,
    format: Format,
}

/// What a signature's bytes sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// The component's digest alone; never accepted.
    V1,
    /// [`Covered::message`].
    V2,
}

/// What a signature vouches for: a plugin's name, its component and the
/// spec it runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Covered {
    /// The name the plugin is served under (a registry or directory name).
    pub name: String,
    /// The SHA-256 of the component's bytes.
    pub component: Digest,
    /// The SHA-256 of the spec's canonical JSON.
    pub spec: Digest,
}

impl Covered {
    /// The plugin `name`, its component known by its digest, with `spec`
    /// exactly as it will be loaded (for a registry version,
    /// [`PluginSpec::released`]).
    pub fn new(name: &str, component: Digest, spec: &PluginSpec) -> Self {
        Self {
            name: name.to_owned(),
            component,
            spec: spec.canonical_digest(),
        }
    }

    /// The 32 bytes a v2 signature signs. The name comes last and is the
    /// only part of variable length, so no two coverings share a message.
    fn message(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(DOMAIN);
        hash.update(self.component.as_bytes());
        hash.update(self.spec.as_bytes());
        hash.update(self.name.as_bytes());
        hash.finalize().into()
    }
}

/// Makes a new key pair from the operating system's random source.
pub fn keygen() -> Result<(SecretKey, PublicKey), RegistryError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(RegistryError::Random)?;
    let secret = SecretKey(SigningKey::from_bytes(&seed));
    seed.fill(0);
    let public = secret.public_key();
    Ok((secret, public))
}

/// Signs a plugin: the signature covers its `name`, the component's bytes
/// and `spec`, which must be the spec exactly as it will be loaded.
pub fn sign(
    secret: &SecretKey,
    name: &str,
    component: &[u8],
    spec: &PluginSpec,
) -> ComponentSignature {
    sign_covered(secret, &Covered::new(name, Digest::of(component), spec))
}

/// Signs what `covered` names.
pub fn sign_covered(secret: &SecretKey, covered: &Covered) -> ComponentSignature {
    ComponentSignature {
        key: secret.public_key(),
        signature: secret.0.sign(&covered.message()),
        format: Format::V2,
    }
}

/// A v1 signature (the component's digest alone), as older releases made
/// them: only for tests that show it is refused.
#[cfg(test)]
pub(crate) fn sign_v1(secret: &SecretKey, component: &[u8]) -> ComponentSignature {
    ComponentSignature {
        key: secret.public_key(),
        signature: secret.0.sign(Digest::of(component).as_bytes()),
        format: Format::V1,
    }
}

impl SecretKey {
    /// The public half, to hand to [`crate::Registry::trust`].
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Writes the key to a new file readable by its owner only; an existing
    /// file is never overwritten.
    pub fn save(&self, path: &Path) -> Result<(), RegistryError> {
        use std::io::Write as _;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(path)
            .map_err(RegistryError::io("create", path))?;
        let text = format!("{SECRET_PREFIX}{}\n", hex::encode(self.0.to_bytes()));
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(RegistryError::io("write", path))
    }

    /// Reads a key written by [`SecretKey::save`].
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(RegistryError::io("read", path))?;
        let what = format!("secret key file {}", path.display());
        let Some(hex_part) = text.trim().strip_prefix(SECRET_PREFIX) else {
            return Err(RegistryError::InvalidKey {
                what,
                reason: "it does not start with `ed25519-secret-key:` (is it a public key?)",
            });
        };
        // The error never quotes the text: it is secret.
        let seed = parse_hex::<32>(hex_part).ok_or(RegistryError::InvalidKey {
            what,
            reason: "expected 64 hex digits after `ed25519-secret-key:`",
        })?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

impl PublicKey {
    /// The key's short name, recorded as `signed_by` in the manifest.
    pub fn id(&self) -> KeyId {
        KeyId(self.to_string()[..16].to_owned())
    }

    /// Parses a public key; `what` names its origin in the error.
    pub(crate) fn parse(text: &str, what: impl Into<String>) -> Result<Self, RegistryError> {
        let text = text.trim();
        let what = what.into();
        let invalid = |reason| RegistryError::InvalidKey {
            what: what.clone(),
            reason,
        };
        if text.starts_with(SECRET_PREFIX) {
            return Err(invalid(
                "this is a secret key; trust its public key (printed by keygen) instead",
            ));
        }
        let bytes = parse_hex::<32>(text).ok_or_else(|| invalid("expected 64 hex digits"))?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| invalid("not a point on the ed25519 curve"))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = RegistryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s, "public key")
    }
}

impl TryFrom<String> for KeyId {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(KeyId(s))
        } else {
            Err(format!("key id {s:?} must be 16 lower-case hex digits"))
        }
    }
}

impl From<KeyId> for String {
    fn from(id: KeyId) -> String {
        id.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl ComponentSignature {
    /// The key that made the signature (not necessarily a trusted one).
    pub fn signer(&self) -> &PublicKey {
        &self.key
    }

    /// Whether this signature, by its own key, covers `covered`. A v1
    /// signature covers nothing: it never signed a spec.
    pub fn verifies(&self, covered: &Covered) -> bool {
        self.format == Format::V2
            && self
                .key
                .0
                .verify_strict(&covered.message(), &self.signature)
                .is_ok()
    }

    /// Whether this is a v1 signature (the component alone), which is read
    /// but never accepted.
    pub fn is_legacy(&self) -> bool {
        self.format == Format::V1
    }
}

impl fmt::Display for ComponentSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sig = hex::encode(self.signature.to_bytes());
        let prefix = match self.format {
            Format::V1 => LEGACY_PREFIX,
            Format::V2 => SIGNATURE_PREFIX,
        };
        write!(f, "{prefix}{}:{sig}", self.key)
    }
}

impl fmt::Debug for ComponentSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ComponentSignature(by {})", self.key.id())
    }
}

impl FromStr for ComponentSignature {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shape =
            "expected ed25519-v2:<64 hex digits of public key>:<128 hex digits of signature>";
        let s = s.trim();
        let (format, rest) = match s.strip_prefix(SIGNATURE_PREFIX) {
            Some(rest) => (Format::V2, rest),
            None => (Format::V1, s.strip_prefix(LEGACY_PREFIX).ok_or(shape)?),
        };
        let (key, sig) = rest.split_once(':').ok_or(shape)?;
        let key = PublicKey::parse(key, "signer key").map_err(|e| e.to_string())?;
        let signature = parse_hex::<64>(sig).ok_or(shape)?;
        Ok(Self {
            key,
            signature: Signature::from_bytes(&signature),
            format,
        })
    }
}

/// Exactly `N` bytes written as `2 * N` hex digits.
fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// The trusted key that vouches for `covered` among `signatures`, or why
/// none does; `component` names the plugin in the error. With no trusted
/// keys, signatures are optional: `Ok(None)`.
pub fn trusted_signer(
    component: &str,
    covered: &Covered,
    signatures: &[ComponentSignature],
    trusted: &[PublicKey],
) -> Result<Option<KeyId>, RegistryError> {
    if trusted.is_empty() {
        return Ok(None);
    }
    let by_trusted = signatures.iter().filter(|s| trusted.contains(&s.key));
    let (mut bad, mut legacy) = (None, None);
    for signature in by_trusted {
        if signature.verifies(covered) {
            return Ok(Some(signature.key.id()));
        }
        match signature.format {
            Format::V1 => legacy = Some(signature.key.id()),
            Format::V2 => bad = Some(signature.key.id()),
        }
    }
    let (component, digest) = (component.to_owned(), covered.component);
    Err(match (bad, legacy) {
        (Some(key), _) => RegistryError::BadSignature {
            component,
            digest,
            key,
        },
        (None, Some(key)) => RegistryError::LegacySignature {
            component,
            digest,
            key,
        },
        _ if signatures.is_empty() => RegistryError::Unsigned {
            component,
            digest,
            trusted: trusted.len(),
        },
        _ => RegistryError::UntrustedSigner {
            component,
            digest,
            keys: signatures.iter().map(|s| s.key.id()).collect(),
        },
    })
}

/// The signatures in a signature file, one per line; none if there is no
/// file. A line that is not a signature is an error naming the line.
pub fn read_signature_file(path: &Path) -> Result<Vec<ComponentSignature>, RegistryError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RegistryError::io("read", path)(e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            line.parse()
                .map_err(|reason| RegistryError::InvalidSignatureFile {
                    path: path.to_owned(),
                    line: i + 1,
                    reason,
                })
        })
        .collect()
}

/// Adds `signature` to the signature file at `path` (created if missing),
/// keeping the signatures already there; the file is replaced atomically.
pub fn add_to_signature_file(
    path: &Path,
    signature: &ComponentSignature,
) -> Result<(), RegistryError> {
    let mut signatures = read_signature_file(path)?;
    if signatures.contains(signature) {
        return Ok(());
    }
    signatures.push(signature.clone());
    let text: String = signatures.iter().map(|s| format!("{s}\n")).collect();
    write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_its_own_name_component_and_spec() {
        let (secret, public) = keygen().unwrap();
        let spec = PluginSpec::default();
        let sig = sign(&secret, "p", b"component", &spec);
        assert_eq!(sig.signer(), &public);
        assert!(sig.to_string().starts_with("ed25519-v2:"));
        assert!(sig.verifies(&Covered::new("p", Digest::of(b"component"), &spec)));
        assert!(!sig.verifies(&Covered::new("p", Digest::of(b"other component"), &spec)));
        let wider = PluginSpec {
            allowed_hosts: vec!["attacker.example".into()],
            ..PluginSpec::default()
        };
        assert!(!sig.verifies(&Covered::new("p", Digest::of(b"component"), &wider)));
        // Signed as `p`, it is not a signature of the same bytes served as
        // another plugin.
        assert!(!sig.verifies(&Covered::new("stripe", Digest::of(b"component"), &spec)));
        assert!(!sig.verifies(&Covered::new("p2", Digest::of(b"component"), &spec)));
    }

    #[test]
    fn a_v1_signature_parses_but_never_vouches() {
        let (secret, trusted) = keygen().unwrap();
        let spec = PluginSpec::default();
        let v1 = sign_v1(&secret, b"c");
        let text = v1.to_string();
        assert!(text.starts_with("ed25519:"), "{text}");
        let parsed: ComponentSignature = text.parse().unwrap();
        assert!(parsed.is_legacy());
        let covered = Covered::new("p", Digest::of(b"c"), &spec);
        assert!(!parsed.verifies(&covered));
        let err = trusted_signer("p@1", &covered, &[parsed], &[trusted]).unwrap_err();
        assert!(
            matches!(err, RegistryError::LegacySignature { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("v1"), "{err}");
    }

    #[test]
    fn signatures_and_keys_round_trip_through_text() {
        let (secret, public) = keygen().unwrap();
        let sig = sign(&secret, "p", b"x", &PluginSpec::default());
        assert_eq!(sig.to_string().parse::<ComponentSignature>().unwrap(), sig);
        assert_eq!(public.to_string().parse::<PublicKey>().unwrap(), public);
        assert_eq!(public.id().to_string().len(), 16);
    }

    #[test]
    fn secret_keys_never_print_and_survive_a_file() {
        let (secret, public) = keygen().unwrap();
        assert_eq!(format!("{secret:?}"), "SecretKey([redacted])");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        secret.save(&path).unwrap();
        assert_eq!(SecretKey::load(&path).unwrap().public_key(), public);
        let again = secret.save(&path).unwrap_err().to_string();
        assert!(again.contains("cannot create"), "{again}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_secret_key_is_refused_where_a_public_key_belongs() {
        let (secret, _) = keygen().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        secret.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let err = text.parse::<PublicKey>().unwrap_err().to_string();
        assert!(err.contains("this is a secret key"), "{err}");
        assert!(!err.contains(text.trim()), "the error quotes the secret");
    }

    #[test]
    fn malformed_text_is_refused() {
        assert!("abc".parse::<PublicKey>().is_err());
        assert!("ed25519:abc:def".parse::<ComponentSignature>().is_err());
        assert!(KeyId::try_from("XYZ".to_owned()).is_err());
    }

    #[test]
    fn trust_policy_names_what_is_wrong() {
        let (trusted_secret, trusted) = keygen().unwrap();
        let (stranger_secret, _) = keygen().unwrap();
        let spec = PluginSpec::default();
        let covered = Covered::new("p", Digest::of(b"c"), &spec);
        let good = sign(&trusted_secret, "p", b"c", &spec);
        let forged = sign(&trusted_secret, "p", b"something else", &spec);
        let stranger = sign(&stranger_secret, "p", b"c", &spec);
        let check = |sigs: &[ComponentSignature]| trusted_signer("p@1", &covered, sigs, &[trusted]);

        assert_eq!(trusted_signer("p@1", &covered, &[], &[]).unwrap(), None);
        assert_eq!(
            check(&[stranger.clone(), good]).unwrap(),
            Some(trusted.id())
        );
        assert_refused!(check(&[]), RegistryError::Unsigned { .. });
        assert_refused!(check(&[forged]), RegistryError::BadSignature { .. });
        assert_refused!(check(&[stranger]), RegistryError::UntrustedSigner { .. });
    }
}
