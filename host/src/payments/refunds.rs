//! Refunds (API.md, "Refunds"): money given back on a finished payment,
//! all of it or in parts, through the alias's adapter.
//!
//! A refund is stored before its provider is asked, in the transaction
//! that locks its payment and checks what is left to give back, so
//! concurrent refunds never sum past the price. Its provider outcome, the
//! payment's refunded total, the timeline and the merchant's notification
//! then commit together.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Value, json};

use super::create::{PaymentsService, provider_message};
use super::domain::{Currency, IdempotencyKey, Money, PaymentStatus};
use super::store::{PaymentStore, log};
use super::webhook::notify;
use crate::ids::{MerchantId, PaymentId, RefundId};
use crate::merchants::Merchant;
use crate::plugins::bindings::{self, ProviderError, RefundSession, RefundState};
use crate::providers::CircuitState;

/// Why money goes back, as API.md names the reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundReason {
    RequestedByCustomer,
    Duplicate,
    Fraudulent,
}

impl RefundReason {
    pub const ALL: [RefundReason; 3] = [
        RefundReason::RequestedByCustomer,
        RefundReason::Duplicate,
        RefundReason::Fraudulent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefundReason::RequestedByCustomer => "requested_by_customer",
            RefundReason::Duplicate => "duplicate",
            RefundReason::Fraudulent => "fraudulent",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    fn wit(self) -> bindings::RefundReason {
        match self {
            RefundReason::RequestedByCustomer => bindings::RefundReason::RequestedByCustomer,
            RefundReason::Duplicate => bindings::RefundReason::Duplicate,
            RefundReason::Fraudulent => bindings::RefundReason::Fraudulent,
        }
    }
}

/// A refund's status as the OpenAPI document lists it; the code keeps the
/// text ([`REFUND_PENDING`] ...), as stored.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = "REFUND_SUCCEEDED")]
pub enum RefundStatusName {
    #[serde(rename = "REFUND_PENDING")]
    Pending,
    #[serde(rename = "REFUND_SUCCEEDED")]
    Succeeded,
    #[serde(rename = "REFUND_FAILED")]
    Failed,
}

pub const REFUND_PENDING: &str = "REFUND_PENDING";
pub const REFUND_SUCCEEDED: &str = "REFUND_SUCCEEDED";
pub const REFUND_FAILED: &str = "REFUND_FAILED";

/// A refund as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Refund {
    #[schema(value_type = i64)]
    pub refund_id: RefundId,
    #[schema(value_type = i64)]
    pub payment_id: PaymentId,
    /// The amount given back, a decimal string.
    #[schema(value_type = String, example = "2.50")]
    pub price: Money,
    pub currency: String,
    /// `requested_by_customer`, `duplicate` or `fraudulent`; null when none was given.
    #[schema(value_type = Option<crate::http::openapi::RefundReasonName>)]
    pub reason: Option<String>,
    #[schema(value_type = RefundStatusName)]
    pub status: String,
    #[serde(serialize_with = "super::store::rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "super::store::rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

/// A validated refund request body: both fields optional.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AskRefund {
    /// The amount to give back; what is left of the payment without it.
    pub price: Option<Money>,
    pub reason: Option<RefundReason>,
}

/// How a refund request ended.
#[derive(Debug)]
pub struct RefundCreated {
    pub refund: Refund,
    /// The provider's refusal, in words fit for the merchant: answered 502.
    pub refused: Option<String>,
    /// The answer was given to an earlier request with the same key.
    pub replayed: bool,
}

/// Why a refund was not made.
#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error("not found")]
    NotFound,
    #[error("the payment is {0}, and only a finished payment can be refunded")]
    NotRefundable(&'static str),
    #[error("the adapter of alias {0} has no refunds (WIT 0.1.0)")]
    NotSupported(String),
    /// The `price` field is wrong for this payment.
    #[error("{0}")]
    Price(String),
    #[error("this idempotency key was used with a different request")]
    IdempotencyConflict,
    #[error("a request with this idempotency key is still being processed")]
    RequestInProgress,
    #[error("the provider is unavailable (circuit open)")]
    CircuitOpen { retry_after: Duration },
    #[error("the provider's circuit state is unknown")]
    CircuitUnknown,
    #[error("the provider plugin {0} is not loaded")]
    PluginMissing(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A stored refund with what its provider call needs.
struct Stored {
    refund: Refund,
    merchant_id: MerchantId,
    reason: Option<RefundReason>,
    payment_reference: String,
    metadata: Value,
    /// The provider's id of the refund, once it answered with one.
    reference: Option<String>,
    /// The provider answered (or refused) already.
    answered: bool,
    request_hash: Option<Vec<u8>>,
    age: Duration,
}

/// How a stored refund is looked up.
#[derive(Clone, Copy)]
enum StoredBy<'a> {
    /// The merchant's refund made under this idempotency key.
    Key(MerchantId, &'a IdempotencyKey),
    Id(RefundId),
}

/// Gives back `ask` on the merchant's payment `payment_id`. `key` is the
/// request's `Idempotency-Key`, `fingerprint` the hash of its request.
#[tracing::instrument(name = "refund.create", skip_all, fields(payment_id = payment_id.get()))]
pub async fn create_refund(
    gw: &PaymentsService,
    merchant: &Merchant,
    payment_id: PaymentId,
    ask: &AskRefund,
    key: Option<&IdempotencyKey>,
    fingerprint: &[u8],
    request_id: &str,
) -> Result<RefundCreated, RefundError> {
    let store = &gw.payments;
    if let Some(key) = key
        && let Some(earlier) = store.stored_refund(StoredBy::Key(merchant.id, key)).await?
    {
        if earlier.request_hash.as_deref() != Some(fingerprint) {
            return Err(RefundError::IdempotencyConflict);
        }
        if earlier.answered {
            return Ok(RefundCreated {
                refused: earlier_refusal(store, &earlier).await?,
                refund: earlier.refund,
                replayed: true,
            });
        }
        if earlier.age < gw.request_lease {
            return Err(RefundError::RequestInProgress);
        }
        // The request that stored it died before the provider answered:
        // ask again, under the same provider-side key.
        let alias = store.alias_of(earlier.refund.payment_id).await?;
        let call = Call::prepare(gw, &alias, request_id, false).await?;
        return ask_provider(gw, earlier, call).await;
    }

    let alias = store
        .alias_of_merchants(merchant.id, payment_id)
        .await?
        .ok_or(RefundError::NotFound)?;
    let call = Call::prepare(gw, &alias, request_id, false).await?;
    let stored = match store
        .reserve_refund(merchant.id, payment_id, ask, key, fingerprint)
        .await
    {
        Ok(stored) => stored,
        Err(e) => {
            if call.probe {
                // A half-open circuit's probe that never called: let the
                // next request be the probe.
                gw.circuit.success(&alias).await;
            }
            return Err(e);
        }
    };
    ask_provider(gw, stored, call).await
}

/// The provider plugin of `alias`, if it can give money back.
async fn refund_plugin(gw: &PaymentsService, alias: &str) -> Result<String, RefundError> {
    let binding = gw
        .providers
        .get(alias)
        .await?
        .ok_or_else(|| RefundError::PluginMissing(alias.to_owned()))?;
    match gw.plugins.get(&binding.provider_plugin) {
        Some(plugin) if plugin.refunds() => Ok(binding.provider_plugin),
        Some(_) => Err(RefundError::NotSupported(alias.to_owned())),
        None => Err(RefundError::PluginMissing(binding.provider_plugin)),
    }
}

async fn probe(gw: &PaymentsService, alias: &str) -> Result<bool, RefundError> {
    match gw.circuit.acquire(alias).await {
        CircuitState::Open { retry_after } => Err(RefundError::CircuitOpen { retry_after }),
        CircuitState::Unknown => Err(RefundError::CircuitUnknown),
        state => Ok(state == CircuitState::Probe),
    }
}

/// The refusal an answered refund was given, for its replay.
async fn earlier_refusal(
    store: &PaymentStore,
    earlier: &Stored,
) -> Result<Option<String>, sqlx::Error> {
    if earlier.refund.status != REFUND_FAILED {
        return Ok(None);
    }
    store.refund_failure(earlier.refund.refund_id).await
}

/// How a stored refund's provider is asked.
struct Call<'a> {
    alias: &'a str,
    plugin: String,
    /// The call is a half-open circuit's probe.
    probe: bool,
    request_id: &'a str,
    /// Notify a refusal: no merchant request is waiting to be told.
    notify_refusal: bool,
}

impl<'a> Call<'a> {
    /// A call through `alias`'s adapter, if it can give money back and its
    /// circuit lets the call through.
    async fn prepare(
        gw: &PaymentsService,
        alias: &'a str,
        request_id: &'a str,
        notify_refusal: bool,
    ) -> Result<Self, RefundError> {
        Ok(Self {
            alias,
            plugin: refund_plugin(gw, alias).await?,
            probe: probe(gw, alias).await?,
            request_id,
            notify_refusal,
        })
    }
}

/// Asks the adapter for the stored refund, tells the circuit how it went
/// and records the answer.
#[tracing::instrument(name = "refund.ask_provider", skip_all, fields(refund_id = stored.refund.refund_id.get(), plugin = %call.plugin))]
async fn ask_provider(
    gw: &PaymentsService,
    stored: Stored,
    call: Call<'_>,
) -> Result<RefundCreated, RefundError> {
    let Call {
        alias,
        plugin,
        probe,
        request_id,
        notify_refusal,
    } = call;
    let refund = &stored.refund;
    let metadata = match &stored.metadata {
        Value::Object(pairs) => pairs
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect(),
        _ => Vec::new(),
    };
    let request = bindings::RefundRequest {
        refund_id: refund.refund_id.get() as u64,
        payment_id: refund.payment_id.get() as u64,
        merchant_id: stored.merchant_id.get() as u64,
        payment_reference: stored.payment_reference.clone(),
        price: refund.price.to_string(),
        currency: refund.currency.clone(),
        reason: stored.reason.map(RefundReason::wit),
        // Stable for the refund, so asking again never refunds twice.
        idempotency_key: format!("paygate-refund-{}", refund.refund_id),
        metadata,
    };
    let outcome = match gw.plugins.require(&plugin) {
        Ok(plugin) => plugin.refund(request_id, &request).await,
        Err(e) => Err(e),
    };
    gw.tell_circuit(alias, &outcome, probe).await;
    let store = &gw.payments;
    let refund_id = refund.refund_id;
    let (refund, refused) = match outcome {
        Ok(Ok(RefundSession { reference, state })) => {
            let status = match state {
                RefundState::Pending => REFUND_PENDING,
                RefundState::Succeeded => REFUND_SUCCEEDED,
                RefundState::Failed => REFUND_FAILED,
            };
            let how = format!("provider {reference}");
            let settle = Settle::answer(status, Some(&reference), &how);
            let refund = store.settle_refund(refund_id, &settle).await?;
            (refund, None)
        }
        Ok(Err(ProviderError::Unavailable(m))) => {
            // The provider may have taken it: the refund stays pending,
            // and asking again under the same key is safe.
            tracing::warn!(refund_id = refund_id.get(), error = %m, "provider unavailable for a refund; it stays pending");
            (stored.refund, None)
        }
        Ok(Err(e)) => {
            tracing::warn!(error = ?e, refund_id = refund_id.get(), "provider refused the refund");
            let message = provider_message(&e);
            let settle = Settle {
                failure: Some(&message),
                notify: notify_refusal,
                ..Settle::answer(REFUND_FAILED, None, &message)
            };
            let refund = store.settle_refund(refund_id, &settle).await?;
            (refund, Some(message))
        }
        Err(e) => {
            tracing::error!(error = %e, refund_id = refund_id.get(), "provider plugin call failed for a refund; it stays pending");
            (stored.refund, None)
        }
    };
    Ok(RefundCreated {
        refund,
        refused,
        replayed: false,
    })
}

/// What asking again about a pending refund came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rechecked {
    /// It is succeeded or failed now.
    Settled,
    /// The provider says it is still pending.
    Pending,
    /// Not asked (circuit open, adapter missing) or not answered.
    Unanswered,
}

/// Asks again about refund `refund_id`, still pending (reconciliation): one
/// whose provider never answered (its request died) is asked for again
/// under its own provider-side key, which cannot refund twice; one the
/// provider answered pending is looked up with `refund-status`. A terminal
/// answer is recorded and notified.
pub(super) async fn recheck_refund(
    gw: &PaymentsService,
    refund_id: RefundId,
    request_id: &str,
) -> Result<Rechecked, RefundError> {
    let Some(stored) = gw.payments.stored_refund(StoredBy::Id(refund_id)).await? else {
        return Ok(Rechecked::Unanswered);
    };
    if stored.refund.status != REFUND_PENDING {
        return Ok(Rechecked::Settled);
    }
    let alias = gw.payments.alias_of(stored.refund.payment_id).await?;
    let call = Call::prepare(gw, &alias, request_id, true).await?;
    let Some(reference) = stored.reference.clone() else {
        let asked = ask_provider(gw, stored, call).await?;
        return Ok(match asked.refund.status.as_str() {
            REFUND_PENDING => Rechecked::Pending,
            _ => Rechecked::Settled,
        });
    };
    let outcome = match gw.plugins.require(&call.plugin) {
        Ok(plugin) => plugin.refund_status(request_id, &reference).await,
        Err(e) => Err(e),
    };
    gw.tell_circuit(&alias, &outcome, call.probe).await;
    let status = match outcome {
        Ok(Ok(RefundState::Succeeded)) => REFUND_SUCCEEDED,
        Ok(Ok(RefundState::Failed)) => REFUND_FAILED,
        Ok(Ok(RefundState::Pending)) => return Ok(Rechecked::Pending),
        Ok(Err(e)) => {
            tracing::warn!(refund_id = refund_id.get(), error = ?e, "provider did not answer a refund-status question");
            return Ok(Rechecked::Unanswered);
        }
        Err(e) => {
            tracing::warn!(refund_id = refund_id.get(), error = %e, "refund-status call failed");
            return Ok(Rechecked::Unanswered);
        }
    };
    let settle = Settle::answer(status, None, "refund-status");
    gw.payments.settle_refund(refund_id, &settle).await?;
    Ok(Rechecked::Settled)
}

impl PaymentStore {
    /// The alias of a payment.
    async fn alias_of(&self, payment_id: PaymentId) -> Result<String, sqlx::Error> {
        sqlx::query_scalar!("SELECT alias FROM payments WHERE id = $1", payment_id.get())
            .fetch_one(&self.pool)
            .await
    }

    /// The alias of the merchant's payment, if it is the merchant's.
    async fn alias_of_merchants(
        &self,
        merchant_id: MerchantId,
        payment_id: PaymentId,
    ) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar!(
            "SELECT alias FROM payments WHERE id = $1 AND merchant_id = $2",
            payment_id.get(),
            merchant_id.get(),
        )
        .fetch_optional(&self.pool)
        .await
    }

    /// A stored refund, by its merchant's idempotency key or by its id.
    async fn stored_refund(&self, by: StoredBy<'_>) -> Result<Option<Stored>, sqlx::Error> {
        let (merchant_id, key, id) = match by {
            StoredBy::Key(merchant_id, key) => (Some(merchant_id.get()), Some(key.as_str()), None),
            StoredBy::Id(id) => (None, None, Some(id.get())),
        };
        // One side of the OR has NULL keys, and `= NULL` matches nothing.
        let row = sqlx::query!(
            r#"SELECT r.id AS "refund_id: RefundId", r.payment_id AS "payment_id: PaymentId",
                      r.merchant_id AS "merchant_id: MerchantId",
                      r.price AS "price: Money", r.currency, r.reason, r.status, r.created_at,
                      r.updated_at, r.request_hash, r.provider_reference AS refund_reference,
                      p.provider_reference, p.metadata,
                      (r.status <> 'REFUND_PENDING' OR r.provider_reference IS NOT NULL) AS "answered!",
                      extract(epoch FROM now() - r.updated_at)::float8 AS "age!"
               FROM refunds r JOIN payments p ON p.id = r.payment_id
               WHERE (r.merchant_id = $1 AND r.idempotency_key = $2) OR r.id = $3"#,
            merchant_id,
            key,
            id,
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| Stored {
            reason: row.reason.as_deref().and_then(RefundReason::parse),
            refund: Refund {
                refund_id: row.refund_id,
                payment_id: row.payment_id,
                price: row.price,
                currency: row.currency,
                reason: row.reason,
                status: row.status,
                created_at: row.created_at,
                updated_at: row.updated_at,
            },
            merchant_id: row.merchant_id,
            payment_reference: row.provider_reference.unwrap_or_default(),
            metadata: row.metadata,
            reference: row.refund_reference,
            answered: row.answered,
            request_hash: row.request_hash,
            age: Duration::from_secs_f64(row.age.max(0.0)),
        }))
    }

    /// Why the provider refused refund `refund_id`.
    async fn refund_failure(&self, refund_id: RefundId) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar!(
            "SELECT failure_message FROM refunds WHERE id = $1",
            refund_id.get()
        )
        .fetch_one(&self.pool)
        .await
    }

    /// Stores a pending refund of the merchant's payment, if it is finished
    /// and has that much left: the payment row is locked first, and what
    /// is left is added up after the lock is held, so two refunds of one
    /// payment are checked one after the other.
    async fn reserve_refund(
        &self,
        merchant_id: MerchantId,
        payment_id: PaymentId,
        ask: &AskRefund,
        key: Option<&IdempotencyKey>,
        fingerprint: &[u8],
    ) -> Result<Stored, RefundError> {
        let mut tx = self.pool.begin().await?;
        let payment = sqlx::query!(
            r#"SELECT status AS "status: PaymentStatus", price, refunded, currency,
                      provider_reference, metadata
               FROM payments WHERE id = $1 AND merchant_id = $2 FOR UPDATE"#,
            payment_id.get(),
            merchant_id.get(),
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(RefundError::NotFound)?;
        if payment.status != PaymentStatus::Finished {
            return Err(RefundError::NotRefundable(payment.status.as_str()));
        }
        // A new statement, so a new snapshot: it sees every refund that
        // committed while this transaction waited for the lock.
        let pending: Decimal = sqlx::query_scalar!(
            r#"SELECT coalesce(sum(price), 0) AS "sum!" FROM refunds
               WHERE payment_id = $1 AND status = 'REFUND_PENDING'"#,
            payment_id.get(),
        )
        .fetch_one(&mut *tx)
        .await?;
        let left = payment.price - payment.refunded - pending;
        let price = match ask.price {
            Some(price) => {
                if let Ok(currency) = Currency::parse(&payment.currency)
                    && !price.fits(&currency)
                {
                    return Err(RefundError::Price(format!(
                        "must have at most {} decimal places in {currency}",
                        currency.exponent()
                    )));
                }
                if price.value() > left {
                    return Err(RefundError::Price(format!(
                        "must be at most {left} {}, what is left to refund",
                        payment.currency
                    )));
                }
                price
            }
            None => Money::parse(&left.to_string()).map_err(|_| {
                RefundError::Price(format!(
                    "nothing is left to refund of {} {}",
                    payment.price, payment.currency
                ))
            })?,
        };
        let inserted = sqlx::query!(
            r#"INSERT INTO refunds (payment_id, merchant_id, price, currency, reason, status,
                                    idempotency_key, request_hash)
               VALUES ($1, $2, $3, $4, $5, 'REFUND_PENDING', $6, $7)
               RETURNING id AS "refund_id: RefundId", created_at, updated_at"#,
            payment_id.get(),
            merchant_id.get(),
            price.value(),
            payment.currency,
            ask.reason.map(RefundReason::as_str),
            key.map(IdempotencyKey::as_str),
            fingerprint,
        )
        .fetch_one(&mut *tx)
        .await;
        let inserted = match inserted {
            Ok(row) => row,
            // The same key, stored by a request running beside this one.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(RefundError::RequestInProgress);
            }
            Err(e) => return Err(e.into()),
        };
        let message = format!(
            "refund {} of {price} {} requested",
            inserted.refund_id, payment.currency
        );
        let payload = json!({"refund_id": inserted.refund_id});
        log(
            &mut tx,
            payment_id,
            "EVENT_REFUND_REQUESTED",
            payment.status.as_str(),
            &message,
            Some(payload),
        )
        .await?;
        tx.commit().await?;
        Ok(Stored {
            refund: Refund {
                refund_id: inserted.refund_id,
                payment_id,
                price,
                currency: payment.currency,
                reason: ask.reason.map(|r| r.as_str().to_owned()),
                status: REFUND_PENDING.to_owned(),
                created_at: inserted.created_at,
                updated_at: inserted.updated_at,
            },
            merchant_id,
            reason: ask.reason,
            reference: None,
            payment_reference: payment.provider_reference.unwrap_or_default(),
            metadata: payment.metadata,
            answered: false,
            request_hash: Some(fingerprint.to_vec()),
            age: Duration::ZERO,
        })
    }

    /// Records a pending refund's answer in a transaction of its own (see
    /// [`settle_refund_in`]).
    pub(super) async fn settle_refund(
        &self,
        refund_id: RefundId,
        settle: &Settle<'_>,
    ) -> Result<Refund, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let refund = settle_refund_in(&mut tx, refund_id, settle).await?;
        tx.commit().await?;
        Ok(refund)
    }

    /// The merchant's refunds of payment `payment_id`, oldest first.
    pub async fn refunds_of(
        &self,
        merchant_id: MerchantId,
        payment_id: PaymentId,
    ) -> Result<Vec<Refund>, sqlx::Error> {
        sqlx::query_as!(
            Refund,
            r#"SELECT r.id AS "refund_id: RefundId", r.payment_id AS "payment_id: PaymentId",
                      r.price AS "price: Money", r.currency, r.reason, r.status, r.created_at, r.updated_at
               FROM refunds r WHERE r.payment_id = $1 AND r.merchant_id = $2 ORDER BY r.id"#,
            payment_id.get(),
            merchant_id.get(),
        )
        .fetch_all(&self.pool)
        .await
    }

    /// One refund of the merchant; another merchant's is `None`.
    pub async fn refund(
        &self,
        merchant_id: MerchantId,
        refund_id: RefundId,
    ) -> Result<Option<Refund>, sqlx::Error> {
        refund_row(&self.pool, refund_id, Some(merchant_id)).await
    }
}

/// A refund's answer from its provider.
#[derive(Clone, Copy, Debug)]
pub(super) struct Settle<'a> {
    /// `REFUND_PENDING`, `REFUND_SUCCEEDED` or `REFUND_FAILED`.
    pub status: &'a str,
    /// The provider's id of the refund; kept when none is given.
    pub reference: Option<&'a str>,
    /// Why the provider refused it, kept for the replay of its request.
    pub failure: Option<&'a str>,
    /// The timeline's message.
    pub message: &'a str,
    /// The provider event (id, type) that brought the answer, if one did.
    pub provider_event: Option<(&'a str, &'a str)>,
    /// Notify the merchant of a terminal status. Not for a refusal the
    /// merchant's own request is answered with.
    pub notify: bool,
}

impl<'a> Settle<'a> {
    /// A provider's answer with no refusal in it, notified when terminal.
    pub fn answer(status: &'a str, reference: Option<&'a str>, message: &'a str) -> Self {
        Self {
            status,
            reference,
            failure: None,
            message,
            provider_event: None,
            notify: true,
        }
    }
}

/// Records `settle` for refund `refund_id` inside the caller's transaction.
/// A refund that reaches a terminal status adds to its payment's refunded
/// total (succeeded), gets its timeline row and, unless the merchant was
/// told directly, its notification; a terminal refund never changes.
pub(super) async fn settle_refund_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    refund_id: RefundId,
    settle: &Settle<'_>,
) -> Result<Refund, sqlx::Error> {
    let Settle {
        status,
        reference,
        failure,
        message,
        provider_event,
        notify: notified,
    } = *settle;
    let updated = sqlx::query!(
        r#"UPDATE refunds SET status = $2, provider_reference = coalesce($3, provider_reference),
                  failure_message = $4, updated_at = now()
           WHERE id = $1 AND status = 'REFUND_PENDING'
           RETURNING payment_id AS "payment_id: PaymentId", price AS "price: Money""#,
        refund_id.get(),
        status,
        reference,
        failure,
    )
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(updated) = updated
        && status != REFUND_PENDING
    {
        let payment = sqlx::query!(
            r#"UPDATE payments SET refunded = refunded + CASE WHEN $2 THEN $3::numeric ELSE 0 END,
                      updated_at = now()
               WHERE id = $1
               RETURNING merchant_id AS "merchant_id: MerchantId", order_id, status, metadata"#,
            updated.payment_id.get(),
            status == REFUND_SUCCEEDED,
            updated.price.value(),
        )
        .fetch_one(&mut **tx)
        .await?;
        let (event, kind) = if status == REFUND_SUCCEEDED {
            ("EVENT_REFUND_SUCCEEDED", "refund.succeeded")
        } else {
            ("EVENT_REFUND_FAILED", "refund.failed")
        };
        let payload = match provider_event {
            None => json!({"refund_id": refund_id}),
            Some((id, kind)) => json!({
                "refund_id": refund_id,
                "provider_event_id": id,
                "provider_type": kind,
            }),
        };
        log(
            tx,
            updated.payment_id,
            event,
            &payment.status,
            message,
            Some(payload),
        )
        .await?;
        if notified {
            let refund = refund_row(&mut **tx, refund_id, None)
                .await?
                .ok_or(sqlx::Error::RowNotFound)?;
            let notification_id = uuid::Uuid::new_v4();
            let body = json!({
                "event_id": notification_id.to_string(),
                "event_type": kind,
                "refund_id": refund_id,
                "payment_id": updated.payment_id,
                "order_id": payment.order_id,
                "merchant_id": payment.merchant_id,
                "status": status,
                "price": refund.price.to_string(),
                "currency": refund.currency,
                "metadata": payment.metadata,
                "created_at": refund.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            });
            let (payment_id, refund) = (updated.payment_id, Some(refund_id));
            notify(tx, payment_id, refund, notification_id, kind, body).await?;
        }
    }
    refund_row(&mut **tx, refund_id, None)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// Refund `refund_id`, only if it is `merchant_id`'s when one is given.
async fn refund_row<'e>(
    db: impl sqlx::PgExecutor<'e>,
    refund_id: RefundId,
    merchant_id: Option<MerchantId>,
) -> Result<Option<Refund>, sqlx::Error> {
    sqlx::query_as!(
        Refund,
        r#"SELECT r.id AS "refund_id: RefundId", r.payment_id AS "payment_id: PaymentId",
                  r.price AS "price: Money", r.currency, r.reason, r.status, r.created_at, r.updated_at
           FROM refunds r WHERE r.id = $1 AND ($2::bigint IS NULL OR r.merchant_id = $2)"#,
        refund_id.get(),
        merchant_id.map(MerchantId::get),
    )
    .fetch_optional(db)
    .await
}
