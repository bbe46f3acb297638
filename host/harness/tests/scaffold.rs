//! `paygate-plugin new` makes each of the nine projects (three worlds, three
//! languages); each builds with its own `./build.sh`, as written, and passes
//! `paygate-plugin test` unchanged.
//!
//! The Python and JavaScript projects install componentize-py and
//! componentize-js from PyPI and npm, as the examples do. Where `python3` or
//! `npm` is missing they are skipped with a message, unless
//! `PAYGATE_REQUIRE_POLYGLOT=1` (CI), where that is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const WORLDS: [&str; 3] = ["provider-adapter", "webhook-verifier", "rate-limit-policy"];

mod common;

/// Runs `paygate-plugin` with `args`; its exit code, stdout and stderr.
fn paygate_plugin(args: &[&str]) -> (i32, String, String) {
    let ran = common::paygate_plugin(args);
    (ran.code, ran.stdout, ran.stderr)
}

/// Whether `lang`'s toolchain is here; panics where CI requires it.
fn toolchain_present(lang: &str, command: &str) -> bool {
    let present = Command::new(command)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        assert!(
            std::env::var("PAYGATE_REQUIRE_POLYGLOT").as_deref() != Ok("1"),
            "{command} is not on PATH, and PAYGATE_REQUIRE_POLYGLOT=1 requires the {lang} projects"
        );
        eprintln!("skipped: the {lang} projects need {command}, which is not on PATH");
    }
    present
}

/// Makes, builds and tests the project of each world in `lang`; prints how
/// long each took from `new` to a green `test`.
fn new_build_test(lang: &str, env: &[(&str, &Path)]) {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache").display().to_string();
    for world in WORLDS {
        let name = format!("acme-{world}");
        let dir = root.path().join(&name);
        let started = Instant::now();
        let (code, stdout, stderr) = paygate_plugin(&[
            "new",
            &name,
            "--world",
            world,
            "--lang",
            lang,
            "--dir",
            &dir.display().to_string(),
        ]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(stdout.contains("./build.sh"), "{stdout}");

        let mut build = Command::new("bash");
        build.arg(dir.join("build.sh")).current_dir(&dir);
        for (key, value) in env {
            build.env(key, value);
        }
        let built = build.output().expect("running build.sh");
        assert!(
            built.status.success(),
            "{lang} {world}: build.sh failed\n{}{}",
            String::from_utf8_lossy(&built.stdout),
            String::from_utf8_lossy(&built.stderr)
        );
        let wasm: PathBuf = dir.join(format!("{name}.wasm"));
        assert!(wasm.exists(), "{lang} {world}: no {}", wasm.display());

        let (code, stdout, stderr) =
            paygate_plugin(&["test", &wasm.display().to_string(), "--cache-dir", &cache]);
        assert_eq!(code, 0, "{lang} {world}:\n{stdout}{stderr}");
        assert!(stdout.contains(" 0 failed"), "{lang} {world}:\n{stdout}");
        if world == "provider-adapter" {
            // Every built-in case ran: the refund cases too.
            let skipped = stdout.lines().any(|l| l.trim_start().starts_with("skip"));
            assert!(!skipped, "{lang} {world}:\n{stdout}");
        }
        println!(
            "{lang} {world}: from `new` to a green `test` in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        if lang == "rust" {
            ci_passes(&dir, env);
        }
    }
}

/// The project's `ci.sh`, with `paygate-plugin` on PATH, passes and leaves
/// its JUnit report.
fn ci_passes(dir: &Path, env: &[(&str, &Path)]) {
    let bin = Path::new(env!("CARGO_BIN_EXE_paygate-plugin"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ci = Command::new("bash");
    ci.arg(dir.join("ci.sh")).current_dir(dir).env("PATH", path);
    for (key, value) in env {
        ci.env(key, value);
    }
    let ran = ci.output().expect("running ci.sh");
    let stdout = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "ci.sh failed\n{stdout}{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let junit = std::fs::read_to_string(dir.join("junit.xml")).expect("ci.sh wrote junit.xml");
    assert!(
        junit.contains("<testsuite") && !junit.contains("<failure"),
        "{junit}"
    );
}

#[test]
fn the_rust_projects_build_and_pass_the_harness_as_written() {
    // A target directory of their own: the one of this test run is locked
    // by the cargo running it.
    let target = tempfile::tempdir().unwrap();
    new_build_test("rust", &[("CARGO_TARGET_DIR", target.path())]);
}

#[test]
fn the_python_projects_build_and_pass_the_harness_as_written() {
    if toolchain_present("Python", "python3") {
        new_build_test("python", &[]);
    }
}

#[test]
fn the_javascript_projects_build_and_pass_the_harness_as_written() {
    if toolchain_present("JavaScript", "npm") {
        new_build_test("js", &[]);
    }
}

#[test]
fn a_bad_name_or_a_folder_with_files_is_refused_and_nothing_is_written() {
    let root = tempfile::tempdir().unwrap();
    let outside = root.path().join("outside");
    let (code, _, stderr) = paygate_plugin(&[
        "new",
        "../outside",
        "--world",
        "provider-adapter",
        "--dir",
        &outside.display().to_string(),
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("plugin name"), "{stderr}");
    assert!(!outside.exists());

    let taken = root.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("lib.rs"), "mine").unwrap();
    let (code, _, stderr) = paygate_plugin(&[
        "new",
        "acmepay",
        "--world",
        "rate-limit-policy",
        "--dir",
        &taken.display().to_string(),
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("not empty"), "{stderr}");
    assert_eq!(std::fs::read_dir(&taken).unwrap().count(), 1);
}
