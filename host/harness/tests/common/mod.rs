//! What the harness's integration tests share: running the standalone
//! `paygate-plugin` binary. Each test crate uses part of it.
#![allow(dead_code)]

use std::process::Command;

/// What one run of `paygate-plugin` left.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `paygate-plugin` with `args`, logging errors only.
pub fn paygate_plugin(args: &[&str]) -> Ran {
    let out = Command::new(env!("CARGO_BIN_EXE_paygate-plugin"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("running paygate-plugin");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
