//! Secrets at rest. A merchant's webhook secret and request-signing secret
//! must be read back to sign with, so they cannot be hashed like API keys:
//! they are sealed with AES-256-GCM under `PAYGATE_SECRETS_KEY` before they
//! reach the database, bound to the column they belong to, and opened when
//! read. Whoever reads the merchants database without the key learns none
//! of them (security review, finding 18).
//!
//! A sealed value reads `sealed:v1:<key id>:<base64 of nonce ‖ ciphertext>`;
//! the key id (the first 8 hex digits of the key's SHA-256) says which key
//! opens it, so keys can be rotated: the new key in `PAYGATE_SECRETS_KEY`,
//! the old ones in `PAYGATE_SECRETS_KEY_PREVIOUS` until `paygate merchants
//! reseal` has sealed every value anew. A value without the prefix was
//! written before sealing existed and is read as it is (reseal seals it).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::plugins::Secret;

const PREFIX: &str = "sealed:v1:";
const NONCE_BYTES: usize = 12;

/// The demo's key: public, like every demo secret, so used only with `--demo`.
pub const DEMO_SECRETS_KEY: &str = "cGF5Z2F0ZS1kZW1vLXNlY3JldHMta2V5LXB1YmxpYyE=";

/// Why a secrets key or a sealed value was refused.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{setting} is not 32 bytes in base64 (make one with `openssl rand -base64 32`)")]
    BadKey { setting: &'static str },
    #[error(
        "a sealed secret names key {key_id}, which is neither PAYGATE_SECRETS_KEY nor one of PAYGATE_SECRETS_KEY_PREVIOUS"
    )]
    UnknownKey { key_id: String },
    #[error("a sealed secret is malformed or was altered")]
    Corrupt,
}

struct Key {
    id: String,
    cipher: Aes256Gcm,
}

impl Key {
    fn parse(text: &str, setting: &'static str) -> Result<Self, SealError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| SealError::BadKey { setting })?;
        let cipher =
            Aes256Gcm::new_from_slice(&bytes).map_err(|_| SealError::BadKey { setting })?;
        let id = hex::encode(&Sha256::digest(&bytes)[..4]);
        Ok(Self { id, cipher })
    }
}

/// Seals secrets under the current key and opens them under any known one.
pub struct Sealer {
    current: Key,
    previous: Vec<Key>,
}

impl Sealer {
    /// `current` and `previous` are base64 of 32 bytes each.
    pub fn new(current: &Secret, previous: &[Secret]) -> Result<Self, SealError> {
        Ok(Self {
            current: Key::parse(current.expose(), "PAYGATE_SECRETS_KEY")?,
            previous: (previous.iter())
                .map(|k| Key::parse(k.expose(), "PAYGATE_SECRETS_KEY_PREVIOUS"))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Seals `secret` for `column` (a sealed value opens only for the
    /// column it was sealed for).
    pub fn seal(&self, secret: &str, column: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: secret.as_bytes(),
            aad: column.as_bytes(),
        };
        let sealed = (self.current.cipher)
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("AES-GCM seals any message shorter than 64 GiB");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", self.current.id, BASE64.encode(bytes))
    }

    /// The secret `stored` holds for `column`: opened if sealed, as it is if
    /// it predates sealing.
    pub fn open(&self, stored: &str, column: &str) -> Result<Secret, SealError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(Secret::new(stored));
        };
        let (key_id, encoded) = rest.split_once(':').ok_or(SealError::Corrupt)?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == key_id)
            .ok_or_else(|| SealError::UnknownKey {
                key_id: key_id.to_owned(),
            })?;
        let bytes = BASE64.decode(encoded).map_err(|_| SealError::Corrupt)?;
        if bytes.len() < NONCE_BYTES {
            return Err(SealError::Corrupt);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let payload = Payload {
            msg: sealed,
            aad: column.as_bytes(),
        };
        let opened = (key.cipher)
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| SealError::Corrupt)?;
        String::from_utf8(opened)
            .map(Secret::new)
            .map_err(|_| SealError::Corrupt)
    }

    /// Whether `stored` is sealed under the current key already.
    pub fn is_current(&self, stored: &str) -> bool {
        stored
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(key_id, _)| key_id == self.current.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Secret {
        Secret::new(BASE64.encode([byte; 32]))
    }

    #[test]
    fn seals_and_opens_for_its_column_only() {
        let sealer = Sealer::new(&key(1), &[]).unwrap();
        let sealed = sealer.seal("whsec_abc", "webhook_secret");
        assert!(sealed.starts_with("sealed:v1:") && !sealed.contains("whsec_abc"));
        assert_ne!(
            sealed,
            sealer.seal("whsec_abc", "webhook_secret"),
            "fresh nonce"
        );
        assert_eq!(
            sealer.open(&sealed, "webhook_secret").unwrap().expose(),
            "whsec_abc"
        );
        assert!(matches!(
            sealer.open(&sealed, "request_signing_secret"),
            Err(SealError::Corrupt)
        ));
        let mut altered = sealed.clone();
        altered.pop();
        altered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(sealer.open(&altered, "webhook_secret").is_err());
        assert_eq!(
            sealer
                .open("whsec_legacy", "webhook_secret")
                .unwrap()
                .expose(),
            "whsec_legacy"
        );
    }

    #[test]
    fn a_rotated_key_still_opens_what_the_old_one_sealed() {
        let old = Sealer::new(&key(1), &[]).unwrap();
        let sealed = old.seal("s3cret", "c");
        let rotated = Sealer::new(&key(2), &[key(1)]).unwrap();
        assert_eq!(rotated.open(&sealed, "c").unwrap().expose(), "s3cret");
        assert!(!rotated.is_current(&sealed) && rotated.is_current(&rotated.seal("x", "c")));
        let forgotten = Sealer::new(&key(2), &[]).unwrap();
        assert!(matches!(
            forgotten.open(&sealed, "c"),
            Err(SealError::UnknownKey { .. })
        ));
    }

    #[test]
    fn keys_must_be_32_bytes() {
        for bad in ["", "short", "!!!", &BASE64.encode([0u8; 16])] {
            let error = Sealer::new(&Secret::new(bad), &[]).err().unwrap();
            assert!(error.to_string().contains("PAYGATE_SECRETS_KEY"), "{error}");
        }
        assert!(Sealer::new(&Secret::new(DEMO_SECRETS_KEY), &[]).is_ok());
    }
}
