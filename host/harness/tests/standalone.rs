//! The standalone `paygate-plugin` binary runs the same suites as
//! `paygate plugin test|run`, on the components `plugins/build.sh` leaves in
//! `plugins/dist/` (scripts/test builds them first).

use std::path::PathBuf;
use std::process::Command;

fn dist(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/dist")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run plugins/build.sh first",
        path.display()
    );
    path.display().to_string()
}

/// Runs `paygate-plugin` with `args`; its exit code and stdout.
fn paygate_plugin(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_paygate-plugin"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("running paygate-plugin");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn passes_a_good_adapter_and_fails_a_broken_one_with_junit() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().display().to_string();
    let (code, stdout) =
        paygate_plugin(&["test", &dist("stripe_adapter"), "--cache-dir", &cache_dir]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains(" 0 failed"), "{stdout}");

    let junit = cache.path().join("chaos.xml");
    let (code, stdout) = paygate_plugin(&[
        "test",
        &dist("chaos"),
        "--cache-dir",
        &cache_dir,
        "--junit",
        &junit.display().to_string(),
    ]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("FAIL  success"), "{stdout}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let failures = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count();
    assert!(failures > 0, "{xml}");
}

#[test]
fn runs_one_policy_call_from_json() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("case.json");
    std::fs::write(&input, r#"{"input": {"client_ip": "198.51.100.9"}}"#).unwrap();
    let (code, stdout) = paygate_plugin(&[
        "run",
        &dist("token_bucket"),
        "--input",
        &input.display().to_string(),
        "--cache-dir",
        &dir.path().display().to_string(),
    ]);
    assert_eq!(code, 0, "{stdout}");
    let printed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(printed["world"], "rate-limit-policy");
    assert_eq!(printed["result"]["ok"]["allowed"], true);
    assert_eq!(printed["result"]["ok"]["limit"], 40);
}

#[test]
fn refuses_a_file_that_is_not_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"not wasm").unwrap();
    let (code, stdout) = paygate_plugin(&["test", &bogus.display().to_string()]);
    assert_ne!(code, 0, "{stdout}");
}
