//! What a call gave back, named the way the WIT names it and rendered as
//! JSON, so suites can compare it with an expectation and `plugin run` can
//! print it.

use serde_json::{Value, json};

use paygate_runtime::PluginError;
use paygate_runtime::bindings::{
    Decision, Event, EventStatus, Money, PaymentRef, PaymentSession, PaymentState, ProviderError,
    RefundSession, RefundState, RefundStatus, VerifyError,
};

/// The result of one call.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// `ok`, a payment state for `payment-status`, the WIT name of an error
    /// case (`declined`, `signature-expired` ...), or `host-error` when the
    /// host stopped the call (trap, deadline, fuel, memory ...).
    pub name: String,
    /// Whether the plugin returned `ok`.
    pub ok: bool,
    /// `{"ok": ...}`, `{"error": {"<case>": "<message>"}}` or
    /// `{"host-error": {"kind": ..., "message": ...}}`.
    pub value: Value,
}

impl Outcome {
    fn ok(name: &str, value: Value) -> Self {
        Self {
            name: name.into(),
            ok: true,
            value: json!({ "ok": value }),
        }
    }

    fn error(case: &str, message: &str) -> Self {
        Self {
            name: case.into(),
            ok: false,
            value: json!({ "error": { case: message } }),
        }
    }

    fn host(error: &PluginError) -> Self {
        Self {
            name: "host-error".into(),
            ok: false,
            value: json!({ "host-error": { "kind": error.kind(), "message": error.to_string() } }),
        }
    }

    /// Whether this is what `expect` names; `ok` accepts any success.
    pub fn matches(&self, expect: &str) -> bool {
        self.name == expect || (self.ok && expect == "ok")
    }

    /// One line for reports, e.g. `declined: Your card was declined.`.
    pub fn summary(&self) -> String {
        let inner = |key: &str| self.value.get(key).cloned().unwrap_or(Value::Null);
        if self.ok {
            return format!("{} {}", self.name, inner("ok"));
        }
        if let Some(host) = self.value.get("host-error") {
            return format!(
                "host error ({}): {}",
                host["kind"].as_str().unwrap_or_default(),
                host["message"].as_str().unwrap_or_default()
            );
        }
        let message = inner("error")
            .get(&self.name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        format!("{}: {message}", self.name)
    }

    /// `create-payment`'s result.
    pub fn session(result: Result<Result<PaymentSession, ProviderError>, PluginError>) -> Self {
        match result {
            Ok(Ok(s)) => Self::ok(
                "ok",
                json!({ "reference": s.reference, "payment-url": s.payment_url }),
            ),
            Ok(Err(e)) => provider_error(&e),
            Err(e) => Self::host(&e),
        }
    }

    /// `payment-status`'s result; a success is named by the state.
    pub fn state(result: Result<Result<PaymentState, ProviderError>, PluginError>) -> Self {
        match result {
            Ok(Ok(state)) => {
                let name = match state {
                    PaymentState::Pending => "pending",
                    PaymentState::Finished => "finished",
                    PaymentState::Failed => "failed",
                };
                Self::ok(name, json!(name))
            }
            Ok(Err(e)) => provider_error(&e),
            Err(e) => Self::host(&e),
        }
    }

    /// `refund`'s result: named by the refund's state, with its reference.
    pub fn refund(result: Result<Result<RefundSession, ProviderError>, PluginError>) -> Self {
        match result {
            Ok(Ok(s)) => {
                let name = refund_state(s.state);
                Self::ok(name, json!({ "reference": s.reference, "state": name }))
            }
            Ok(Err(e)) => provider_error(&e),
            Err(e) => Self::host(&e),
        }
    }

    /// `refund-status`'s result; a success is named by the state.
    pub fn refund_state(result: Result<Result<RefundState, ProviderError>, PluginError>) -> Self {
        match result {
            Ok(Ok(state)) => {
                let name = refund_state(state);
                Self::ok(name, json!(name))
            }
            Ok(Err(e)) => provider_error(&e),
            Err(e) => Self::host(&e),
        }
    }

    /// `verify`'s result.
    pub fn events(result: Result<Result<Vec<Event>, VerifyError>, PluginError>) -> Self {
        match result {
            Ok(Ok(events)) => Self::ok("ok", events.iter().map(event).collect()),
            Ok(Err(e)) => {
                let (case, message) = match &e {
                    VerifyError::InvalidSignature(m) => ("invalid-signature", m),
                    VerifyError::SignatureExpired(m) => ("signature-expired", m),
                    VerifyError::Malformed(m) => ("malformed", m),
                    VerifyError::Misconfigured(m) => ("misconfigured", m),
                };
                Self::error(case, message)
            }
            Err(e) => Self::host(&e),
        }
    }

    /// `decide`'s result.
    pub fn decision(result: &Result<Decision, PluginError>) -> Self {
        match result {
            Ok(d) => Self::ok(
                if d.allowed { "allowed" } else { "denied" },
                json!({
                    "allowed": d.allowed,
                    "limit": d.limit,
                    "remaining": d.remaining,
                    "reset-ms": d.reset_ms,
                    "retry-after-ms": d.retry_after_ms,
                }),
            ),
            Err(e) => Self::host(e),
        }
    }
}

fn refund_state(state: RefundState) -> &'static str {
    match state {
        RefundState::Pending => "pending",
        RefundState::Succeeded => "succeeded",
        RefundState::Failed => "failed",
    }
}

fn provider_error(e: &ProviderError) -> Outcome {
    let (case, message) = match e {
        ProviderError::Declined(m) => ("declined", m),
        ProviderError::InvalidRequest(m) => ("invalid-request", m),
        ProviderError::Unavailable(m) => ("unavailable", m),
        ProviderError::Misconfigured(m) => ("misconfigured", m),
    };
    Outcome::error(case, message)
}

/// A payment event as `{"event-id", "payment", "status", "provider-type",
/// "amount"}`; a refund event has `"refund": {"reference", "refund-id"}`
/// in place of `"payment"`.
fn event(e: &Event) -> Value {
    let amount = |m: &Option<Money>| {
        m.as_ref()
            .map(|m| json!({ "value": m.value, "currency": m.currency }))
    };
    match e {
        Event::Payment(e) => {
            let payment = match &e.payment {
                PaymentRef::PaymentId(id) => json!({ "payment-id": id }),
                PaymentRef::ProviderReference(r) => json!({ "provider-reference": r }),
            };
            let status = match e.status {
                EventStatus::Pending => "pending",
                EventStatus::Finished => "finished",
                EventStatus::Failed => "failed",
            };
            json!({
                "event-id": e.event_id,
                "payment": payment,
                "status": status,
                "provider-type": e.provider_type,
                "amount": amount(&e.amount),
            })
        }
        Event::Refund(e) => {
            let status = match e.status {
                RefundStatus::Pending => "pending",
                RefundStatus::Succeeded => "succeeded",
                RefundStatus::Failed => "failed",
            };
            json!({
                "event-id": e.event_id,
                "refund": {"reference": e.reference, "refund-id": e.refund_id},
                "status": status,
                "provider-type": e.provider_type,
                "amount": amount(&e.amount),
            })
        }
    }
}
