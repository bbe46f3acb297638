//! Two operators at once: every change lands, and readers always see a
//! whole, valid manifest.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

const CHANGES_EACH: usize = 12;
/// Set for the child processes of `two_processes_publishing_at_once_lose_nothing`.
const CHILD_ROOT: &str = "PAYGATE_REGISTRY_TEST_ROOT";
const CHILD_NAME: &str = "PAYGATE_REGISTRY_TEST_WRITER";

/// Publishes and activates `CHANGES_EACH` versions named after `writer`,
/// through a registry handle of its own.
fn publish_many(root: &Path, writer: &str) {
    let registry = Registry::open(root).unwrap();
    for i in 0..CHANGES_EACH {
        let version = format!("{writer}.{i}");
        publish(&registry, &version, version.as_bytes());
    }
}

/// Every change of both writers is in the manifest, one revision each.
fn assert_nothing_lost(registry: &Registry, writers: &[&str]) {
    let manifest = registry.manifest().unwrap();
    let total = CHANGES_EACH * writers.len();
    assert_eq!(manifest.revision(), total as u64);
    let stripe = manifest.plugin("stripe").unwrap();
    assert_eq!(stripe.versions().count(), total);
    assert_eq!(
        stripe.previous().len(),
        (total - 1).min(crate::ROLLBACK_HISTORY)
    );
    assert!(registry.verify().unwrap().is_ok());
}

#[test]
fn two_threads_publishing_at_once_lose_nothing_and_readers_see_whole_manifests() {
    let (_dir, registry) = registry();
    let (root, done) = (registry.root(), AtomicBool::new(false));
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut last = 0;
            while !done.load(Ordering::Relaxed) {
                let revision = registry.revision().expect("a reader saw a broken manifest");
                assert!(
                    revision >= last,
                    "revision went back from {last} to {revision}"
                );
                last = revision;
            }
        });
        let writers = ["a", "b"].map(|w| s.spawn(move || publish_many(root, w)));
        for writer in writers {
            writer.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        reader.join().unwrap();
    });
    assert_nothing_lost(&registry, &["a", "b"]);
}

#[test]
fn two_processes_publishing_at_once_lose_nothing() {
    let (_dir, registry) = registry();
    let this_test_binary = std::env::current_exe().unwrap();
    let children = ["p", "q"].map(|writer| {
        Command::new(&this_test_binary)
            .args([
                "--ignored",
                "--exact",
                "--quiet",
                "store::tests::concurrency::child_writer",
            ])
            .env(CHILD_ROOT, registry.root())
            .env(CHILD_NAME, writer)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    });
    for child in children {
        let out = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "a writer failed:\n{said}");
    }
    assert_nothing_lost(&registry, &["p", "q"]);
}

/// One writer of `two_processes_publishing_at_once_lose_nothing`; does
/// nothing when run on its own.
#[test]
#[ignore = "a child process of two_processes_publishing_at_once_lose_nothing"]
fn child_writer() {
    if let (Ok(root), Ok(writer)) = (std::env::var(CHILD_ROOT), std::env::var(CHILD_NAME)) {
        publish_many(Path::new(&root), &writer);
    }
}
