//! API keys: 256 random bits behind a readable prefix, stored only as SHA-256.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::Scope;
use crate::plugins::Secret;

/// The SHA-256 of a key: the only form the database ever holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

/// A key as presented in `X-Api-Key`.
pub struct ApiKey<'a>(pub &'a str);

impl ApiKey<'_> {
    pub fn hash(&self) -> KeyHash {
        KeyHash(Sha256::digest(self.0.as_bytes()).into())
    }

    /// A short, non-secret id of the key for rate limiting and logs.
    pub fn key_id(&self) -> String {
        hex::encode(&self.hash().0[..8])
    }
}

fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// A new key of `scope`: `pk_…` (write and read) or `rk_…` (read only).
pub fn generate_key(scope: Scope) -> Secret {
    let prefix = match scope {
        Scope::Write => "pk_",
        Scope::Read => "rk_",
    };
    Secret::new(format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(random_bytes())
    ))
}

/// A new signing secret: `prefix` + base64 of 32 random bytes.
pub fn generate_secret(prefix: &str) -> Secret {
    Secret::new(format!("{prefix}{}", STANDARD.encode(random_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_hash_stably() {
        let a = generate_key(Scope::Write);
        let b = generate_key(Scope::Read);
        assert!(a.expose().starts_with("pk_") && a.expose().len() == 46);
        assert!(b.expose().starts_with("rk_"));
        assert_ne!(ApiKey(a.expose()).hash(), ApiKey(b.expose()).hash());
        assert_eq!(ApiKey("x").hash(), ApiKey("x").hash());
        let secret = generate_secret("whsec_");
        let raw = STANDARD.decode(&secret.expose()["whsec_".len()..]).unwrap();
        assert_eq!(raw.len(), 32);
    }
}
