//! The webhook a settled payment or a refund settled late sends the
//! gateway, signed as paygate's verifiers expect, and its delivery with
//! retries. Adyen's notifications are built in [`super::adyen_webhook`].

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::oneshot;

use super::checkout::session_json;
use super::ids::{EVENT_PREFIX, new_id};
use super::store::{Order, Outcome, Payment, RefundOutcome, Sandbox, SandboxRefund, unix_now};

/// Attempts per webhook, and the pause before the first retry (doubling).
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// A webhook ready to send: where, what, and how to sign it.
pub(crate) struct Webhook {
    /// The sandbox payment or refund it is about.
    subject: String,
    url: String,
    body: Vec<u8>,
    scheme: Scheme,
}

enum Scheme {
    /// `x-internal-signature`: hex HMAC of the body.
    Internal,
    /// `Stripe-Signature`: HMAC of `{t}.{body}`, signed afresh per attempt
    /// as Stripe does, so a late retry is not refused as stale.
    Stripe,
    /// Adyen's: the signature is inside the body, no header.
    Adyen,
}

/// The webhook announcing `payment`'s outcome, `None` while it is pending.
pub(crate) fn for_payment(sandbox: &Sandbox, payment: &Payment) -> Option<Webhook> {
    let gateway = &sandbox.settings().gateway_url;
    let (url, body, scheme) = match (&payment.order, payment.outcome) {
        (_, Outcome::Pending) => return None,
        (Order::Link(link), outcome) => {
            let status = if outcome == Outcome::Finished {
                "finished"
            } else {
                "failed"
            };
            // Written out by hand so the bytes are exactly the documented
            // body, plus the link's id: paygate's verifier then moves only
            // the payment this link was opened for, whatever `payment_id`
            // whoever opened the link put in it (security review, finding 16).
            let body = format!(
                r#"{{"payment_id":{},"status":"{status}","reference":"{}"}}"#,
                link.payment_id, payment.id
            );
            let url = format!("{gateway}/api/v1/payments/webhook");
            (url, body.into_bytes(), Scheme::Internal)
        }
        (Order::Session(_), outcome) => {
            let kind = if outcome == Outcome::Finished {
                "checkout.session.completed"
            } else {
                "checkout.session.expired"
            };
            let event = json!({
                "id": new_id(EVENT_PREFIX),
                "object": "event",
                "type": kind,
                "created": unix_now(),
                "data": { "object": session_json(sandbox, payment) },
            });
            let url = format!("{gateway}/api/v1/payments/webhook/stripe");
            (url, event.to_string().into_bytes(), Scheme::Stripe)
        }
        (Order::Adyen(_), _) => {
            let body = super::adyen_webhook::authorisation(sandbox, payment)?;
            let url = format!("{gateway}{}", super::adyen_webhook::PATH);
            (url, body, Scheme::Adyen)
        }
    };
    Some(Webhook {
        subject: payment.id.clone(),
        url,
        body,
        scheme,
    })
}

/// The webhook announcing `refund`'s outcome, `None` while it is pending or
/// when its payment is gone: the internal scheme's refund body for the link
/// API, Stripe's `refund.updated` for the Stripe subset, Adyen's `REFUND`
/// for Adyen's.
pub(crate) fn for_refund(sandbox: &Sandbox, refund: &SandboxRefund) -> Option<Webhook> {
    let gateway = &sandbox.settings().gateway_url;
    let status = match refund.outcome {
        RefundOutcome::Pending => return None,
        RefundOutcome::Succeeded => "succeeded",
        RefundOutcome::Failed => "failed",
    };
    let paid = sandbox.get(&refund.payment)?;
    let (url, body, scheme) = match paid.order {
        Order::Link(_) => {
            // The refund's own id as `reference`: paygate moves only the
            // refund the adapter was answered this id for.
            let body = format!(
                r#"{{"refund_id":{},"status":"{status}","reference":"{}"}}"#,
                refund.refund_id, refund.id
            );
            let url = format!("{gateway}/api/v1/payments/webhook");
            (url, body.into_bytes(), Scheme::Internal)
        }
        Order::Session(_) => {
            let kind = if refund.outcome == RefundOutcome::Failed {
                "refund.failed"
            } else {
                "refund.updated"
            };
            let event = json!({
                "id": new_id(EVENT_PREFIX),
                "object": "event",
                "type": kind,
                "created": unix_now(),
                "data": { "object": super::stripe_refunds::refund_json(refund) },
            });
            let url = format!("{gateway}/api/v1/payments/webhook/stripe");
            (url, event.to_string().into_bytes(), Scheme::Stripe)
        }
        Order::Adyen(_) => {
            let body = super::adyen_webhook::refund(sandbox, refund, &paid)?;
            let url = format!("{gateway}{}", super::adyen_webhook::PATH);
            (url, body, Scheme::Adyen)
        }
    };
    Some(Webhook {
        subject: refund.id.clone(),
        url,
        body,
        scheme,
    })
}

/// Delivers `webhook` in the background. The receiver fires once the first
/// attempt has an answer, so the caller may wait that long and no longer.
pub(crate) fn spawn(sandbox: Sandbox, webhook: Webhook) -> oneshot::Receiver<()> {
    let (first_done, first_answer) = oneshot::channel();
    tokio::spawn(deliver(sandbox, webhook, first_done));
    first_answer
}

async fn deliver(sandbox: Sandbox, webhook: Webhook, first_done: oneshot::Sender<()>) {
    let mut first_done = Some(first_done);
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let mut request = (sandbox.http().post(&webhook.url))
            .header("content-type", "application/json")
            .body(webhook.body.clone());
        if let Some((name, value)) = signature(&sandbox, &webhook) {
            request = request.header(name, value);
        }
        let sent = request.send().await;
        let (delivered, outcome) = match sent {
            Ok(answer) if answer.status().is_success() => (
                true,
                format!("delivered (HTTP {})", answer.status().as_u16()),
            ),
            Ok(answer) => (
                false,
                format!("gateway answered HTTP {}", answer.status().as_u16()),
            ),
            Err(error) => (false, format!("gateway unreachable: {}", chain(&error))),
        };
        let url = webhook.url.as_str();
        if delivered {
            tracing::info!(payment = %webhook.subject, %url, attempt, %outcome, "sandbox webhook");
        } else {
            tracing::warn!(payment = %webhook.subject, %url, attempt, %outcome, "sandbox webhook");
        }
        let last = !delivered && attempt == ATTEMPTS;
        let summary = if last {
            format!("{outcome}; gave up after {ATTEMPTS} attempts")
        } else {
            format!("{outcome} (attempt {attempt} of {ATTEMPTS})")
        };
        sandbox.record_delivery(&webhook.subject, summary);
        if let Some(done) = first_done.take() {
            let _ = done.send(());
        }
        if delivered || last {
            if last {
                tracing::error!(payment = %webhook.subject, %url, "sandbox webhook not delivered");
            }
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}

/// The signature header for one attempt, where the scheme has one.
fn signature(sandbox: &Sandbox, webhook: &Webhook) -> Option<(&'static str, String)> {
    let settings = sandbox.settings();
    match webhook.scheme {
        Scheme::Internal => Some((
            "x-internal-signature",
            hmac_hex(settings.internal_secret.expose().as_bytes(), &webhook.body),
        )),
        Scheme::Stripe => {
            let t = unix_now();
            let mut signed = format!("{t}.").into_bytes();
            signed.extend_from_slice(&webhook.body);
            let v1 = hmac_hex(settings.stripe_secret.expose().as_bytes(), &signed);
            Some(("stripe-signature", format!("t={t},v1={v1}")))
        }
        Scheme::Adyen => None,
    }
}

/// Lower-case hex HMAC-SHA256.
fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// An error with its causes, which is where reqwest says what went wrong.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}
