//! HMAC-SHA256 and SHA-256; tags are checked by the `hmac` crate's own
//! constant-time comparison ([`verify_hmac_sha256`]).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Whether `tag` is the HMAC-SHA256 of `message` under `key`. The
/// comparison is the `hmac` crate's own constant-time `verify_slice`, so
/// the time taken does not reveal how much of a forged tag was right; a tag
/// of the wrong length is simply wrong.
pub fn verify_hmac_sha256(key: &[u8], message: &[u8], tag: &[u8]) -> bool {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.verify_slice(tag).is_ok()
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn sha256_of_abc() {
        assert_eq!(
            hex::encode(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn verifies_hmac_tags() {
        let message: &[u8] = b"what do ya want for nothing?";
        let tag = hmac_sha256(b"Jefe", message);
        assert!(verify_hmac_sha256(b"Jefe", message, &tag));
        assert!(!verify_hmac_sha256(b"Jefe", b"what do ya want?", &tag));
        assert!(!verify_hmac_sha256(b"jefe", message, &tag));
        assert!(!verify_hmac_sha256(b"Jefe", message, &tag[..31]));
        assert!(!verify_hmac_sha256(b"Jefe", message, b""));
    }
}
