//! One provider adapter in three languages, held to the same conformance
//! cases: the Rust `sandbox_adapter` and its ports to Python
//! (`paypal_python`, componentize-py) and JavaScript (`paypal_js`,
//! componentize-js) in `plugins/examples/`.
//!
//! Each build is compiled once into a real runtime, then loaded from the
//! compile cache for every case: a loopback fake provider answers each case
//! at its own base URL, and the real sandbox provider checks the wire format
//! end to end. The ports are built by `plugins/examples/build.sh`; one that
//! is not built is skipped with a message, unless `PAYGATE_REQUIRE_POLYGLOT=1`.

mod cases;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use paygate::plugins::{CodeSource, LoadedPlugin};
use paygate_plugin_registry::PluginSpec;

use crate::helpers::{FakeServer, Runtime, payment, root};

/// Set to `1` to fail, rather than skip, when a port is not built (CI).
const REQUIRE_VAR: &str = "PAYGATE_REQUIRE_POLYGLOT";

/// One build of the adapter: its component in `plugins/dist/` and the
/// script that makes it.
struct Build {
    component: &'static str,
    built_by: &'static str,
    /// A port needing an extra toolchain is skipped when absent; the Rust
    /// original is always built.
    optional: bool,
}

const RUST: Build = Build {
    component: "sandbox_adapter",
    built_by: "plugins/build.sh",
    optional: false,
};
const PYTHON: Build = Build {
    component: "paypal_python",
    built_by: "plugins/examples/build.sh",
    optional: true,
};
const JAVASCRIPT: Build = Build {
    component: "paypal_js",
    built_by: "plugins/examples/build.sh",
    optional: true,
};

#[tokio::test]
async fn rust_adapter_conforms() {
    conforms(RUST).await;
}

#[tokio::test]
async fn python_adapter_conforms() {
    conforms(PYTHON).await;
}

#[tokio::test]
async fn javascript_adapter_conforms() {
    conforms(JAVASCRIPT).await;
}

/// Runs every case against `build`, then prints what it cost.
async fn conforms(build: Build) {
    let Some(bytes) = build.bytes() else {
        return;
    };
    // What an integrator's CI runs: `paygate plugin test`'s suite.
    let harness = paygate_harness::Harness::new(format!("{}.wasm", build.component), bytes.clone())
        .cache_dir(std::env::temp_dir().join(format!("paygate-test-cache-{}", std::process::id())));
    let provider = FakeServer::start(cases::fake_provider()).await;
    let subject = Subject::compile(build, bytes, provider);
    cases::run_all(&subject).await;
    subject.report().await;
    harness.run().await.unwrap().assert_passed();
}

impl Build {
    /// The component's bytes, or `None` (after saying why) for a port that
    /// is not built and not required.
    fn bytes(&self) -> Option<Vec<u8>> {
        let path = format!("plugins/dist/{}.wasm", self.component);
        match std::fs::read(root().join(&path)) {
            Ok(bytes) => Some(bytes),
            Err(e) if self.optional && std::env::var(REQUIRE_VAR).as_deref() != Ok("1") => {
                shown(&format!(
                    "skipped: {path} ({e}); run {} to build it, or set {REQUIRE_VAR}=1 to fail instead",
                    self.built_by
                ));
                None
            }
            Err(e) => panic!("{path}: {e}; run {} first", self.built_by),
        }
    }
}

/// A build compiled into its own runtime, and the fake provider it talks to.
struct Subject {
    build: Build,
    bytes: Vec<u8>,
    rt: Runtime,
    provider: FakeServer,
    compiled_in: Duration,
}

impl Subject {
    /// Compiles the component: the first load. Every later load of the
    /// same bytes must come from the compile cache.
    fn compile(build: Build, bytes: Vec<u8>, provider: FakeServer) -> Self {
        let mut subject = Self {
            build,
            bytes,
            rt: Runtime::new(),
            provider,
            compiled_in: Duration::ZERO,
        };
        let spec = spec(&subject.provider.addr.to_string(), None);
        let (_, source, took) = subject.load(&spec);
        assert_eq!(source, CodeSource::Compiled, "{}", subject.name());
        subject.compiled_in = took;
        subject
    }

    fn name(&self) -> &'static str {
        self.build.component
    }

    /// The adapter with `base-url` at the fake provider's `case`.
    fn at(&self, case: &str) -> LoadedPlugin {
        let base_url = format!("{}/{case}", self.provider.url());
        self.configured(&self.provider.addr.to_string(), Some(&base_url))
    }

    /// The adapter allowed to call `host`, with `base-url` if given.
    fn configured(&self, host: &str, base_url: Option<&str>) -> LoadedPlugin {
        let (plugin, source, _) = self.load(&spec(host, base_url));
        assert_eq!(source, CodeSource::Cached, "{}", self.name());
        plugin
    }

    fn load(&self, spec: &str) -> (LoadedPlugin, CodeSource, Duration) {
        let spec = PluginSpec::from_toml(spec).expect("spec");
        let started = Instant::now();
        let (plugin, source) = self
            .rt
            .set
            .loader()
            .load("paypal", &self.bytes, &spec, None)
            .unwrap_or_else(|e| panic!("loading {}: {e}", self.name()));
        (plugin, source, started.elapsed())
    }

    /// Prints the size, the compile time, a cached load, and the median
    /// latency and mean fuel of a `create-payment`: the numbers
    /// docs/plugins.md quotes.
    async fn report(&self) {
        const CALLS: u64 = 21;
        let started = Instant::now();
        let adapter = self.at("ok");
        let cached_in = started.elapsed();
        let mut latencies = Vec::new();
        for id in 0..CALLS {
            let started = Instant::now();
            let outcome = adapter.create_payment("r", &payment(100 + id, &[])).await;
            latencies.push(started.elapsed());
            assert!(matches!(outcome, Ok(Ok(_))), "{}: {outcome:?}", self.name());
        }
        latencies.sort();
        shown(&format!(
            "{}: {:.1} MiB, compiled in {} ms, loaded from cache in {:.1} ms, \
             create-payment in {:.2} ms (median) using {} fuel",
            self.name(),
            self.bytes.len() as f64 / f64::from(1 << 20),
            self.compiled_in.as_millis(),
            cached_in.as_secs_f64() * 1000.0,
            latencies[latencies.len() / 2].as_secs_f64() * 1000.0,
            adapter.stats.fuel_used.load(Ordering::Relaxed) / CALLS,
        ));
    }
}

/// Writes a line to the real stderr. The test harness captures `eprintln!`
/// of passing tests, and a skip or a cost nobody sees is no use.
fn shown(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A plugin spec as an operator would write it; the short HTTP timeout
/// keeps the slow-provider case quick.
fn spec(host: &str, base_url: Option<&str>) -> String {
    let mut spec = format!(
        "version = \"0.1.0\"\nkind = \"provider-adapter\"\nallowed_hosts = [\"{host}\"]\n\
         [limits]\nhttp_timeout_ms = 300\n"
    );
    if let Some(url) = base_url {
        spec.push_str(&format!("[config]\nbase-url = \"{url}\"\n"));
    }
    spec
}
