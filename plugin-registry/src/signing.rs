//! ed25519 keys and component signatures.
//!
//! A signature covers the 32 raw bytes of the component's SHA-256 digest
//! (not its hex form, not the whole component): signing and checking a
//! large component costs one hash, and the digest is already its identity.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{Digest, RegistryError};

/// What starts a secret key file, so it is never taken for a public key.
const SECRET_PREFIX: &str = "ed25519-secret-key:";
/// What starts each line of a signature file.
const SIGNATURE_PREFIX: &str = "ed25519:";

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

/// A signature of a component's digest, with the public key that made it.
/// Text form: `ed25519:<public key hex>:<signature hex>`.
#[derive(Clone, PartialEq, Eq)]
pub struct ComponentSignature {
    key: PublicKey,
    signature: Signature,
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

/// Signs a component: the signature covers the SHA-256 digest of `component`.
pub fn sign(secret: &SecretKey, component: &[u8]) -> ComponentSignature {
    sign_digest(secret, &Digest::of(component))
}

/// Signs a component known by its digest.
pub fn sign_digest(secret: &SecretKey, digest: &Digest) -> ComponentSignature {
    ComponentSignature {
        key: secret.public_key(),
        signature: secret.0.sign(digest.as_bytes()),
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

    /// Whether this signature, by its own key, covers `digest`.
    pub fn verifies(&self, digest: &Digest) -> bool {
        self.key
            .0
            .verify_strict(digest.as_bytes(), &self.signature)
            .is_ok()
    }
}

impl fmt::Display for ComponentSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sig = hex::encode(self.signature.to_bytes());
        write!(f, "{SIGNATURE_PREFIX}{}:{sig}", self.key)
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
        let shape = "expected ed25519:<64 hex digits of public key>:<128 hex digits of signature>";
        let (key, sig) = s
            .trim()
            .strip_prefix(SIGNATURE_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .ok_or(shape)?;
        let key = PublicKey::parse(key, "signer key").map_err(|e| e.to_string())?;
        let signature = parse_hex::<64>(sig).ok_or(shape)?;
        Ok(Self {
            key,
            signature: Signature::from_bytes(&signature),
        })
    }
}

/// Exactly `N` bytes written as `2 * N` hex digits.
fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// The trusted key that vouches for `digest` among `signatures`, or why
/// none does. With no trusted keys, signatures are optional: `Ok(None)`.
pub(crate) fn trusted_signer(
    component: &str,
    digest: &Digest,
    signatures: &[ComponentSignature],
    trusted: &[PublicKey],
) -> Result<Option<KeyId>, RegistryError> {
    if trusted.is_empty() {
        return Ok(None);
    }
    let by_trusted = signatures.iter().filter(|s| trusted.contains(&s.key));
    let mut bad = None;
    for signature in by_trusted {
        if signature.verifies(digest) {
            return Ok(Some(signature.key.id()));
        }
        bad = Some(signature.key.id());
    }
    let (component, digest) = (component.to_owned(), *digest);
    Err(match bad {
        Some(key) => RegistryError::BadSignature {
            component,
            digest,
            key,
        },
        None if signatures.is_empty() => RegistryError::Unsigned {
            component,
            digest,
            trusted: trusted.len(),
        },
        None => RegistryError::UntrustedSigner {
            component,
            digest,
            keys: signatures.iter().map(|s| s.key.id()).collect(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_its_own_digest() {
        let (secret, public) = keygen().unwrap();
        let sig = sign(&secret, b"component");
        assert_eq!(sig.signer(), &public);
        assert!(sig.verifies(&Digest::of(b"component")));
        assert!(!sig.verifies(&Digest::of(b"other component")));
    }

    #[test]
    fn signatures_and_keys_round_trip_through_text() {
        let (secret, public) = keygen().unwrap();
        let sig = sign(&secret, b"x");
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
        let digest = Digest::of(b"c");
        let good = sign(&trusted_secret, b"c");
        let forged = sign(&trusted_secret, b"something else");
        let stranger = sign(&stranger_secret, b"c");
        let check = |sigs: &[ComponentSignature]| trusted_signer("p@1", &digest, sigs, &[trusted]);

        assert_eq!(trusted_signer("p@1", &digest, &[], &[]).unwrap(), None);
        assert_eq!(
            check(&[stranger.clone(), good]).unwrap(),
            Some(trusted.id())
        );
        assert_refused!(check(&[]), RegistryError::Unsigned { .. });
        assert_refused!(check(&[forged]), RegistryError::BadSignature { .. });
        assert_refused!(check(&[stranger]), RegistryError::UntrustedSigner { .. });
    }
}
