use std::sync::LazyLock;

use super::*;
use crate::signing::sign_covered;
use crate::{SecretKey, keygen};

mod concurrency;
mod signatures;

static NO_SPEC: LazyLock<PluginSpec> = LazyLock::new(PluginSpec::default);

fn registry() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path().join("registry")).unwrap();
    (dir, registry)
}

/// A provider adapter `name@version` with no capabilities, not activated.
fn request<'a>(name: &'a str, version: &'a str, bytes: &'a [u8]) -> Publish<'a> {
    Publish {
        name,
        version,
        bytes,
        kind: PluginKind::ProviderAdapter,
        spec: &NO_SPEC,
        signature: None,
        activate: false,
    }
}

fn publish(registry: &Registry, version: &str, bytes: &[u8]) -> Published {
    let request = Publish {
        activate: true,
        ..request("stripe", version, bytes)
    };
    registry.publish(&request).unwrap()
}

/// The files of the registry, to show that a refusal wrote nothing.
fn snapshot(registry: &Registry) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut dirs = vec![registry.root().to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn open_creates_the_layout_and_an_empty_manifest_once() {
    let (_dir, registry) = registry();
    for dir in ["blobs/sha256", "signatures", "trusted_keys"] {
        assert!(registry.root().join(dir).is_dir(), "{dir}");
    }
    assert_eq!(registry.revision().unwrap(), 0);
    publish(&registry, "1", b"one");
    let again = Registry::open(registry.root()).unwrap();
    assert_eq!(again.revision().unwrap(), 1, "reopening kept the manifest");
}

#[test]
fn a_published_and_activated_version_is_served_with_its_spec() {
    let (_dir, registry) = registry();
    let spec = PluginSpec::from_toml(
        "allowed_hosts = [\"api.stripe.com\"]\n[limits]\nmemory_mib = 8\n[secrets]\nkey = \"env:K\"",
    )
    .unwrap();
    let request = Publish {
        spec: &spec,
        activate: true,
        ..request("stripe", "1.0.0", b"v1")
    };
    let published = registry.publish(&request).unwrap();
    assert_eq!(published.outcome, PublishOutcome::Added);
    assert_eq!(published.digest, Digest::of(b"v1"));
    assert!(published.activated);
    assert_eq!(published.revision, 1);
    assert!(registry.blob_path(&published.digest).is_file());

    let release = registry.active_component("stripe").unwrap();
    assert_eq!(release.bytes, b"v1");
    assert_eq!(release.spec.version, "1.0.0");
    assert_eq!(release.spec.kind, Some(PluginKind::ProviderAdapter));
    assert_eq!(release.spec.allowed_hosts, spec.allowed_hosts);
    assert_eq!(release.spec.limits, spec.limits);
    assert_eq!(release.spec.secrets, spec.secrets);

    let list = registry.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].active.as_deref(), Some("1.0.0"));
    assert_eq!(list[0].digest, Some(published.digest));
    let entry = registry.get("stripe").unwrap();
    assert_eq!(entry.kind(), PluginKind::ProviderAdapter);
}

#[test]
fn a_version_published_without_activation_waits() {
    let (_dir, registry) = registry();
    registry.publish(&request("stripe", "1", b"one")).unwrap();
    assert_refused!(
        registry.active_component("stripe"),
        RegistryError::NoActiveVersion { .. }
    );
    assert_eq!(registry.release("stripe", "1").unwrap().bytes, b"one");
}

#[test]
fn publishing_the_same_bytes_again_changes_nothing() {
    let (_dir, registry) = registry();
    publish(&registry, "1", b"one");
    let before = snapshot(&registry);
    let again = publish(&registry, "1", b"one");
    assert_eq!(again.outcome, PublishOutcome::AlreadyPublished);
    assert!(!again.activated);
    assert_eq!(again.revision, 1);
    assert_eq!(snapshot(&registry), before);
}

#[test]
fn other_bytes_under_a_published_version_are_refused_and_nothing_is_written() {
    let (_dir, registry) = registry();
    publish(&registry, "1", b"one");
    let before = snapshot(&registry);
    assert_refused!(
        registry.publish(&request("stripe", "1", b"tampered")),
        RegistryError::VersionExists { .. }
    );
    assert_eq!(snapshot(&registry), before);
}

#[test]
fn malformed_requests_are_refused() {
    let (_dir, registry) = registry();
    let hosts = PluginSpec {
        allowed_hosts: vec!["https://x".into()],
        ..PluginSpec::default()
    };
    let verifier = PluginSpec {
        kind: Some(PluginKind::WebhookVerifier),
        ..PluginSpec::default()
    };
    let cases = [
        (
            request("Stripe", "1", b"x"),
            "invalid plugin name \"Stripe\"",
        ),
        (
            request("stripe", "1 0", b"x"),
            "invalid version \"1 0\" of plugin stripe",
        ),
        (
            Publish {
                spec: &hosts,
                ..request("stripe", "1", b"x")
            },
            "stripe@1: invalid plugin spec",
        ),
        (
            Publish {
                spec: &verifier,
                ..request("stripe", "1", b"x")
            },
            "implements the webhook-verifier world",
        ),
    ];
    for (request, needle) in cases {
        let err = registry.publish(&request).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert_eq!(registry.revision().unwrap(), 0);
}

#[test]
fn activate_and_rollback_move_between_published_versions() {
    let (_dir, registry) = registry();
    publish(&registry, "1", b"one");
    publish(&registry, "2", b"two");
    assert_eq!(registry.active_component("stripe").unwrap().bytes, b"two");

    let back = registry.rollback("stripe").unwrap();
    assert_eq!((back.from.as_deref(), back.to.as_str()), (Some("2"), "1"));
    assert_eq!(back.revision, 3);
    assert_eq!(registry.active_component("stripe").unwrap().bytes, b"one");

    let forward = registry.activate("stripe", "2").unwrap();
    assert!(forward.changed());
    let same = registry.activate("stripe", "2").unwrap();
    assert!(!same.changed());
    assert_eq!(same.revision, forward.revision, "a no-op is not a revision");
}

#[test]
fn activating_or_rolling_back_what_does_not_exist_is_refused() {
    let (_dir, registry) = registry();
    publish(&registry, "1", b"one");
    let err = registry.activate("stripe", "7").unwrap_err().to_string();
    assert_eq!(err, "plugin stripe has no version 7 (published: 1)");
    assert_refused!(
        registry.activate("paypal", "1"),
        RegistryError::UnknownPlugin { .. }
    );
    let err = registry.rollback("stripe").unwrap_err().to_string();
    assert_eq!(
        err,
        "plugin stripe has no earlier active version to roll back to"
    );
    assert_eq!(registry.revision().unwrap(), 1);
}

#[test]
fn a_hand_broken_manifest_is_refused_by_every_operation_and_left_alone() {
    let (_dir, registry) = registry();
    publish(&registry, "1", b"one");
    let path = registry.manifest_path();
    let broken = std::fs::read_to_string(&path)
        .unwrap()
        .replace("active = \"1\"", "active = 1\"");
    std::fs::write(&path, &broken).unwrap();

    let errors = [
        registry
            .publish(&request("stripe", "2", b"two"))
            .unwrap_err(),
        registry.activate("stripe", "1").unwrap_err(),
        registry.rollback("stripe").unwrap_err(),
        registry.active_component("stripe").unwrap_err(),
        registry.list().unwrap_err(),
        registry.verify().unwrap_err(),
    ];
    for err in errors {
        let text = err.to_string();
        assert!(
            text.contains(&format!("manifest {} is invalid", path.display())),
            "{text}"
        );
        assert!(text.contains("line"), "{text}");
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
}

#[test]
fn a_corrupt_blob_is_refused_at_load_reported_by_verify_and_healed_by_a_publish() {
    let (_dir, registry) = registry();
    let digest = publish(&registry, "1", b"one").digest;
    std::fs::write(registry.blob_path(&digest), b"flipped").unwrap();

    let err = assert_refused!(
        registry.active_component("stripe"),
        RegistryError::DigestMismatch { .. }
    );
    assert!(err.to_string().starts_with("stripe@1: blob "), "{err}");
    let report = registry.verify().unwrap();
    assert_eq!(
        (report.blobs, report.versions, report.problems.len()),
        (1, 1, 1)
    );

    publish(&registry, "1", b"one");
    assert!(registry.verify().unwrap().is_ok());
}

#[test]
fn a_missing_blob_is_refused_at_load() {
    let (_dir, registry) = registry();
    let digest = publish(&registry, "1", b"one").digest;
    std::fs::remove_file(registry.blob_path(&digest)).unwrap();
    assert_refused!(
        registry.active_component("stripe"),
        RegistryError::BlobMissing { .. }
    );
    assert!(!registry.verify().unwrap().is_ok());
}

#[test]
fn verify_checks_unreferenced_blobs_too() {
    let (_dir, registry) = registry();
    publish(&registry, "1", b"one");
    let stray = Digest::of(b"left by a crash");
    std::fs::write(registry.blob_path(&stray), b"not those bytes").unwrap();
    let report = registry.verify().unwrap();
    assert_eq!(report.blobs, 2);
    let problem = report.problems[0].to_string();
    assert!(problem.starts_with("unreferenced blob: blob "), "{problem}");
}

#[test]
fn no_temporary_files_are_left_behind() {
    let (_dir, registry) = registry();
    let (secret, public) = keygen().unwrap();
    registry.trust(&public).unwrap();
    let signature = sign_covered(&secret, &request("stripe", "1", b"one").covered());
    let request = Publish {
        signature: Some(&signature),
        ..request("stripe", "1", b"one")
    };
    registry.publish(&request).unwrap();
    registry.activate("stripe", "1").unwrap();
    let leftovers: Vec<_> = snapshot(&registry)
        .into_iter()
        .map(|(path, _)| path)
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
