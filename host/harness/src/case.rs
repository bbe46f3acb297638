//! One case's result and what its calls cost.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::fixtures::Fixture;
use crate::host::{MockHost, Settings};
use paygate_runtime::CompiledComponent;
use paygate_runtime::{LoadError, LoadedPlugin};

/// Whether a case passed, and what was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Passed; the text says what the plugin gave.
    Pass(String),
    /// Failed; the text says why.
    Fail(String),
    /// Not run; the text says why it does not apply.
    Skip(String),
}

impl Verdict {
    /// The text of any verdict.
    pub fn text(&self) -> &str {
        match self {
            Verdict::Pass(t) | Verdict::Fail(t) | Verdict::Skip(t) => t,
        }
    }
}

/// What a case's calls cost, summed over its calls (peak memory: the most
/// any one call held).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Measured {
    /// Calls into the plugin.
    pub calls: u64,
    /// Time inside the plugin calls, host imports (HTTP) included.
    pub micros: u64,
    /// Fuel burned: roughly, WebAssembly instructions executed.
    pub fuel: u64,
    /// The most linear memory one call held.
    pub peak_memory_bytes: u64,
}

/// One case of a suite.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// Short and stable, e.g. `decline`; a fixture's own name.
    pub name: String,
    /// What the case checks, one line.
    pub about: String,
    /// `built-in`, or the fixture file the case came from.
    pub source: String,
    /// Passed, failed or skipped, and why.
    pub verdict: Verdict,
    /// What the case's calls cost.
    pub stats: Measured,
    /// Wall time of the whole case, mock delays included.
    pub elapsed: Duration,
}

/// What names a case in a report.
#[derive(Clone, Debug)]
pub struct Label {
    /// See [`CaseResult::name`].
    pub name: String,
    /// See [`CaseResult::about`].
    pub about: String,
    /// See [`CaseResult::source`].
    pub source: String,
}

impl Label {
    /// A built-in case's label.
    pub fn built_in(name: &str, about: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            about: about.into(),
            source: "built-in".into(),
        }
    }

    /// The label of a case read from `fixture`.
    pub fn fixture(fixture: &Fixture) -> Self {
        Self {
            name: fixture.name.clone(),
            about: "user fixture".into(),
            source: fixture.path.display().to_string(),
        }
    }

    /// Whether a user fixture of the same name takes this built-in case's
    /// place: an integrator's recorded exchange says more about their
    /// provider than the built-in guess, and two cases of one name would
    /// only confuse the report.
    pub fn replaced_by(&self, fixtures: &[Fixture]) -> bool {
        fixtures.iter().any(|f| f.name == self.name)
    }

    /// The result of the case, from its verdict and [`Meter::stop`].
    pub fn result(&self, verdict: Verdict, (stats, elapsed): (Measured, Duration)) -> CaseResult {
        CaseResult {
            name: self.name.clone(),
            about: self.about.clone(),
            source: self.source.clone(),
            verdict,
            stats,
            elapsed,
        }
    }

    /// The result of a case that did not get to call the plugin.
    pub fn without_calls(&self, verdict: Verdict) -> CaseResult {
        self.result(verdict, (Measured::default(), Duration::ZERO))
    }
}

/// Says, on the results of fixtures that took a built-in case's place
/// ([`Label::replaced_by`]), which one they replaced.
pub fn mark_replacements(results: &mut [CaseResult], replaced: &[String]) {
    for result in results.iter_mut().filter(|r| replaced.contains(&r.name)) {
        if result.source != "built-in" {
            result.about = "user fixture, in place of the built-in case of this name".into();
        }
    }
}

/// What a built-in case tests, by its name: the provider's `contract`
/// (what a working call gives, what a missing setting gives), its `errors`
/// (refusals, failures, bad signatures and bodies), `limits` (time and
/// request rates) and `refunds`. A fixture's group is `fixtures`.
pub fn group(source: &str, name: &str) -> &'static str {
    if !source.starts_with("built-in") {
        return "fixtures";
    }
    match name {
        n if n.starts_with("refund") => "refunds",
        "slow-provider" | "rate-limited" | "allow" | "deny" | "retry-after" => "limits",
        "decline"
        | "invalid-request"
        | "unauthorized"
        | "provider-5xx"
        | "malformed-response"
        | "tampered"
        | "expired"
        | "malformed-signature"
        | "malformed-body" => "errors",
        _ => "contract",
    }
}

impl CaseResult {
    /// See [`group`].
    pub fn group(&self) -> &'static str {
        group(&self.source, &self.name)
    }

    /// The single case of a component that does not load.
    pub fn load_failed(error: &LoadError) -> Self {
        Label::built_in(
            "load",
            "the component compiles and exports one of the paygate worlds",
        )
        .without_calls(Verdict::Fail(error.to_string()))
    }

    /// Whether the case passed.
    pub fn passed(&self) -> bool {
        matches!(self.verdict, Verdict::Pass(_))
    }

    /// Whether the case failed (a skipped case neither passed nor failed).
    pub fn failed(&self) -> bool {
        matches!(self.verdict, Verdict::Fail(_))
    }
}

/// The component under test, as the suites see it.
pub struct Subject<'a> {
    /// The component's name in reports and logs.
    pub name: &'a str,
    /// The mock host it runs in.
    pub host: &'a MockHost,
    /// Compiled once, bound again for cases that need other settings.
    pub compiled: &'a CompiledComponent,
    /// Loaded with [`Settings::Full`].
    pub plugin: &'a LoadedPlugin,
    /// Built-in cases not to run (`--skip`).
    pub skip: &'a [String],
    /// Only list the cases (`--list`).
    pub list: bool,
}

impl Subject<'_> {
    /// Why a case is not run (`--list`, or `--skip` naming a built-in
    /// case), or `None` to run it.
    pub fn not_run(&self, label: &Label) -> Option<Verdict> {
        if self.list {
            return Some(Verdict::Skip("listed, not run".into()));
        }
        let built_in = label.source.starts_with("built-in");
        let named = |n: &String| *n == label.name || n == group(&label.source, &label.name);
        let skipped = built_in && self.skip.iter().any(named);
        skipped.then(|| Verdict::Skip("skipped with --skip".into()))
    }

    /// The plugin a case calls: the one loaded with settings, or with
    /// `bare` a fresh load without settings or secrets, kept in `slot`.
    pub fn plugin_for<'s>(
        &'s self,
        bare: bool,
        slot: &'s mut Option<LoadedPlugin>,
    ) -> Result<&'s LoadedPlugin, Verdict> {
        if !bare {
            return Ok(self.plugin);
        }
        match self.host.bind(self.name, self.compiled, Settings::Bare) {
            Ok(plugin) => Ok(slot.insert(plugin)),
            Err(e) => Err(Verdict::Fail(format!("loading without settings: {e}"))),
        }
    }
}

/// Reads a plugin's running totals before and after a case.
pub struct Meter<'a> {
    plugin: &'a LoadedPlugin,
    started: Instant,
    before: Measured,
}

impl<'a> Meter<'a> {
    /// Starts measuring; a new peak-memory period begins now.
    pub fn start(plugin: &'a LoadedPlugin) -> Self {
        plugin.stats.take_peak_memory();
        Self {
            plugin,
            started: Instant::now(),
            before: totals(plugin),
        }
    }

    /// What the calls since [`Meter::start`] cost, and the wall time.
    pub fn stop(self) -> (Measured, Duration) {
        let now = totals(self.plugin);
        let measured = Measured {
            calls: now.calls - self.before.calls,
            micros: now.micros - self.before.micros,
            fuel: now.fuel - self.before.fuel,
            peak_memory_bytes: self.plugin.stats.take_peak_memory(),
        };
        (measured, self.started.elapsed())
    }
}

fn totals(plugin: &LoadedPlugin) -> Measured {
    let s = &plugin.stats;
    Measured {
        calls: s.calls.load(Relaxed),
        micros: s.micros.load(Relaxed),
        fuel: s.fuel_used.load(Relaxed),
        peak_memory_bytes: 0,
    }
}
