//! docs/plugins.md's quick start, run exactly as written: `plugin new`, the
//! project's `./build.sh`, `plugin test`, `plugins publish` and `plugins
//! activate`, with the `paygate` of this build first on PATH.

use std::process::Command;

/// The first `sh` block after the `## Quick start` heading of docs/plugins.md.
fn quick_start() -> String {
    let guide = std::fs::read_to_string(crate::helpers::root().join("docs/plugins.md")).unwrap();
    let (_, section) = guide
        .split_once("\n## Quick start\n")
        .expect("docs/plugins.md has a `## Quick start` section");
    let (_, block) = section
        .split_once("```sh\n")
        .expect("the quick start has an sh block");
    let (commands, _) = block.split_once("```").unwrap();
    commands.to_owned()
}

#[test]
fn the_quick_start_of_the_plugin_guide_runs_as_written() {
    let commands = quick_start();
    let steps: Vec<&str> = commands.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(steps.len(), 5, "five commands:\n{commands}");
    for (step, verb) in steps
        .iter()
        .zip(["new", "build", "test", "publish", "activate"])
    {
        assert!(step.contains(verb), "{step:?} is not the {verb} step");
    }

    let dir = tempfile::tempdir().unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_paygate"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &commands])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("PAYGATE_REGISTRY_DIR", dir.path().join("registry"))
        .env("PAYGATE_PLUGIN_CACHE_DIR", dir.path().join("cache"))
        // The cargo running this test holds its own target directory.
        .env("CARGO_TARGET_DIR", dir.path().join("target"))
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{commands}\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(" 0 failed"),
        "plugin test is green:\n{stdout}"
    );

    // What the last two commands left: the registry serves acmepay 0.1.0.
    let list = Command::new(env!("CARGO_BIN_EXE_paygate"))
        .args(["plugins", "list"])
        .env("PAYGATE_REGISTRY_DIR", dir.path().join("registry"))
        .env_remove("PAYGATE_ADMIN_TOKEN")
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    let row = listed
        .lines()
        .find(|l| l.starts_with("acmepay"))
        .unwrap_or_else(|| panic!("acmepay is not in the registry:\n{listed}"));
    assert!(
        row.contains("provider-adapter") && row.contains("0.1.0"),
        "{row}"
    );
}
