//! The standalone `paygate-plugin` binary runs the same suites as
//! `paygate plugin test|run`, on the components `plugins/build.sh` leaves in
//! `plugins/dist/` (scripts/test builds them first).

use std::path::PathBuf;

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

mod common;

/// Runs `paygate-plugin` with `args`; its exit code and stdout.
fn paygate_plugin(args: &[&str]) -> (i32, String) {
    let ran = common::paygate_plugin(args);
    (ran.code, ran.stdout)
}

#[test]
fn passes_a_good_adapter_and_fails_a_broken_one_with_junit() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().display().to_string();
    let (code, stdout) = paygate_plugin(&[
        "test",
        &dist("stripe_adapter"),
        "--profile",
        "stripe",
        "--cache-dir",
        &cache_dir,
    ]);
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

/// Writes `fixtures` (name, JSON) into a fresh folder.
fn fixture_dir(fixtures: &[(&str, serde_json::Value)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (file, fixture) in fixtures {
        std::fs::write(dir.path().join(file), fixture.to_string()).unwrap();
    }
    dir
}

#[test]
fn fixtures_check_what_the_adapter_sends_and_replace_built_in_cases_of_their_name() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().display().to_string();
    let session = serde_json::json!({ "id": "cs_1", "url": "https://pay.example/cs_1" });
    let fixtures = fixture_dir(&[
        (
            "a-sends-minor-units.json",
            serde_json::json!({
                "name": "sends minor units and its key",
                "request": {
                    "method": "POST",
                    "path": "/v1/checkout/sessions",
                    "headers": { "Authorization": "Bearer sk_test_paygate_harness" },
                    "form": { "line_items[0][price_data][unit_amount]": "1000", "mode": "payment" },
                },
                "response": { "body": session },
                "expect": "ok",
            }),
        ),
        (
            "b-decline.json",
            serde_json::json!({
                "name": "decline",
                "response": { "status": 402, "body": { "error": { "type": "card_error", "message": "recorded refusal" } } },
                "expect": "declined",
            }),
        ),
    ]);
    let file = dist("stripe_adapter");
    let dir = fixtures.path().display().to_string();
    let (code, stdout) = paygate_plugin(&[
        "test",
        &file,
        "--profile",
        "stripe",
        "--fixtures",
        &dir,
        "--cache-dir",
        &cache_dir,
    ]);
    assert_eq!(code, 0, "{stdout}");
    let declines: Vec<&str> = stdout.lines().filter(|l| l.contains(" decline ")).collect();
    assert_eq!(
        declines.len(),
        1,
        "the fixture took the built-in's place:\n{stdout}"
    );
    assert!(
        declines[0].contains("in place of the built-in case"),
        "{stdout}"
    );

    // A fixture expecting other minor units fails, saying what was sent;
    // one expecting another outcome shows the mock's answer.
    let wrong = fixture_dir(&[
        (
            "a.json",
            serde_json::json!({
                "name": "expects cents it does not get",
                "request": { "form": { "line_items[0][price_data][unit_amount]": "10" } },
                "response": { "body": session },
                "expect": "ok",
            }),
        ),
        (
            "b.json",
            serde_json::json!({
                "name": "expects a refusal the provider did not give",
                "response": { "status": 200, "body": { "id": "cs_2", "url": "https://pay.example/cs_2", "note": "seen-by-the-integrator" } },
                "expect": "declined",
            }),
        ),
    ]);
    let dir = wrong.path().display().to_string();
    let (code, stdout) = paygate_plugin(&[
        "test",
        &file,
        "--profile",
        "stripe",
        "--fixtures",
        &dir,
        "--cache-dir",
        &cache_dir,
    ]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("form field line_items[0][price_data][unit_amount] is \"1000\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("answered HTTP 200") && stdout.contains("seen-by-the-integrator"),
        "{stdout}"
    );
}

#[test]
fn plugin_run_shows_the_body_and_headers_sent_with_credentials_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("call.json");
    std::fs::write(
        &input,
        serde_json::json!({
            "call": "create-payment",
            "secrets": { "secret-key": "sk_live_do_not_print" },
            "provider_response": { "body": { "id": "cs_1", "url": "https://pay.example/cs_1" } },
        })
        .to_string(),
    )
    .unwrap();
    let cache_dir = dir.path().join("cache").display().to_string();
    let (code, stdout) = paygate_plugin(&[
        "run",
        &dist("stripe_adapter"),
        "--input",
        &input.display().to_string(),
        "--cache-dir",
        &cache_dir,
    ]);
    assert_eq!(code, 0, "{stdout}");
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let sent = &out["http"][0];
    assert_eq!(
        sent["headers"]["authorization"], "Bearer <redacted>",
        "{stdout}"
    );
    assert!(!stdout.contains("sk_live_do_not_print"), "{stdout}");
    let body = sent["body"].as_str().unwrap();
    assert!(body.contains("unit_amount%5D=1000"), "{body}");
}

#[test]
fn list_names_the_cases_and_skip_leaves_out_a_built_in_one_but_not_a_typo() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().display().to_string();
    let file = dist("stripe_adapter");
    let (code, stdout) = paygate_plugin(&[
        "test",
        &file,
        "--profile",
        "stripe",
        "--list",
        "--cache-dir",
        &cache_dir,
    ]);
    assert_eq!(code, 0, "{stdout}");
    for (case, group) in [
        ("success", "contract"),
        ("decline", "errors"),
        ("slow-provider", "limits"),
        ("missing-config", "contract"),
        ("refund-declined", "refunds"),
    ] {
        let line = stdout.lines().find(|l| l.starts_with(case));
        assert!(
            line.is_some_and(|l| l.contains(&format!(" {group} "))),
            "{case} is listed in {group}:\n{stdout}"
        );
    }
    assert!(!stdout.contains("passed"), "nothing ran:\n{stdout}");

    let (code, stdout) = paygate_plugin(&[
        "test",
        &file,
        "--profile",
        "stripe",
        "--skip",
        "decline",
        "--cache-dir",
        &cache_dir,
    ]);
    assert_eq!(code, 0, "{stdout}");
    let decline = stdout.lines().find(|l| l.contains(" decline ")).unwrap();
    assert!(decline.trim_start().starts_with("skip"), "{stdout}");
    assert!(stdout.contains("skipped with --skip"), "{stdout}");

    // A group at once: every refund case.
    let (code, stdout) = paygate_plugin(&[
        "test",
        &file,
        "--profile",
        "stripe",
        "--skip",
        "refunds",
        "--cache-dir",
        &cache_dir,
    ]);
    assert_eq!(code, 0, "{stdout}");
    let refunds: Vec<&str> = stdout.lines().filter(|l| l.contains(" refund-")).collect();
    assert_eq!(refunds.len(), 5, "{stdout}");
    assert!(
        refunds.iter().all(|l| l.trim_start().starts_with("skip")),
        "{stdout}"
    );

    let (code, stdout) = paygate_plugin(&[
        "test",
        &file,
        "--profile",
        "stripe",
        "--skip",
        "declined",
        "--cache-dir",
        &cache_dir,
    ]);
    assert_eq!(code, 1, "a --skip naming no case fails the run:\n{stdout}");
    assert!(
        stdout.contains("--skip declined: no case or group"),
        "{stdout}"
    );
}

/// A provider on loopback that answers every request with `body` as JSON.
fn local_provider(body: &'static str) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            // Reads the head and the body its content-length announces.
            let mut seen = Vec::new();
            let mut chunk = [0u8; 4096];
            let complete = |seen: &[u8]| {
                let text = String::from_utf8_lossy(seen).to_ascii_lowercase();
                let Some(head_end) = text.find("\r\n\r\n") else {
                    return false;
                };
                let length = (text.lines())
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                seen.len() >= head_end + 4 + length
            };
            while !complete(&seen) {
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[test]
fn plugin_run_reaches_a_provider_only_when_allowed_to() {
    let provider = local_provider(r#"{"id":"cs_local","url":"https://pay.example/cs_local"}"#);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("call.json");
    let call = serde_json::json!({
        "call": "create-payment",
        "config": { "base-url": format!("http://{provider}") },
    });
    std::fs::write(&input, call.to_string()).unwrap();
    let cache_dir = dir.path().join("cache").display().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--input",
            input.to_str().unwrap(),
            "--cache-dir",
            &cache_dir,
        ];
        args.extend_from_slice(extra);
        let file = dist("stripe_adapter");
        args.insert(1, &file);
        let (code, stdout) = paygate_plugin(&args);
        (
            code,
            serde_json::from_str::<serde_json::Value>(&stdout).unwrap(),
        )
    };
    // Not on the allow-list: the host stops the call.
    let (code, refused) = run(&[]);
    assert_eq!(code, 1, "{refused}");
    assert_eq!(
        refused["result"]["host-error"]["kind"], "capability_denied",
        "{refused}"
    );
    let host = provider.to_string();
    let (code, answered) = run(&["--allow-host", &host]);
    assert_eq!(code, 0, "{answered}");
    assert_eq!(
        answered["result"]["ok"]["reference"], "cs_local",
        "{answered}"
    );
    assert_eq!(
        answered["http"],
        serde_json::json!([]),
        "the mock saw nothing"
    );

    // A spec does both: its allowed_hosts and its base-url send the call
    // where `serve` would, whatever the input's config says of other keys.
    let spec = dir.path().join("local.toml");
    std::fs::write(
        &spec,
        format!(
            "kind = \"provider-adapter\"\nallowed_hosts = [\"{host}\"]\n\
             [config]\nbase-url = \"http://{host}\"\n[secrets]\nsecret-key = \"env:STRIPE_SECRET_KEY\"\n"
        ),
    )
    .unwrap();
    std::fs::write(&input, r#"{"call": "create-payment"}"#).unwrap();
    let ran = common::paygate_plugin(&[
        "run",
        &dist("stripe_adapter"),
        "--input",
        input.to_str().unwrap(),
        "--spec",
        spec.to_str().unwrap(),
        "--cache-dir",
        &cache_dir,
    ]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let answered: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(
        answered["result"]["ok"]["reference"], "cs_local",
        "{answered}"
    );
    // The secret reference is named, never resolved from this shell.
    assert!(
        ran.stderr
            .contains("secret-key (env:STRIPE_SECRET_KEY) is not read here"),
        "{}",
        ran.stderr
    );
}
