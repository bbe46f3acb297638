//! Signed publishing: once the registry trusts a key, every publish and
//! every load needs a signature by a trusted key, over the component and
//! the spec it is served with.

use super::*;
use crate::signing::{sign_covered, sign_v1};

/// A signature of `bytes` as `stripe@1` with no capabilities.
fn sign_one(secret: &SecretKey, bytes: &[u8]) -> ComponentSignature {
    sign_covered(secret, &request("stripe", "1", bytes).covered())
}

/// A registry trusting one key, and that key.
fn trusting() -> (tempfile::TempDir, Registry, SecretKey) {
    let (dir, registry) = registry();
    let (secret, public) = keygen().unwrap();
    assert_eq!(registry.trust(&public).unwrap(), public.id());
    (dir, registry, secret)
}

fn signed<'a>(bytes: &'a [u8], signature: &'a ComponentSignature) -> Publish<'a> {
    Publish {
        signature: Some(signature),
        activate: true,
        ..request("stripe", "1", bytes)
    }
}

#[test]
fn a_trusted_signature_is_accepted_recorded_and_checked_at_load() {
    let (_dir, registry, secret) = trusting();
    let signature = sign_one(&secret, b"one");
    let published = registry.publish(&signed(b"one", &signature)).unwrap();
    let key = secret.public_key().id();
    assert_eq!(published.signed_by.as_ref(), Some(&key));
    let release = registry.active_component("stripe").unwrap();
    assert_eq!(release.signed_by, Some(key));
    assert!(registry.verify().unwrap().is_ok());
}

#[test]
fn unsigned_badly_signed_and_stranger_signed_components_are_refused_at_publish() {
    let (_dir, registry, secret) = trusting();
    let (stranger, _) = keygen().unwrap();
    let for_other_bytes = sign_one(&secret, b"other");
    let by_stranger = sign_one(&stranger, b"one");
    // The same bytes and spec, signed to serve as another plugin.
    let as_sandbox = sign_covered(&secret, &request("sandbox", "1", b"one").covered());
    let cases = [
        (
            request("stripe", "1", b"one"),
            "is unsigned, but the registry trusts 1 signing key(s)",
        ),
        (
            signed(b"one", &for_other_bytes),
            "does not match the component",
        ),
        (
            signed(b"one", &by_stranger),
            "signed only by keys the registry does not trust",
        ),
        (signed(b"one", &as_sandbox), "does not match the component"),
    ];
    let before = snapshot(&registry);
    for (request, needle) in cases {
        let err = registry.publish(&request).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
        assert!(err.contains("stripe@1 (sha256:"), "{err}");
    }
    assert_eq!(snapshot(&registry), before);
}

#[test]
fn a_bad_signature_is_refused_even_when_no_key_is_trusted() {
    let (_dir, registry) = registry();
    let (secret, _) = keygen().unwrap();
    let for_other_bytes = sign_one(&secret, b"other");
    assert_refused!(
        registry.publish(&signed(b"one", &for_other_bytes)),
        RegistryError::BadSignature { .. }
    );
}

#[test]
fn signatures_are_optional_until_a_key_is_trusted_then_loads_need_one() {
    let (_dir, registry) = registry();
    publish(&registry, "1", b"one");
    assert!(registry.active_component("stripe").is_ok());

    let (secret, public) = keygen().unwrap();
    registry.trust(&public).unwrap();
    assert_refused!(
        registry.active_component("stripe"),
        RegistryError::Unsigned { .. }
    );
    assert_eq!(registry.verify().unwrap().problems.len(), 1);

    // Publishing the same version again with a signature signs it.
    let signature = sign_one(&secret, b"one");
    let again = registry.publish(&signed(b"one", &signature)).unwrap();
    assert_eq!(again.outcome, PublishOutcome::AlreadyPublished);
    assert!(registry.active_component("stripe").is_ok());
    assert_eq!(
        registry
            .get("stripe")
            .unwrap()
            .version("stripe", "1")
            .unwrap()
            .signed_by(),
        Some(&public.id())
    );
}

#[test]
fn a_removed_or_tampered_signature_file_is_refused_at_load() {
    let (_dir, registry, secret) = trusting();
    let signature = sign_one(&secret, b"one");
    let digest = registry
        .publish(&signed(b"one", &signature))
        .unwrap()
        .digest;
    let sig_file = registry
        .root()
        .join("signatures")
        .join(format!("{}.sig", digest.hex()));

    let forged = sign_one(&secret, b"other").to_string();
    std::fs::write(&sig_file, forged).unwrap();
    assert_refused!(
        registry.active_component("stripe"),
        RegistryError::BadSignature { .. }
    );

    std::fs::write(&sig_file, "ed25519:garbage\n").unwrap();
    let err = registry.active_component("stripe").unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "invalid signature in {}, line 1",
            sig_file.display()
        )),
        "{err}"
    );

    std::fs::remove_file(&sig_file).unwrap();
    assert_refused!(
        registry.active_component("stripe"),
        RegistryError::Unsigned { .. }
    );
}

#[test]
fn a_revoked_key_no_longer_vouches() {
    let (_dir, registry, secret) = trusting();
    let signature = sign_one(&secret, b"one");
    registry.publish(&signed(b"one", &signature)).unwrap();
    let (_, other) = keygen().unwrap();
    registry.trust(&other).unwrap();
    let key_file = registry
        .root()
        .join("trusted_keys")
        .join(format!("{}.pub", secret.public_key().id()));
    std::fs::remove_file(key_file).unwrap();
    assert_refused!(
        registry.active_component("stripe"),
        RegistryError::UntrustedSigner { .. }
    );
}

#[test]
fn a_trusted_key_file_that_is_not_a_key_is_an_error_naming_it() {
    let (_dir, registry) = registry();
    let path = registry.root().join("trusted_keys").join("ops.pub");
    std::fs::write(&path, "not a key").unwrap();
    let err = registry
        .publish(&request("stripe", "1", b"one"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "invalid trusted key file {}: expected 64 hex digits",
            path.display()
        )
    );
}

#[test]
fn a_signature_covers_the_spec_so_a_hand_edited_manifest_is_refused_at_load() {
    let (_dir, registry, secret) = trusting();
    let spec = PluginSpec::from_toml(
        "allowed_hosts = [\"api.stripe.com\"]\n[secrets]\nkey = \"env:PAYGATE_PLUGIN_SECRET_K\"",
    )
    .unwrap();
    let unsigned = Publish {
        spec: &spec,
        ..request("stripe", "1", b"one")
    };
    let signature = sign_covered(&secret, &unsigned.covered());
    let request = Publish {
        signature: Some(&signature),
        activate: true,
        ..unsigned
    };
    registry.publish(&request).unwrap();
    assert!(registry.active_component("stripe").is_ok());

    // Whoever can write the manifest widens what the signed component may reach.
    let path = registry.manifest_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replace("api.stripe.com", "attacker.example");
    assert_ne!(edited, text);
    std::fs::write(&path, edited).unwrap();
    assert_refused!(
        registry.active_component("stripe"),
        RegistryError::BadSignature { .. }
    );
    assert_eq!(registry.verify().unwrap().problems.len(), 1);
}

#[test]
fn a_signature_made_for_another_spec_is_refused_at_publish() {
    let (_dir, registry, secret) = trusting();
    let signature = sign_one(&secret, b"one");
    let wider = PluginSpec::from_toml("allowed_hosts = [\"attacker.example\"]").unwrap();
    let request = Publish {
        spec: &wider,
        ..signed(b"one", &signature)
    };
    let err = assert_refused!(
        registry.publish(&request),
        RegistryError::BadSignature { .. }
    );
    assert!(err.to_string().contains("its spec"), "{err}");
}

#[test]
fn a_v1_signature_of_the_component_alone_is_refused_at_publish_and_at_load() {
    let (_dir, registry, secret) = trusting();
    let v1 = sign_v1(&secret, b"one");
    assert_refused!(
        registry.publish(&signed(b"one", &v1)),
        RegistryError::LegacySignature { .. }
    );

    // A registry signed by an older release: its signature file holds a v1 line.
    let good = sign_one(&secret, b"one");
    let digest = registry.publish(&signed(b"one", &good)).unwrap().digest;
    let sig_file = registry
        .root()
        .join("signatures")
        .join(format!("{}.sig", digest.hex()));
    std::fs::write(&sig_file, format!("{v1}\n")).unwrap();
    let err = assert_refused!(
        registry.active_component("stripe"),
        RegistryError::LegacySignature { .. }
    );
    assert!(err.to_string().contains("sign it again"), "{err}");
    assert_eq!(registry.verify().unwrap().problems.len(), 1);

    // Publishing the same version again with a v2 signature migrates it.
    let again = registry.publish(&signed(b"one", &good)).unwrap();
    assert_eq!(again.outcome, PublishOutcome::AlreadyPublished);
    assert!(registry.active_component("stripe").is_ok());
    assert!(registry.verify().unwrap().is_ok());
}
