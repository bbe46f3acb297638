//! A harness run's results: a readable report for the terminal and JUnit
//! XML for CI.

use std::fmt::Write as _;
use std::time::Duration;

use paygate_plugin_registry::{Digest, PluginKind};

use crate::case::{CaseResult, Verdict};
use crate::profile::Profile;
use paygate_runtime::CodeSource;

/// The outcome of one `paygate plugin test`.
#[derive(Clone, Debug)]
pub struct Report {
    /// The component's file name.
    pub component: String,
    /// The component's size in bytes.
    pub size_bytes: usize,
    /// The SHA-256 of the component's bytes.
    pub digest: Digest,
    /// `None` when the component did not load.
    pub world: Option<PluginKind>,
    /// Whose answers the built-in provider cases gave (provider adapters).
    pub profile: Option<Profile>,
    /// How long compiling (or loading the cached code) took, and which.
    pub compile: Option<(Duration, CodeSource)>,
    /// Built-in cases first, then one per fixture.
    pub cases: Vec<CaseResult>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

impl Report {
    pub(crate) fn new(component: &str, bytes: &[u8]) -> Self {
        Self {
            component: component.into(),
            size_bytes: bytes.len(),
            digest: Digest::of(bytes),
            world: None,
            profile: None,
            compile: None,
            cases: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    pub(crate) fn compiled(&mut self, took: Duration, source: CodeSource) {
        self.compile = Some((took, source));
    }

    /// True when no case failed (skipped cases do not fail a run).
    pub fn passed(&self) -> bool {
        !self.cases.iter().any(CaseResult::failed)
    }

    /// The case named `name`.
    pub fn case(&self, name: &str) -> Option<&CaseResult> {
        self.cases.iter().find(|c| c.name == name)
    }

    /// Panics with the readable report unless every case passed or was
    /// skipped: the one line a plugin's `cargo test` needs.
    #[track_caller]
    pub fn assert_passed(&self) {
        assert!(self.passed(), "plugin conformance failed:\n{}", self.text());
    }

    fn count(&self, which: fn(&CaseResult) -> bool) -> usize {
        self.cases.iter().filter(|c| which(c)).count()
    }

    /// The report for a terminal: a header about the component, a line per
    /// case with its cost, the reason under each failure, and a summary.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let world = self
            .world
            .map_or("unknown (did not load)", PluginKind::world);
        let _ = writeln!(out, "paygate plugin test: {}", self.component);
        let _ = writeln!(out, "  world      {world}");
        if let Some(profile) = self.profile {
            let _ = writeln!(out, "  profile    {profile} (the mock provider's answers)");
        }
        let _ = writeln!(
            out,
            "  component  {} ({} bytes), sha256 {}",
            bytes(self.size_bytes as u64),
            self.size_bytes,
            self.digest.short()
        );
        if let Some((took, source)) = self.compile {
            let how = match source {
                CodeSource::Compiled => "compiled",
                CodeSource::Cached => "loaded from the compile cache",
            };
            let _ = writeln!(out, "  code       {how} in {}", millis(took));
        }
        let _ = writeln!(out);
        let width = self.cases.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let _ = writeln!(
            out,
            "  {:<4}  {:<width$}  {:>10}  {:>6}  {:>12}  {:>10}",
            "", "case", "latency", "calls", "fuel", "peak mem"
        );
        for case in &self.cases {
            let mark = match case.verdict {
                Verdict::Pass(_) => "ok",
                Verdict::Fail(_) => "FAIL",
                Verdict::Skip(_) => "skip",
            };
            let s = &case.stats;
            let _ = writeln!(
                out,
                "  {mark:<4}  {:<width$}  {:>10}  {:>6}  {:>12}  {:>10}  {}",
                case.name,
                latency(s.micros),
                s.calls,
                thousands(s.fuel),
                bytes(s.peak_memory_bytes),
                case.about
            );
            if !case.passed() {
                let _ = writeln!(
                    out,
                    "  {:<4}  {:<width$}  -> {}",
                    "",
                    "",
                    case.verdict.text()
                );
            }
        }
        let _ = writeln!(
            out,
            "\n{} cases: {} passed, {} failed, {} skipped in {}",
            self.cases.len(),
            self.count(CaseResult::passed),
            self.count(CaseResult::failed),
            self.count(|c| matches!(c.verdict, Verdict::Skip(_))),
            millis(self.elapsed)
        );
        out
    }

    /// JUnit XML: one `testsuite`, one `testcase` per case, a `failure`
    /// with the reason as its message, `skipped` for cases that do not
    /// apply, and each case's cost in `system-out`.
    pub fn junit(&self) -> String {
        let world = self.world.map_or("unknown", PluginKind::world);
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{:.3}\">",
            escape(&format!("paygate plugin test {}", self.component)),
            self.cases.len(),
            self.count(CaseResult::failed),
            self.count(|c| matches!(c.verdict, Verdict::Skip(_))),
            self.elapsed.as_secs_f64()
        );
        out.push_str("  <properties>\n");
        for (name, value) in [
            ("component", self.component.clone()),
            ("world", world.to_owned()),
            ("component_bytes", self.size_bytes.to_string()),
            ("sha256", self.digest.hex()),
        ] {
            let _ = writeln!(
                out,
                "    <property name=\"{name}\" value=\"{}\"/>",
                escape(&value)
            );
        }
        out.push_str("  </properties>\n");
        for case in &self.cases {
            let _ = writeln!(
                out,
                "  <testcase classname=\"{}.{}\" name=\"{}\" time=\"{:.3}\">",
                escape(world),
                case.group(),
                escape(&case.name),
                case.elapsed.as_secs_f64()
            );
            match &case.verdict {
                Verdict::Pass(_) => {}
                Verdict::Fail(why) => {
                    let _ = writeln!(
                        out,
                        "    <failure message=\"{}\" type=\"conformance\">{}</failure>",
                        escape(why),
                        escape(&case.about)
                    );
                }
                Verdict::Skip(why) => {
                    let _ = writeln!(out, "    <skipped message=\"{}\"/>", escape(why));
                }
            }
            let s = &case.stats;
            let _ = writeln!(
                out,
                "    <system-out>{}: {}; calls={} latency_us={} fuel={} peak_memory_bytes={} component_bytes={}</system-out>",
                escape(&case.source),
                escape(case.verdict.text()),
                s.calls,
                s.micros,
                s.fuel,
                s.peak_memory_bytes,
                self.size_bytes
            );
            out.push_str("  </testcase>\n");
        }
        out.push_str("</testsuite>\n");
        out
    }
}

/// Escapes text for XML attributes and content. Control characters, which
/// XML 1.0 cannot carry, become spaces (newlines only in content survive).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let entity = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\'' => "&#39;",
            '\n' => "\n",
            c if c < ' ' => " ",
            c => {
                out.push(c);
                continue;
            }
        };
        out.push_str(entity);
    }
    out
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Microseconds under a millisecond, else milliseconds.
fn latency(micros: u64) -> String {
    if micros < 1000 {
        format!("{micros} µs")
    } else {
        millis(Duration::from_micros(micros))
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn bytes(n: u64) -> String {
    match n {
        0 => "-".into(),
        n if n < 1 << 20 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("a<b & \"c\"\u{1}'"),
            "a&lt;b &amp; &quot;c&quot; &#39;"
        );
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
    }
}
