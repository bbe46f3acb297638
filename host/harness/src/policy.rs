//! The rate-limit-policy suite: allow under the limit, deny after the
//! burst, and a retry-after that is present when denied and honoured.
//!
//! The policy runs with its own default settings (or `--config`) on
//! in-memory counters and the harness's fixed clock: nothing refills while
//! a case sends its burst, and moving the clock by the retry-after shows
//! whether the wait it asked for is enough.

use crate::case::{CaseResult, Label, Meter, Subject, Verdict};
use crate::fixtures::Fixture;
use crate::outcome::Outcome;
use paygate_runtime::LoadedPlugin;
use paygate_runtime::bindings::{Decision, LimitRequest};

/// Requests one client may send before the policy must have denied one.
pub const MAX_BURST: u32 = 1000;

/// A request as the host asks about it, from `client_ip`.
pub fn sample_request(client_ip: &str) -> LimitRequest {
    LimitRequest {
        route: "/api/v1/payments".into(),
        method: "POST".into(),
        client_ip: client_ip.into(),
        merchant_id: None,
        key_id: None,
    }
}

/// Runs allow, deny and retry-after; fixtures do not apply to policies.
pub async fn run(subject: &Subject<'_>, fixtures: &[Fixture]) -> Vec<CaseResult> {
    let plugin = subject.plugin;
    // Each case its own client, so no case sees another's counters.
    let mut results = vec![
        measure(
            subject,
            "allow",
            "a first request is allowed, within its limit",
            || allow(plugin, "203.0.113.1"),
        )
        .await,
        measure(
            subject,
            "deny",
            "one client sending without pause is denied within 1000 requests",
            || deny(plugin, "203.0.113.2"),
        )
        .await,
        measure(
            subject,
            "retry-after",
            "a denial carries retry-after, and after that wait a request is allowed",
            || retry_after(subject, "203.0.113.3"),
        )
        .await,
    ];
    if !fixtures.is_empty() {
        let why = format!(
            "rate-limit policies take no fixtures; {} file(s) ignored",
            fixtures.len()
        );
        results
            .push(Label::built_in("fixtures", "user fixtures").without_calls(Verdict::Skip(why)));
    }
    results
}

async fn measure(
    subject: &Subject<'_>,
    name: &str,
    about: &str,
    case: impl AsyncFnOnce() -> Verdict,
) -> CaseResult {
    let label = Label::built_in(name, about);
    if let Some(verdict) = subject.not_run(&label) {
        return label.without_calls(verdict);
    }
    let meter = Meter::start(subject.plugin);
    let verdict = case().await;
    label.result(verdict, meter.stop())
}

async fn decide(plugin: &LoadedPlugin, client_ip: &str) -> Result<Decision, Verdict> {
    let result = plugin.decide("harness", &sample_request(client_ip)).await;
    let outcome = Outcome::decision(&result);
    result.map_err(|_| Verdict::Fail(outcome.summary()))
}

async fn allow(plugin: &LoadedPlugin, client_ip: &str) -> Verdict {
    let d = match decide(plugin, client_ip).await {
        Ok(d) => d,
        Err(failed) => return failed,
    };
    let shown = Outcome::decision(&Ok(d)).summary();
    if !d.allowed {
        return Verdict::Fail(format!("a first request was denied: {shown}"));
    }
    if d.limit == 0 || d.remaining > d.limit {
        return Verdict::Fail(format!(
            "an allowed request needs 0 < limit and remaining <= limit: {shown}"
        ));
    }
    if d.retry_after_ms.is_some() {
        return Verdict::Fail(format!("retry-after on an allowed request: {shown}"));
    }
    Verdict::Pass(shown)
}

/// Sends until denied; the denial and how many were allowed before it.
async fn exhaust(plugin: &LoadedPlugin, client_ip: &str) -> Result<(Decision, u32), Verdict> {
    for sent in 0..MAX_BURST {
        let d = decide(plugin, client_ip).await?;
        if !d.allowed {
            return Ok((d, sent));
        }
    }
    Err(Verdict::Fail(format!(
        "{MAX_BURST} requests from one client in no time were all allowed"
    )))
}

async fn deny(plugin: &LoadedPlugin, client_ip: &str) -> Verdict {
    match exhaust(plugin, client_ip).await {
        Ok((d, allowed)) if d.remaining == 0 => Verdict::Pass(format!(
            "denied after {allowed} allowed requests (limit {})",
            d.limit
        )),
        Ok((d, _)) => Verdict::Fail(format!(
            "a denial must report 0 remaining: {}",
            Outcome::decision(&Ok(d)).summary()
        )),
        Err(failed) => failed,
    }
}

async fn retry_after(subject: &Subject<'_>, client_ip: &str) -> Verdict {
    let plugin = subject.plugin;
    let denied = match exhaust(plugin, client_ip).await {
        Ok((d, _)) => d,
        Err(failed) => return failed,
    };
    let Some(wait_ms) = denied.retry_after_ms.filter(|ms| *ms > 0) else {
        return Verdict::Fail(format!(
            "a denial must carry a retry-after above 0: {}",
            Outcome::decision(&Ok(denied)).summary()
        ));
    };
    let clock = &subject.host.services.clock;
    clock.set_ms(clock.now_ms() + wait_ms);
    match decide(plugin, client_ip).await {
        Ok(d) if d.allowed => {
            Verdict::Pass(format!("retry after {wait_ms} ms, then allowed again"))
        }
        Ok(d) => Verdict::Fail(format!(
            "still denied {wait_ms} ms later, the retry-after it gave: {}",
            Outcome::decision(&Ok(d)).summary()
        )),
        Err(failed) => failed,
    }
}
