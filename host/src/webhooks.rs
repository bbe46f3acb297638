//! Receiving provider webhooks: the [limits](WebhookLimits) count the
//! sender and the alias, the route's verifier plugin reads the request, the
//! [webhook log](crate::WebhookLog) keeps it whatever the verdict, and each
//! verified event is applied to its payment. No HTTP here: the handler
//! turns [`Applied`] outcomes and [`WebhookError`] into answers.

mod limits;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use limits::{Counted, LimitError, WebhookLimits};

use crate::ids::RefundId;
use crate::payments::webhook::{
    Applied, PaymentLookup, ProviderEvent, RefundApplied, RefundLookup, Source,
};
use crate::payments::{Alias, PaymentStatus, PaymentStore};
use crate::plugins::PluginSet;
use crate::plugins::bindings::{Event, PaymentRef, VerifyError, WebhookRequest};
use crate::providers::ProviderStore;
use crate::webhook_log::{Inbound, WebhookLog};

/// The receiving side of provider webhooks, built once at start.
pub struct Webhooks {
    pub payments: PaymentStore,
    pub providers: Arc<ProviderStore>,
    pub plugins: Arc<PluginSet>,
    pub log: WebhookLog,
    /// The verifier plugin of the internal scheme's route.
    pub internal_verifier: String,
    pub limits: WebhookLimits,
    /// Peers whose `X-Forwarded-For` names the sender (`PAYGATE_TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<IpAddr>,
    /// Counts events that come after their payment expired.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Which route a webhook came in on.
#[derive(Clone, Copy, Debug)]
pub enum Route<'a> {
    /// `POST /api/v1/payments/webhook`: the internal scheme.
    Internal,
    /// `POST /api/v1/payments/webhook/{alias}`: the alias's verifier.
    Alias(&'a str),
}

/// A webhook as it arrived.
pub struct Delivery<'a> {
    pub request_id: &'a str,
    /// The sender as the trusted proxies make it; `None` when unknown
    /// (not over a socket), which no per-IP limit counts.
    pub client_ip: Option<IpAddr>,
    pub path: &'a str,
    /// Every header, in order, names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

/// What one verified event did to the payment or refund it named.
#[derive(Clone, Debug, PartialEq)]
pub enum EventOutcome {
    Payment {
        /// The payment id the event named, when it named one by id.
        named_id: Option<u64>,
        applied: Applied,
    },
    Refund {
        /// The refund id the event named, when it named one.
        named_id: Option<u64>,
        applied: RefundApplied,
    },
}

impl EventOutcome {
    fn mismatched(&self) -> bool {
        matches!(
            self,
            Self::Payment {
                applied: Applied::AmountMismatch { .. },
                ..
            } | Self::Refund {
                applied: RefundApplied::AmountMismatch { .. },
                ..
            }
        )
    }

    /// The refund this outcome waits for the provider's answer about.
    fn unanswered(&self) -> Option<RefundId> {
        match self {
            Self::Refund {
                applied: RefundApplied::Unanswered { refund_id },
                ..
            } => Some(*refund_id),
            _ => None,
        }
    }

    fn unmatched(&self) -> bool {
        matches!(
            self,
            Self::Payment {
                applied: Applied::NotFound,
                ..
            } | Self::Refund {
                applied: RefundApplied::NotFound,
                ..
            }
        )
    }
}

/// Why a webhook was not applied.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no verifier is bound to the alias")]
    UnknownAlias,
    /// Refused before the verifier ran; nothing was stored.
    #[error(transparent)]
    Limited(#[from] LimitError),
    /// The verifier's detail goes to the webhook log, not to the caller.
    #[error("invalid signature")]
    InvalidSignature,
    #[error("signature expired")]
    SignatureExpired,
    #[error("{0}")]
    Malformed(String),
    #[error("verifier {0} is misconfigured")]
    Misconfigured(String),
    /// The verifier plugin is missing, trapped or ran out of a limit.
    #[error("{0}")]
    VerifierFailed(String),
    /// An event names a refund whose provider has not answered paygate
    /// yet (its webhook came first); the provider is to send it again.
    #[error("refund {0} is still waiting for its provider's answer")]
    Unanswered(RefundId),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The pauses before asking again about refund events that came before
/// their refunds' answers (about 5 s in all, per delivery): a provider
/// call answers well within them, and a provider waits longer for a
/// webhook's answer (Adyen 10 s).
const ANSWER_WAITS: [Duration; 8] = [
    Duration::from_millis(20),
    Duration::from_millis(40),
    Duration::from_millis(80),
    Duration::from_millis(160),
    Duration::from_millis(320),
    Duration::from_millis(640),
    Duration::from_millis(1280),
    Duration::from_millis(2560),
];

impl Webhooks {
    /// Counts `delivery` against its sender's and its alias's limits,
    /// verifies it with the route's verifier, logs it with the verdict, then
    /// applies its events in order. A webhook that cannot be logged is not
    /// applied (the provider retries it).
    pub async fn receive(
        &self,
        route: Route<'_>,
        delivery: Delivery<'_>,
    ) -> Result<Vec<EventOutcome>, WebhookError> {
        if let Some(ip) = delivery.client_ip {
            self.limits.check(Counted::Client(ip)).await?;
        }
        let (alias, verifier) = match route {
            Route::Internal => (None, self.internal_verifier.clone()),
            Route::Alias(alias) => {
                // What no binding could be named (a NUL, upper case, too
                // long) is no alias: the database is not asked.
                Alias::parse(alias).map_err(|_| WebhookError::UnknownAlias)?;
                let binding = self.providers.get(alias).await?;
                let verifier = binding.and_then(|b| b.verifier_plugin);
                (Some(alias), verifier.ok_or(WebhookError::UnknownAlias)?)
            }
        };
        // Only routes that exist are counted, so made-up aliases cannot
        // make counters.
        self.limits.check(Counted::Alias(alias)).await?;
        let request = WebhookRequest {
            path: delivery.path.to_owned(),
            headers: delivery.headers,
            body: delivery.body.to_vec(),
        };
        let outcome = match self.plugins.require(&verifier) {
            Ok(plugin) => plugin.verify(delivery.request_id, &request).await,
            Err(e) => Err(e),
        };
        let (verdict, detail, verified) = match outcome {
            Ok(Ok(events)) => ("valid", None, Ok(events)),
            Ok(Err(VerifyError::InvalidSignature(d))) => (
                "invalid_signature",
                Some(d),
                Err(WebhookError::InvalidSignature),
            ),
            Ok(Err(VerifyError::SignatureExpired(d))) => (
                "signature_expired",
                Some(d),
                Err(WebhookError::SignatureExpired),
            ),
            Ok(Err(VerifyError::Malformed(d))) => (
                "malformed",
                Some(d.clone()),
                Err(WebhookError::Malformed(d)),
            ),
            Ok(Err(VerifyError::Misconfigured(d))) => (
                "misconfigured",
                Some(d),
                Err(WebhookError::Misconfigured(verifier.clone())),
            ),
            Err(e) => (
                "verifier_failed",
                Some(e.to_string()),
                Err(WebhookError::VerifierFailed(e.to_string())),
            ),
        };
        let logged = self
            .log
            .record(&Inbound {
                request_id: delivery.request_id,
                path: delivery.path,
                alias,
                headers: &request.headers,
                body: delivery.body,
                verdict,
                detail: detail.as_deref(),
            })
            .await?;
        // Only bound routes are counted, so made-up aliases make no series.
        let counted = alias.unwrap_or("internal");
        let events = match verified {
            Ok(events) => events,
            Err(e) => {
                self.metrics.webhook(counted, verdict);
                return Err(e);
            }
        };

        // An event may only touch payments made through an alias this
        // verifier speaks for.
        let aliases: Vec<String> = self
            .providers
            .list()
            .await?
            .into_iter()
            .filter(|b| b.verifier_plugin.as_deref() == Some(verifier.as_str()))
            .map(|b| b.alias)
            .collect();
        let mut outcomes = Vec::with_capacity(events.len());
        // One budget of waits for the whole delivery, however many of its
        // events came before their refunds' answers.
        let mut waits = ANSWER_WAITS.iter();
        for event in &events {
            outcomes.push(self.apply(event, &aliases, &mut waits).await?);
        }
        if let Some(refund_id) = outcomes.iter().find_map(EventOutcome::unanswered) {
            // Not applied, and not lost: the provider retries what is not
            // acknowledged, and by then the answer is stored. The events
            // applied already are "already processed" on the next delivery.
            let detail = format!(
                "refund {refund_id} still waits for its provider's answer; the provider is to send this again"
            );
            tracing::warn!(verifier = %verifier, %detail, "refund event came before its refund's answer");
            self.log
                .set_verdict(logged, "deferred", Some(&detail))
                .await?;
            self.metrics.webhook(counted, "deferred");
            return Err(WebhookError::Unanswered(refund_id));
        }
        let mismatched = outcomes.iter().filter(|o| o.mismatched()).count();
        if mismatched > 0 {
            let detail = format!(
                "{mismatched} of {} events name another amount than their payment's or refund's",
                outcomes.len()
            );
            self.log
                .set_verdict(logged, "amount_mismatch", Some(&detail))
                .await?;
            self.metrics.webhook(counted, "amount_mismatch");
            return Ok(outcomes);
        }
        let unmatched = outcomes.iter().filter(|o| o.unmatched()).count();
        if unmatched > 0 {
            // Well signed, but about no payment or refund this verifier may
            // move: an unknown id, another provider's payment, or (Stripe)
            // a session or refund paygate did not ask for. Operators look
            // for these.
            let detail = format!(
                "{unmatched} of {} events name no payment or refund of the verifier's aliases",
                outcomes.len()
            );
            tracing::warn!(verifier = %verifier, %detail, "verified webhook matched no payment");
            self.log
                .set_verdict(logged, "unmatched", Some(&detail))
                .await?;
            self.metrics.webhook(counted, "unmatched");
        } else {
            self.metrics.webhook(counted, "valid");
        }
        Ok(outcomes)
    }
}

impl Webhooks {
    /// Applies one verified event to the payment or refund it names,
    /// among the payments of `aliases`; a refund event that came before
    /// its refund's answer takes pauses from `waits` while it waits.
    async fn apply(
        &self,
        event: &Event,
        aliases: &[String],
        waits: &mut std::slice::Iter<'_, Duration>,
    ) -> Result<EventOutcome, sqlx::Error> {
        Ok(match event {
            Event::Payment(event) => {
                let provider_event = ProviderEvent {
                    lookup: PaymentLookup::from(&event.payment),
                    status: PaymentStatus::from(event.status),
                    provider_type: &event.provider_type,
                    event_id: &event.event_id,
                    amount: event.amount.as_ref(),
                    source: Source::Webhook,
                };
                let applied = self
                    .payments
                    .apply_provider_event(&provider_event, aliases)
                    .await?;
                if let Applied::AlreadyProcessed {
                    payment_id,
                    status: PaymentStatus::Expired,
                } = applied
                    && provider_event.status != PaymentStatus::Pending
                {
                    // The provider settled a payment paygate gave up on:
                    // money may have moved. Nothing changes; a person looks.
                    tracing::warn!(
                        payment_id = payment_id.get(),
                        provider_type = %event.provider_type,
                        "provider event for an expired payment; already processed"
                    );
                    (self.metrics.events_after_expiry).inc();
                }
                if let Applied::Updated { status, alias, .. } = &applied {
                    self.metrics.payments_finished(alias, *status, 1);
                }
                let named_id = match &event.payment {
                    PaymentRef::PaymentId(id) => Some(*id),
                    PaymentRef::ProviderReference(_) => None,
                };
                EventOutcome::Payment { named_id, applied }
            }
            Event::Refund(event) => {
                // An id past `i64::MAX` cannot be one of ours: it names
                // no refund, as a payment's does.
                let refund_id = event
                    .refund_id
                    .map(|id| RefundId::new(i64::try_from(id).unwrap_or(-1)));
                let lookup = RefundLookup {
                    reference: event.reference.as_deref(),
                    refund_id,
                };
                // A provider may send a refund's webhook before it answers
                // the refund request: the event waits a little for the
                // answer, which stores the reference it names.
                let applied = loop {
                    let applied = self
                        .payments
                        .apply_refund_event(
                            lookup,
                            aliases,
                            event.status,
                            &event.provider_type,
                            &event.event_id,
                            event.amount.as_ref(),
                        )
                        .await?;
                    match (&applied, waits.next()) {
                        (RefundApplied::Unanswered { .. }, Some(wait)) => {
                            tokio::time::sleep(*wait).await;
                        }
                        _ => break applied,
                    }
                };
                EventOutcome::Refund {
                    named_id: event.refund_id,
                    applied,
                }
            }
        })
    }
}
