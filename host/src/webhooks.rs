//! Receiving provider webhooks: the [limits](WebhookLimits) count the
//! sender and the alias, the route's verifier plugin reads the request, the
//! [webhook log](crate::WebhookLog) keeps it whatever the verdict, and each
//! verified event is applied to its payment. No HTTP here: the handler
//! turns [`Applied`] outcomes and [`WebhookError`] into answers.

mod limits;

use std::net::IpAddr;
use std::sync::Arc;

pub use limits::{Counted, LimitError, WebhookLimits};

use crate::payments::webhook::{Applied, PaymentLookup};
use crate::payments::{Alias, PaymentStatus, PaymentStore};
use crate::plugins::PluginSet;
use crate::plugins::bindings::{PaymentRef, VerifyError, WebhookRequest};
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

/// What one verified event did to the payment it named.
#[derive(Clone, Debug, PartialEq)]
pub struct EventOutcome {
    /// The payment id the event named, when it named one by id.
    pub named_id: Option<u64>,
    pub applied: Applied,
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
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

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
        let events = verified?;

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
        for event in &events {
            let applied = self
                .payments
                .apply_provider_event(
                    PaymentLookup::from(&event.payment),
                    &aliases,
                    PaymentStatus::from(event.status),
                    &event.provider_type,
                    &event.event_id,
                    event.amount.as_ref(),
                )
                .await?;
            let named_id = match &event.payment {
                PaymentRef::PaymentId(id) => Some(*id),
                PaymentRef::ProviderReference(_) => None,
            };
            outcomes.push(EventOutcome { named_id, applied });
        }
        let mismatched = outcomes
            .iter()
            .filter(|o| matches!(o.applied, Applied::AmountMismatch { .. }))
            .count();
        if mismatched > 0 {
            let detail = format!(
                "{mismatched} of {} events name another amount than their payment's",
                outcomes.len()
            );
            self.log
                .set_verdict(logged, "amount_mismatch", Some(&detail))
                .await?;
            return Ok(outcomes);
        }
        let unmatched = outcomes
            .iter()
            .filter(|o| o.applied == Applied::NotFound)
            .count();
        if unmatched > 0 {
            // Well signed, but about no payment this verifier may move: an
            // unknown id, another provider's payment, or (Stripe) a session
            // paygate did not open for it. Operators look for these.
            let detail = format!(
                "{unmatched} of {} events name no payment of the verifier's aliases",
                outcomes.len()
            );
            tracing::warn!(verifier = %verifier, %detail, "verified webhook matched no payment");
            self.log
                .set_verdict(logged, "unmatched", Some(&detail))
                .await?;
        }
        Ok(outcomes)
    }
}
