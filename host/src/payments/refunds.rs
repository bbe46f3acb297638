//! Refunds (API.md, "Refunds"): money given back on a finished payment,
//! all of it or in parts, through the alias's adapter.
//!
//! A refund is stored before its provider is asked, by the statement that
//! locks its payment and takes its part of what is left to give back, so
//! concurrent refunds never sum past the price. Its provider outcome, the
//! payment's totals, the timeline and the merchant's notification then
//! commit together, in one statement too.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::create::{PaymentsService, provider_message};
use super::domain::{Currency, IdempotencyKey, Money, PaymentStatus};
use super::store::PaymentStore;
use crate::ids::{MerchantId, PaymentId, RefundId};
use crate::merchants::Merchant;
use crate::plugins::bindings::{self, ProviderError, RefundSession, RefundState};
use crate::plugins::{Account, Caller};
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
        let call = Call::prepare(gw, earlier.merchant_id, &alias, request_id, false).await?;
        return ask_provider(gw, earlier, call).await;
    }

    let (alias, currency) = store
        .alias_of_merchants(merchant.id, payment_id)
        .await?
        .ok_or(RefundError::NotFound)?;
    if let Some(price) = ask.price
        && let Ok(currency) = Currency::parse(&currency)
        && !price.fits(&currency)
    {
        return Err(RefundError::Price(format!(
            "must have at most {} decimal places in {currency}",
            currency.exponent()
        )));
    }
    let call = Call::prepare(gw, merchant.id, &alias, request_id, false).await?;
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
    /// The merchant's own account on the alias, if it has one.
    account: Option<Arc<Account>>,
    /// The call is a half-open circuit's probe.
    probe: bool,
    request_id: &'a str,
    /// Notify a refusal: no merchant request is waiting to be told.
    notify_refusal: bool,
}

impl<'a> Call<'a> {
    /// A call for `merchant_id` through `alias`'s adapter, if it can give
    /// money back and its circuit lets the call through. The account is
    /// read before the circuit is: a call that cannot be made never takes a
    /// half-open circuit's one probe.
    async fn prepare(
        gw: &PaymentsService,
        merchant_id: MerchantId,
        alias: &'a str,
        request_id: &'a str,
        notify_refusal: bool,
    ) -> Result<Self, RefundError> {
        let plugin = refund_plugin(gw, alias).await?;
        let account = gw.merchants.accounts.account(merchant_id, alias).await?;
        Ok(Self {
            alias,
            plugin,
            account,
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
        account,
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
    let caller = Caller {
        request_id,
        account: account.as_ref(),
    };
    let outcome = match gw.plugins.require(&plugin) {
        Ok(plugin) => plugin.refund(caller, &request).await,
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
    let call = Call::prepare(gw, stored.merchant_id, &alias, request_id, true).await?;
    let Some(reference) = stored.reference.clone() else {
        let asked = ask_provider(gw, stored, call).await?;
        return Ok(match asked.refund.status.as_str() {
            REFUND_PENDING => Rechecked::Pending,
            _ => Rechecked::Settled,
        });
    };
    let caller = Caller {
        request_id,
        account: call.account.as_ref(),
    };
    let outcome = match gw.plugins.require(&call.plugin) {
        Ok(plugin) => plugin.refund_status(caller, &reference).await,
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

    /// The alias and currency of the merchant's payment, if it is the
    /// merchant's.
    async fn alias_of_merchants(
        &self,
        merchant_id: MerchantId,
        payment_id: PaymentId,
    ) -> Result<Option<(String, String)>, sqlx::Error> {
        let mut conn = self.lean.acquire().await?;
        let row = sqlx::query!(
            "SELECT alias, currency FROM payments WHERE id = $1 AND merchant_id = $2",
            payment_id.get(),
            merchant_id.get(),
        )
        .fetch_optional(conn.get())
        .await?;
        conn.release();
        Ok(row.map(|row| (row.alias, row.currency)))
    }

    /// A stored refund, by its merchant's idempotency key or by its id.
    async fn stored_refund(&self, by: StoredBy<'_>) -> Result<Option<Stored>, sqlx::Error> {
        let (merchant_id, key, id) = match by {
            StoredBy::Key(merchant_id, key) => (Some(merchant_id.get()), Some(key.as_str()), None),
            StoredBy::Id(id) => (None, None, Some(id.get())),
        };
        let mut conn = self.lean.acquire().await?;
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
        .fetch_optional(conn.get())
        .await?;
        conn.release();
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
    /// and has that much left, in one statement: it locks the payment row
    /// (a reservation that waited for the lock reads the row the one
    /// before it committed), checks what refunds hold of the price, and
    /// inserts the refund (whose trigger adds it to that) and its timeline
    /// row. A payment it did not reserve on is read back to say why.
    async fn reserve_refund(
        &self,
        merchant_id: MerchantId,
        payment_id: PaymentId,
        ask: &AskRefund,
        key: Option<&IdempotencyKey>,
        fingerprint: &[u8],
    ) -> Result<Stored, RefundError> {
        let mut conn = self.lean.acquire().await?;
        let row = sqlx::query!(
            r#"WITH payment AS MATERIALIZED (
                   SELECT id, status, price, price - reserved AS "left", currency,
                          coalesce($3::numeric, price - reserved) AS amount,
                          provider_reference, metadata
                   FROM payments WHERE id = $1 AND merchant_id = $2 FOR UPDATE
               ), held AS (
                   SELECT amount FROM payment
                   WHERE status = 'PAYMENT_FINISHED' AND amount > 0 AND amount <= "left"
               ), refund AS (
                   INSERT INTO refunds (payment_id, merchant_id, price, currency, reason, status,
                                        idempotency_key, request_hash)
                   SELECT payment.id, $2, held.amount, payment.currency, $4::text,
                          'REFUND_PENDING', $5::text, $6::bytea
                   FROM held, payment
                   RETURNING id, price, created_at, updated_at
               ), logged AS (
                   INSERT INTO payment_logs (payment_id, event_type, status, message, payload)
                   SELECT payment.id, 'EVENT_REFUND_REQUESTED', payment.status,
                          'refund ' || refund.id || ' of ' || refund.price || ' '
                              || payment.currency || ' requested',
                          jsonb_build_object('refund_id', refund.id)
                   FROM refund, payment
               )
               SELECT payment.status AS "status!: PaymentStatus", payment.price AS "price!",
                      payment."left" AS "left!", payment.currency AS "currency!",
                      payment.provider_reference, payment.metadata AS "metadata!",
                      refund.id AS "refund_id?: RefundId", refund.price AS "refund_price?: Money",
                      refund.created_at AS "created_at?", refund.updated_at AS "updated_at?"
               FROM payment LEFT JOIN refund ON true"#,
            payment_id.get(),
            merchant_id.get(),
            ask.price.as_ref().map(Money::value),
            ask.reason.map(RefundReason::as_str),
            key.map(IdempotencyKey::as_str),
            fingerprint,
        )
        .fetch_optional(conn.get())
        .await;
        if row.is_ok() {
            conn.release();
        }
        let row = match row {
            Ok(row) => row.ok_or(RefundError::NotFound)?,
            // The same key, stored by a request running beside this one.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(RefundError::RequestInProgress);
            }
            Err(e) => return Err(e.into()),
        };
        let (Some(refund_id), Some(price), Some(created_at), Some(updated_at)) = (
            row.refund_id,
            row.refund_price,
            row.created_at,
            row.updated_at,
        ) else {
            return Err(if row.status != PaymentStatus::Finished {
                RefundError::NotRefundable(row.status.as_str())
            } else if ask.price.is_some() {
                RefundError::Price(format!(
                    "must be at most {} {}, what is left to refund",
                    row.left, row.currency
                ))
            } else {
                RefundError::Price(format!(
                    "nothing is left to refund of {} {}",
                    row.price, row.currency
                ))
            });
        };
        Ok(Stored {
            refund: Refund {
                refund_id,
                payment_id,
                price,
                currency: row.currency,
                reason: ask.reason.map(|r| r.as_str().to_owned()),
                status: REFUND_PENDING.to_owned(),
                created_at,
                updated_at,
            },
            merchant_id,
            reason: ask.reason,
            reference: None,
            payment_reference: row.provider_reference.unwrap_or_default(),
            metadata: row.metadata,
            answered: false,
            request_hash: Some(fingerprint.to_vec()),
            age: Duration::ZERO,
        })
    }

    /// Records a pending refund's answer (see [`settle_refund_in`]): one
    /// statement, atomic on its own.
    pub(super) async fn settle_refund(
        &self,
        refund_id: RefundId,
        settle: &Settle<'_>,
    ) -> Result<Refund, sqlx::Error> {
        let mut conn = self.lean.acquire().await?;
        let refund = settle_refund_in(conn.get(), refund_id, settle).await?;
        conn.release();
        if settle.notify && refund.status != REFUND_PENDING {
            self.outbox_wake.wake().await;
        }
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

/// Records `settle` for refund `refund_id`, in one statement (inside the
/// caller's transaction when `db` is one). A refund that reaches a
/// terminal status adds to its payment's refunded total (succeeded) or
/// gives its part of the price back to what is left to refund (failed:
/// the refunds table's trigger does that),
/// gets its timeline row and, unless the merchant was told directly, its
/// notification, which the caller announces after the commit
/// ([`crate::outbox::OutboxWake`]); a terminal refund never changes.
pub(super) async fn settle_refund_in<'e>(
    db: impl sqlx::PgExecutor<'e>,
    refund_id: RefundId,
    settle: &Settle<'_>,
) -> Result<Refund, sqlx::Error> {
    let Settle {
        status,
        reference,
        failure,
        message,
        provider_event,
        notify,
    } = *settle;
    let (event, kind) = if status == REFUND_SUCCEEDED {
        ("EVENT_REFUND_SUCCEEDED", "refund.succeeded")
    } else {
        ("EVENT_REFUND_FAILED", "refund.failed")
    };
    let (provider_event_id, provider_type) = provider_event.unzip();
    // The notification's body is built where its rows are: the same
    // fields, and the same text for the price and the time (RFC 3339 in
    // whole seconds, UTC), as a payment's built in Rust
    // (`webhook::notify_payment`). No `:` outside a cast in the text: the
    // API bench's pgbench script runs this statement, and reads `:name` as
    // a variable.
    sqlx::query_as!(
        Refund,
        r#"WITH refund AS (
               UPDATE refunds SET status = $2, provider_reference = coalesce($3, provider_reference),
                      failure_message = $4, updated_at = now()
               WHERE id = $1 AND status = 'REFUND_PENDING'
               RETURNING id, payment_id, price, currency, reason, status, created_at, updated_at
           ), payment AS (
               UPDATE payments p
               SET refunded = p.refunded
                       + CASE WHEN refund.status = 'REFUND_SUCCEEDED' THEN refund.price ELSE 0 END,
                   updated_at = now()
               FROM refund
               WHERE p.id = refund.payment_id AND refund.status <> 'REFUND_PENDING'
               RETURNING p.id, p.merchant_id, p.order_id, p.status, p.metadata
           ), logged AS (
               INSERT INTO payment_logs (payment_id, event_type, status, message, payload)
               SELECT payment.id, $5::text, payment.status, $6::text,
                      jsonb_strip_nulls(jsonb_build_object('refund_id', $1::bigint,
                          'provider_event_id', $7::text, 'provider_type', $8::text))
               FROM payment
           ), queued AS (
               INSERT INTO outbox (payment_id, refund_id, event_id, event_type, payload)
               SELECT payment.id, refund.id, $9::uuid, $10::text, jsonb_build_object(
                          'event_id', $9::uuid::text, 'event_type', $10::text,
                          'refund_id', refund.id, 'payment_id', payment.id,
                          'order_id', payment.order_id, 'merchant_id', payment.merchant_id,
                          'status', refund.status, 'price', refund.price::text,
                          'currency', refund.currency, 'metadata', payment.metadata,
                          'created_at', (to_json(date_trunc('second',
                              refund.created_at AT TIME ZONE 'UTC')) #>> '{}') || 'Z')
               FROM payment, refund
               WHERE $11::bool
               RETURNING id
           )
           SELECT r.id AS "refund_id!: RefundId", r.payment_id AS "payment_id!: PaymentId",
                  r.price AS "price!: Money", r.currency AS "currency!", r.reason,
                  r.status AS "status!", r.created_at AS "created_at!", r.updated_at AS "updated_at!"
           FROM refund r
           UNION ALL
           SELECT r.id, r.payment_id, r.price, r.currency, r.reason, r.status, r.created_at,
                  r.updated_at
           FROM refunds r WHERE r.id = $1 AND NOT EXISTS (SELECT 1 FROM refund)"#,
        refund_id.get(),
        status,
        reference,
        failure,
        event,
        message,
        provider_event_id,
        provider_type,
        uuid::Uuid::new_v4(),
        kind,
        notify,
    )
    .fetch_one(db)
    .await
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
