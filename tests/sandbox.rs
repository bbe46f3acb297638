//! Misbehaving components: each breach gets its named error, the host keeps
//! serving, and the next call to a healthy plugin succeeds.

use paygate::plugins::{CodeSource, LoadError, PluginError};
use paygate_plugin_registry::PluginSpec;

use crate::helpers::{Runtime, payment, wasm};

const CHAOS: &str = r#"
version = "1.0.0"
kind = "provider-adapter"
allowed_hosts = ["allowed.invalid"]
[limits]
timeout_ms = 300
memory_mib = 16
max_output_kib = 64
"#;

/// Loads the chaos guest and a healthy adapter beside it.
fn runtime() -> Runtime {
    let rt = Runtime::new();
    rt.install("chaos", "chaos", CHAOS);
    rt
}

/// A well-behaved call on the same runtime must still work.
async fn assert_healthy(rt: &Runtime) {
    let chaos = rt.set.require("chaos").unwrap();
    let session = chaos
        .create_payment("req-ok", &payment(1, &[("chaos", "ok")]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.reference, "chaos-1");
}

async fn chaos_call(rt: &Runtime, mode: &[(&str, &str)]) -> PluginError {
    let chaos = rt.set.require("chaos").unwrap();
    match chaos.create_payment("req-bad", &payment(2, mode)).await {
        Err(e) => e,
        Ok(r) => panic!("{mode:?} should fail the call, got {r:?}"),
    }
}

#[tokio::test]
async fn infinite_loop_hits_the_deadline() {
    let rt = runtime();
    let started = std::time::Instant::now();
    let err = chaos_call(&rt, &[("chaos", "loop")]).await;
    assert!(
        matches!(
            err,
            PluginError::DeadlineExceeded {
                timeout_ms: 300,
                ..
            }
        ),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_healthy(&rt).await;
}

#[tokio::test]
async fn fuel_budget_stops_a_loop() {
    let rt = Runtime::new();
    rt.install("chaos", "chaos", &format!("{CHAOS}fuel = 5000000\n"));
    let err = chaos_call(&rt, &[("chaos", "loop")]).await;
    assert!(matches!(err, PluginError::OutOfFuel { .. }), "{err}");
    assert_healthy(&rt).await;
}

#[tokio::test]
async fn unbounded_allocation_hits_the_memory_limit() {
    let rt = runtime();
    let err = chaos_call(&rt, &[("chaos", "alloc")]).await;
    assert!(
        matches!(err, PluginError::MemoryLimit { limit_bytes, .. } if limit_bytes == 16 << 20),
        "{err}"
    );
    assert_healthy(&rt).await;
}

#[tokio::test]
async fn panic_is_reported_with_the_guest_message() {
    let rt = runtime();
    let err = chaos_call(&rt, &[("chaos", "panic")]).await;
    match &err {
        PluginError::Panic { message, .. } => assert!(
            message.contains("deliberate panic for payment 2"),
            "{message}"
        ),
        other => panic!("expected a panic, got {other}"),
    }
    assert_healthy(&rt).await;
}

#[tokio::test]
async fn oversized_result_is_refused() {
    let rt = runtime();
    let err = chaos_call(&rt, &[("chaos", "oversize"), ("bytes", "200000")]).await;
    assert!(
        matches!(
            err,
            PluginError::OutputTooLarge {
                size: 200000..,
                limit: 65536,
                ..
            }
        ),
        "{err}"
    );
    assert_healthy(&rt).await;
}

#[tokio::test]
async fn oversized_input_is_refused_before_the_call() {
    let rt = runtime();
    let big = "x".repeat(300 * 1024);
    let err = chaos_call(&rt, &[("chaos", "ok"), ("blob", &big)]).await;
    assert!(matches!(err, PluginError::InputTooLarge { .. }), "{err}");
    assert_healthy(&rt).await;
}

#[tokio::test]
async fn http_to_a_host_off_the_allow_list_is_denied() {
    let rt = runtime();
    let err = chaos_call(&rt, &[("chaos", "http"), ("url", "http://127.0.0.1:5432/")]).await;
    match &err {
        PluginError::CapabilityDenied { detail, .. } => {
            assert!(detail.contains("127.0.0.1:5432"), "{detail}")
        }
        other => panic!("expected capability denied, got {other}"),
    }
    assert_healthy(&rt).await;
}

#[tokio::test]
async fn sandbox_has_no_environment_files_or_sockets() {
    // The test process has PATH, HOME and CARGO_* set; none may reach the guest.
    assert!(std::env::var("PATH").is_ok());
    let rt = runtime();
    let chaos = rt.set.require("chaos").unwrap();
    // Environment: the guest sees none of the host's variables.
    let env = chaos
        .create_payment("r", &payment(3, &[("chaos", "env")]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        env.reference, "",
        "guest saw environment: {}",
        env.reference
    );
    // Files and sockets: the calls fail inside the guest.
    for mode in ["file", "socket"] {
        let outcome = chaos
            .create_payment("r", &payment(4, &[("chaos", mode)]))
            .await
            .unwrap();
        assert!(
            outcome.is_err(),
            "{mode} should fail inside the sandbox, got {outcome:?}"
        );
    }
    assert_healthy(&rt).await;
}

/// Every call gets a fresh instance: what one call leaves in a static or
/// on its heap, the next cannot read, even from a reused pool slot.
#[tokio::test]
async fn a_call_cannot_read_what_an_earlier_call_left_in_memory() {
    let rt = runtime();
    let chaos = rt.set.require("chaos").unwrap();
    let secret = "sk_live_left_behind_by_the_first_call";
    let reversed: String = secret.chars().rev().collect();
    let call = |id, mode: Vec<(&'static str, String)>| {
        let chaos = chaos.clone();
        async move {
            let mode: Vec<(&str, &str)> = mode.iter().map(|(k, v)| (*k, v.as_str())).collect();
            chaos
                .create_payment("r", &payment(id, &mode))
                .await
                .unwrap()
                .unwrap()
                .reference
        }
    };
    let remember = vec![("chaos", "remember".into()), ("secret", secret.into())];
    assert_eq!(call(6, remember).await, "remembered");
    let recall = vec![("chaos", "recall".into()), ("reversed", reversed.clone())];
    assert_eq!(call(7, recall.clone()).await, "static=;memory=clean");
    // The scan is not blind: it finds the secret in the call that carries it.
    let mut control = recall;
    control.push(("secret", secret.into()));
    assert_eq!(call(8, control).await, "static=;memory=found");
}

#[tokio::test]
async fn log_flood_is_capped_and_the_call_succeeds() {
    let rt = runtime();
    let chaos = rt.set.require("chaos").unwrap();
    let outcome = chaos
        .create_payment("r", &payment(5, &[("chaos", "log-flood")]))
        .await;
    assert!(outcome.is_ok(), "{outcome:?}");
}

#[tokio::test]
async fn not_a_component_is_refused_with_a_reason() {
    let rt = runtime();
    let spec = PluginSpec::default();
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    for (bytes, needle) in [
        (b"definitely not wasm".to_vec(), "preamble"),
        (Vec::new(), "empty"),
        (core_module, "core WebAssembly module"),
    ] {
        match rt.set.install("junk", &bytes, &spec) {
            Err(LoadError::NotAComponent { reason, .. }) => {
                assert!(reason.contains(needle), "{reason}")
            }
            other => panic!("expected NotAComponent, got {:?}", other.map(|_| ())),
        }
    }
    assert_healthy(&rt).await;
}

#[tokio::test]
async fn truncated_component_is_refused() {
    let rt = runtime();
    let mut bytes = wasm("sandbox_adapter");
    bytes.truncate(bytes.len() / 2);
    let err = rt
        .set
        .install("truncated", &bytes, &PluginSpec::default())
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, LoadError::NotAComponent { .. }), "{err}");
    assert!(rt.set.get("truncated").is_none());
    assert_healthy(&rt).await;
}

#[tokio::test]
async fn wrong_world_is_refused_and_the_old_version_keeps_serving() {
    let rt = runtime();
    // The spec says provider, the component is a policy.
    let spec = PluginSpec::from_toml("kind = \"provider-adapter\"").unwrap();
    let err = rt
        .set
        .install("p", &wasm("token_bucket"), &spec)
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("rate-limit-policy"), "{err}");
    // Replacing the serving provider `chaos` with a verifier is refused too.
    let err = rt
        .set
        .install("chaos", &wasm("internal_hmac"), &PluginSpec::default())
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err}");
    let listed = rt
        .set
        .list()
        .into_iter()
        .find(|p| p.name == "chaos")
        .unwrap();
    assert_eq!(listed.version.as_deref(), Some("1.0.0"));
    assert!(listed.last_rejection.unwrap().contains("provider-adapter"));
    assert_healthy(&rt).await;
}

#[tokio::test]
async fn compiled_code_is_cached_by_digest() {
    let rt = Runtime::new();
    let bytes = wasm("token_bucket");
    let spec = PluginSpec::default();
    let (_, first) = rt.set.loader().load("a", &bytes, &spec, None).unwrap();
    let (_, second) = rt.set.loader().load("b", &bytes, &spec, None).unwrap();
    assert_eq!((first, second), (CodeSource::Compiled, CodeSource::Cached));
}

#[tokio::test]
async fn many_concurrent_calls_each_get_their_own_sandbox() {
    let rt = runtime();
    let chaos = rt.set.require("chaos").unwrap();
    let calls = (0..64u64).map(|i| {
        let chaos = chaos.clone();
        tokio::spawn(async move { chaos.create_payment("r", &payment(i, &[])).await })
    });
    for (i, call) in calls.enumerate() {
        let session = call.await.unwrap().unwrap().unwrap();
        assert_eq!(session.reference, format!("chaos-{i}"));
    }
}
