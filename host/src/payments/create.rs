//! Creating a payment: the order of checks API.md fixes, a payment row
//! before the provider call, and an exact quota.

use std::sync::Arc;

use serde_json::json;

use super::domain::{Alias, Currency, IdempotencyKey, Metadata, Money, PaymentStatus, RedirectUrl};
use super::idempotency::Reservation;
use super::outcome::{CreateError, Created, Opened, Outcome, Refused};
use super::store::{Inserted, KeyOutcome, NewPayment, PaymentStore};
use crate::ids::{MerchantId, OrderId, PaymentId, SubscriptionId};
use crate::merchants::{Merchant, MerchantStore, QuotaError, Take};
use crate::plugins::bindings::{PaymentRequest, ProviderError};
use crate::plugins::{Account, Caller, PluginError, PluginSet};
use crate::providers::{CircuitBreaker, CircuitState, ProviderStore};

/// How long a compensating write that met a database outage is retried.
const COMPENSATE_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// The payment-creation service: what the saga needs, built once at start
/// from the stores and the typed settings, and handed to the create
/// handler (and to anything else that creates payments) on its own.
pub struct PaymentsService {
    pub payments: PaymentStore,
    pub merchants: MerchantStore,
    pub providers: Arc<ProviderStore>,
    pub circuit: CircuitBreaker,
    pub plugins: Arc<PluginSet>,
    /// How long an unfinished creation holds its idempotency key and token.
    pub request_lease: std::time::Duration,
    /// Return and cancel URLs may be `http://` on any host, not only on
    /// loopback (`serve --demo`).
    pub allow_http_redirects: bool,
    /// How long a payment may stay pending (`PAYGATE_PAYMENT_EXPIRY`).
    pub payment_expiry: std::time::Duration,
    /// Payments created and finished, by alias and status.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// How fast reconciliation asks while merchants' requests are in
    /// flight (`PAYGATE_RECONCILE_BUSY_RATE`).
    pub reconcile_pace: crate::foreground::Pace,
}

/// How long this request's compensating writes may go on: well within the
/// request lease, so a late one never frees a key or gives back a token
/// that a retry has taken over since.
fn compensate_within(gw: &PaymentsService) -> std::time::Duration {
    COMPENSATE_WITHIN.min(gw.request_lease / 2)
}

/// A validated `POST /api/v1/payments` body.
#[derive(Clone, Debug, PartialEq)]
pub struct CreatePayment {
    pub order_id: OrderId,
    pub amount: Money,
    pub price: Money,
    pub alias: Alias,
    pub subscription_id: SubscriptionId,
    pub event_id: Option<IdempotencyKey>,
    pub currency: Option<Currency>,
    /// Where the provider sends the buyer after paying.
    pub return_url: Option<RedirectUrl>,
    /// Where the provider sends a buyer who cancels or is declined.
    pub cancel_url: Option<RedirectUrl>,
    pub metadata: Metadata,
}

impl CreatePayment {
    /// The payment's currency code: the request's, else the merchant's
    /// default.
    pub fn currency_code(&self, merchant: &Merchant) -> String {
        self.currency
            .map_or_else(|| merchant.default_currency.clone(), |c| c.to_string())
    }

    /// No provider can charge a price finer than its currency's minor
    /// unit: why this price does not fit the payment's currency, if not.
    pub fn check_price_precision(&self, merchant: &Merchant) -> Result<(), String> {
        match Currency::parse(&self.currency_code(merchant)) {
            Ok(currency) if !self.price.fits(&currency) => Err(format!(
                "must have at most {} decimal places in {currency}",
                currency.exponent()
            )),
            _ => Ok(()),
        }
    }

    /// The merchant's default return and cancel URLs where the request
    /// names none (API.md, "Return URLs and metadata"); without either,
    /// the alias's configured URLs apply.
    pub fn with_merchant_defaults(mut self, merchant: &Merchant) -> Self {
        if self.return_url.is_none() {
            self.return_url = merchant.default_return_url.clone();
        }
        if self.cancel_url.is_none() {
            self.cancel_url = merchant.default_cancel_url.clone();
        }
        self
    }
}

/// Runs the whole creation. `key` is the idempotency key (header, else
/// `event_id`), `fingerprint` the hash of the canonical body.
#[tracing::instrument(name = "saga.create", skip_all, fields(merchant_id = merchant.id.get(), order_id = request.order_id.get(), alias = %request.alias))]
pub async fn create_payment(
    gw: &PaymentsService,
    merchant: &Merchant,
    request: &CreatePayment,
    key: Option<&IdempotencyKey>,
    fingerprint: &[u8],
    request_id: &str,
) -> Result<Created, CreateError> {
    let mut resumed = None;
    if let Some(key) = key {
        match gw
            .payments
            .reserve_key(merchant.id, key, fingerprint, gw.request_lease)
            .await?
        {
            Reservation::Fresh => {}
            Reservation::Resume { payment_id } => resumed = Some(payment_id),
            Reservation::Replay { kind, record } => {
                return Ok(Created {
                    outcome: Outcome::from_record(kind, record)?,
                    replayed: true,
                });
            }
            Reservation::Conflict => return Err(CreateError::IdempotencyConflict),
            Reservation::InProgress => return Err(CreateError::RequestInProgress),
        }
    }
    let outcome = match resumed {
        Some(payment_id) => resume(gw, merchant, request, key, request_id, payment_id).await,
        None => {
            let outcome = run(gw, merchant, request, key, request_id).await;
            if let Ok(written) = &outcome {
                let status = match written {
                    Outcome::Opened(_) => PaymentStatus::Pending,
                    Outcome::Refused(_) => PaymentStatus::Failed,
                };
                gw.metrics.payment_created(request.alias.as_str(), status);
            }
            outcome
        }
    };
    if let (Some(key), Err(_)) = (key, &outcome) {
        // An error frees the key: for a corrected retry, or, when a payment
        // was stored, for a retry that finishes it. (An outcome was kept for
        // the key where it was written.)
        finish_key(gw, merchant.id, key, None).await;
    }
    outcome.map(|outcome| Created {
        outcome,
        replayed: false,
    })
}

/// Keeps a final outcome's `record` for the key, or, without one, frees
/// it; a write that fails is retried in the background.
async fn finish_key(
    gw: &PaymentsService,
    merchant_id: MerchantId,
    key: &IdempotencyKey,
    record: Option<(i16, serde_json::Value)>,
) {
    if let Err(e) = record_outcome(&gw.payments, merchant_id, key, record.as_ref()).await {
        tracing::warn!(error = %e, "could not record the idempotency outcome; retrying");
        let (payments, key) = (gw.payments.clone(), key.clone());
        let within = compensate_within(gw);
        crate::db::retry_in_background("idempotency outcome", within, move || {
            let (payments, key, record) = (payments.clone(), key.clone(), record.clone());
            async move { record_outcome(&payments, merchant_id, &key, record.as_ref()).await }
        });
    }
}

/// Keeps a final outcome's `record` for the key, or, without one, frees it.
async fn record_outcome(
    payments: &crate::payments::PaymentStore,
    merchant_id: MerchantId,
    key: &IdempotencyKey,
    record: Option<&(i16, serde_json::Value)>,
) -> Result<(), sqlx::Error> {
    match record {
        Some((kind, json)) => payments.complete_key(merchant_id, key, *kind, json).await,
        None => payments.release_key(merchant_id, key).await,
    }
}

/// Whom a payment is opened with.
struct Provider {
    /// The provider plugin bound to the request's alias.
    plugin: String,
    /// The merchant's own account at the provider, if it has one there.
    account: Option<Arc<Account>>,
}

/// The request's provider, read before anything is charged or stored: a
/// merchant whose account cannot be read (a secret that does not open)
/// gets an error that leaves no payment behind.
async fn provider(
    gw: &PaymentsService,
    merchant: &Merchant,
    request: &CreatePayment,
) -> Result<Provider, CreateError> {
    let alias = request.alias.as_str();
    let plugin = gw
        .providers
        .get(alias)
        .await?
        .filter(|b| b.available)
        .map(|b| b.provider_plugin)
        .ok_or_else(|| CreateError::UnknownAlias(request.alias.to_string()))?;
    let account = gw.merchants.accounts.account(merchant.id, alias).await?;
    Ok(Provider { plugin, account })
}

#[tracing::instrument(name = "saga.run", level = "debug", skip_all)]
async fn run(
    gw: &PaymentsService,
    merchant: &Merchant,
    request: &CreatePayment,
    key: Option<&IdempotencyKey>,
    request_id: &str,
) -> Result<Outcome, CreateError> {
    let provider = provider(gw, merchant, request).await?;
    match gw
        .merchants
        .take_token(merchant.id, request.subscription_id, request.order_id)
        .await?
    {
        Take::Taken => {}
        Take::Held { age } => {
            // The order is charged already: by its payment, by a request for
            // it that is still running, or by one that died before creating
            // the payment (then, after the lease, this request carries on
            // with that charge).
            order_free(gw, merchant, request).await?;
            let dead = age >= gw.request_lease
                && gw
                    .merchants
                    .take_over_charge(merchant.id, request.order_id, gw.request_lease)
                    .await?;
            if !dead {
                return Err(CreateError::RequestInProgress);
            }
        }
        Take::Refused(refused) => {
            // order_exists is checked before the quota: a spent quota does
            // not hide an existing order.
            order_free(gw, merchant, request).await?;
            return Err(match refused {
                QuotaError::InvalidSubscription => CreateError::InvalidSubscription,
                QuotaError::Exhausted => CreateError::QuotaExceeded,
            });
        }
    }
    // From here on the order's token is held: every path that creates no
    // payment, or one whose creation failed, gives it back. A crash in
    // between leaves that to the quota reconciler.
    let mut stored = false;
    let result = with_token(
        gw,
        merchant,
        request,
        key,
        request_id,
        &provider,
        &mut stored,
    )
    .await;
    confirm_or_return_token(gw, merchant, request, &result, stored).await;
    result
}

/// Confirms the order's token for a created payment (it stays charged; the
/// quota reconciler marks the charge confirmed), gives it back otherwise.
/// An error after the payment row was `stored` means its outcome could not
/// be recorded: it exists, pending, and keeps its token. An error before
/// that may be an insert that committed unseen (its acknowledgement lost
/// with the connection), so the token goes back only if no payment holds it.
#[tracing::instrument(name = "saga.confirm_or_return_token", level = "debug", skip_all)]
async fn confirm_or_return_token(
    gw: &PaymentsService,
    merchant: &Merchant,
    request: &CreatePayment,
    result: &Result<Outcome, CreateError>,
    stored: bool,
) {
    let keep_token = matches!(result, Ok(Outcome::Opened(_))) || (stored && result.is_err());
    if keep_token {
        return;
    }
    let uncertain = result.is_err();
    let (merchants, payments) = (gw.merchants.clone(), gw.payments.clone());
    let (merchant_id, order_id) = (merchant.id, request.order_id);
    let give_back = move || {
        let (merchants, payments) = (merchants.clone(), payments.clone());
        async move {
            let order = [(merchant_id, order_id)];
            if uncertain && !payments.live_orders(&order).await?.is_empty() {
                return Ok(());
            }
            merchants
                .return_token(merchant_id, order_id)
                .await
                .map(drop)
        }
    };
    // Giving back is idempotent (the charge row goes with the token), so
    // retrying it is safe; the reconciler is the last resort.
    if let Err(e) = give_back().await {
        tracing::warn!(
            error = %e,
            order_id = order_id.get(),
            "could not give back a quota token; retrying"
        );
        let within = compensate_within(gw);
        crate::db::retry_in_background("quota token return", within, give_back);
    }
}

/// Finishes payment `payment_id`, which an earlier request with the same
/// idempotency key stored before its process died or its outcome was lost:
/// answers what the provider answered then, or asks the provider now under
/// the same provider-side idempotency key, so a session the provider opened
/// for the first request is the one it returns. The order's token was
/// charged by that request.
#[tracing::instrument(name = "saga.resume", skip_all, fields(payment_id))]
async fn resume(
    gw: &PaymentsService,
    merchant: &Merchant,
    request: &CreatePayment,
    key: Option<&IdempotencyKey>,
    request_id: &str,
    payment_id: PaymentId,
) -> Result<Outcome, CreateError> {
    let Some(creation) = gw.payments.creation(merchant.id, payment_id).await? else {
        // Written in the statement that inserted the payment, so never
        // without it; were it gone, there is nothing to finish.
        return run(gw, merchant, request, key, request_id).await;
    };
    tracing::info!(
        payment_id = payment_id.get(),
        "resuming the creation of a payment an earlier request stored"
    );
    let answered = match creation.answered {
        Some(Ok(payment_url)) => Some(Outcome::Opened(Opened {
            payment_id,
            status: creation.status,
            payment_url,
        })),
        Some(Err(message)) => Some(Outcome::Refused(Refused::new(
            payment_id, &message, request_id,
        ))),
        None => None,
    };
    let result = match answered {
        Some(outcome) => {
            // The answer was recorded; its key's record was not (the
            // first request's process ended in between).
            if let Some(key) = key {
                finish_key(gw, merchant.id, key, Some(outcome.to_record())).await;
            }
            Ok(outcome)
        }
        None => {
            let provider = provider(gw, merchant, request).await?;
            let probe = circuit_probe(gw, request.alias.as_str()).await?;
            let asked = Asked {
                payment_id,
                currency: &creation.currency,
                provider: &provider,
                probe,
            };
            ask_provider(gw, merchant, request, key, request_id, asked).await
        }
    };
    confirm_or_return_token(gw, merchant, request, &result, true).await;
    result
}

/// `order_exists` when the merchant already has a payment for the order.
async fn order_free(
    gw: &PaymentsService,
    merchant: &Merchant,
    request: &CreatePayment,
) -> Result<(), CreateError> {
    match gw
        .payments
        .payment_for_order(merchant.id, request.order_id)
        .await?
    {
        Some(payment_id) => Err(CreateError::OrderExists { payment_id }),
        None => Ok(()),
    }
}

#[tracing::instrument(name = "saga.store", level = "debug", skip_all)]
async fn with_token(
    gw: &PaymentsService,
    merchant: &Merchant,
    request: &CreatePayment,
    key: Option<&IdempotencyKey>,
    request_id: &str,
    provider: &Provider,
    stored: &mut bool,
) -> Result<Outcome, CreateError> {
    let alias = request.alias.as_str();
    let probe = circuit_probe(gw, alias).await?;
    let currency = request.currency_code(merchant);
    let payment_id = match gw
        .payments
        .insert(&NewPayment {
            merchant_id: merchant.id,
            order_id: request.order_id,
            subscription_id: request.subscription_id,
            alias,
            amount: request.amount.value(),
            price: request.price.value(),
            currency: &currency,
            idempotency_key: key.map(IdempotencyKey::as_str),
            return_url: request.return_url.as_ref().map(RedirectUrl::as_str),
            cancel_url: request.cancel_url.as_ref().map(RedirectUrl::as_str),
            metadata: request.metadata.to_json(),
            expires_in: gw.payment_expiry,
        })
        .await?
    {
        Inserted::Created(id) => id,
        Inserted::OrderExists(id) => return Err(CreateError::OrderExists { payment_id: id }),
    };
    *stored = true;
    let asked = Asked {
        payment_id,
        currency: &currency,
        provider,
        probe,
    };
    ask_provider(gw, merchant, request, key, request_id, asked).await
}

impl PaymentsService {
    /// Tells `alias`'s circuit how a provider call went: an unreachable
    /// provider or a plugin that failed counts against it, an answer (or
    /// any end of the half-open circuit's `probe`) for it. A refusal is
    /// the provider working; a plugin not loaded is no fault of the
    /// provider's.
    pub(crate) async fn tell_circuit<T>(
        &self,
        alias: &str,
        outcome: &Result<Result<T, ProviderError>, PluginError>,
        probe: bool,
    ) {
        let unhealthy = match outcome {
            Ok(Ok(_)) => false,
            Ok(Err(ProviderError::Unavailable(_))) => true,
            Ok(Err(_)) => false,
            Err(PluginError::NotLoaded(_)) => false,
            Err(_) => true,
        };
        if unhealthy {
            self.circuit.failure(alias).await;
        } else if outcome.as_ref().is_ok_and(|r| r.is_ok()) || probe {
            self.circuit.success(alias).await;
        }
    }
}

/// Whether the alias's circuit lets a call through, and if it is the one
/// probe of a half-open circuit.
async fn circuit_probe(gw: &PaymentsService, alias: &str) -> Result<bool, CreateError> {
    match gw.circuit.acquire(alias).await {
        CircuitState::Open { retry_after } => Err(CreateError::CircuitOpen { retry_after }),
        CircuitState::Unknown => Err(CreateError::CircuitUnknown),
        state => Ok(state == CircuitState::Probe),
    }
}

/// A stored payment the provider is asked to open a session for.
struct Asked<'a> {
    payment_id: PaymentId,
    currency: &'a str,
    provider: &'a Provider,
    /// The call is a half-open circuit's probe.
    probe: bool,
}

/// Calls the provider plugin for a stored payment, tells the circuit how it
/// went and records the outcome: the session opened, or the refusal.
#[tracing::instrument(name = "saga.ask_provider", skip_all, fields(payment_id = asked.payment_id.get(), plugin = %asked.provider.plugin))]
async fn ask_provider(
    gw: &PaymentsService,
    merchant: &Merchant,
    request: &CreatePayment,
    key: Option<&IdempotencyKey>,
    request_id: &str,
    asked: Asked<'_>,
) -> Result<Outcome, CreateError> {
    let Asked {
        payment_id,
        currency,
        provider,
        probe,
    } = asked;
    let plugin_name = provider.plugin.as_str();
    let alias = request.alias.as_str();
    let provider_request = provider_request(payment_id, merchant.id, request, currency, key);
    let caller = Caller {
        request_id,
        account: provider.account.as_ref(),
    };
    let outcome = match gw.plugins.require(plugin_name) {
        Ok(plugin) => plugin.create_payment(caller, &provider_request).await,
        Err(e) => Err(e),
    };
    gw.tell_circuit(alias, &outcome, probe).await;

    let (answer, payload, outcome) = match outcome {
        Ok(Ok(session)) => {
            let payload = json!({"plugin": plugin_name, "reference": session.reference});
            let opened = Outcome::Opened(Opened {
                payment_id,
                status: PaymentStatus::Pending,
                payment_url: session.payment_url.clone(),
            });
            (
                Ok((session.reference, session.payment_url)),
                payload,
                opened,
            )
        }
        failed => {
            let message = match &failed {
                Ok(Err(e)) => {
                    // The provider's own words, for the operator only.
                    tracing::warn!(error = ?e, payment_id = payment_id.get(), "provider refused the payment");
                    provider_message(e)
                }
                Err(e) => format!("the provider plugin failed ({})", e.kind()),
                Ok(Ok(_)) => unreachable!("handled above"),
            };
            if let Err(e) = &failed {
                tracing::error!(
                    error = %e,
                    payment_id = payment_id.get(),
                    "provider plugin call failed"
                );
            }
            let refused = Outcome::Refused(Refused::new(payment_id, &message, request_id));
            (Err(message), json!({"plugin": plugin_name}), refused)
        }
    };
    // The answer, its timeline row and the key's record in one commit; the
    // record is encoded only when there is a key to keep it for.
    let record = key.map(|key| (key, outcome.to_record()));
    let kept = record.as_ref().map(|(key, (kind, record))| KeyOutcome {
        merchant_id: merchant.id,
        key,
        kind: *kind,
        record,
    });
    let answer = answer
        .as_ref()
        .map(|(reference, url)| (reference.as_str(), url.as_str()))
        .map_err(String::as_str);
    gw.payments
        .record_provider_outcome(payment_id, answer, payload, kept)
        .await?;
    Ok(outcome)
}

/// The WIT `payment-request` for payment `payment_id` (ids are positive,
/// so they fit the WIT's `u64`). The provider-side idempotency key is the
/// merchant's own key behind its merchant id, so two merchants using the
/// same key never share a provider charge; without one it is derived from
/// the payment, and never starts with a digit as a merchant's does.
pub fn provider_request(
    payment_id: PaymentId,
    merchant_id: MerchantId,
    request: &CreatePayment,
    currency: &str,
    key: Option<&IdempotencyKey>,
) -> PaymentRequest {
    PaymentRequest {
        payment_id: payment_id.get() as u64,
        merchant_id: merchant_id.get() as u64,
        order_id: request.order_id.get() as u64,
        amount: request.amount.to_string(),
        price: request.price.to_string(),
        currency: currency.to_owned(),
        idempotency_key: key.map_or_else(
            || format!("paygate-payment-{payment_id}"),
            |k| format!("{merchant_id}-{}", k.as_str()),
        ),
        return_url: request.return_url.as_ref().map(|u| u.as_str().to_owned()),
        cancel_url: request.cancel_url.as_ref().map(|u| u.as_str().to_owned()),
        metadata: request.metadata.pairs(),
    }
}

/// The message a merchant sees for a provider's refusal: a decline and an
/// invalid request in the provider's words, which are about the payment.
/// An outage's or a misconfiguration's own text stays in the logs: it may
/// name the operator's hosts and setup (security review, finding 13).
pub fn provider_message(e: &ProviderError) -> String {
    match e {
        ProviderError::Declined(m) => format!("declined: {m}"),
        ProviderError::InvalidRequest(m) => format!("invalid request: {m}"),
        ProviderError::Unavailable(_) => "the provider is unavailable; retry later".into(),
        ProviderError::Misconfigured(_) => "the provider integration is misconfigured".into(),
    }
}
