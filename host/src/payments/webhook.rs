//! Applying verified provider events: a pending payment moves to finished
//! or failed once, and a pending refund to succeeded or failed once; the
//! timeline row and the outbox row commit in the same transaction as the
//! move; terminal payments and refunds never change.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::json;

use super::domain::PaymentStatus;
use super::refunds::{REFUND_FAILED, REFUND_PENDING, REFUND_SUCCEEDED, Settle, settle_refund_in};
use super::store::{PaymentStore, log};
use crate::ids::{MerchantId, OrderId, PaymentId, RefundId};
use crate::plugins::bindings::{EventStatus, Money, PaymentRef, RefundStatus};

/// What applying one event did.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    Updated {
        payment_id: PaymentId,
        status: PaymentStatus,
        /// The payment's alias, for the metrics.
        alias: String,
    },
    AlreadyProcessed {
        payment_id: PaymentId,
        status: PaymentStatus,
    },
    NotFound,
    /// The event is about this payment but says another amount or currency
    /// than the payment's: nothing changed but the payment's timeline.
    AmountMismatch {
        payment_id: PaymentId,
        status: PaymentStatus,
    },
}

/// What applying one refund event did; `status` is the refund's.
#[derive(Clone, Debug, PartialEq)]
pub enum RefundApplied {
    Updated {
        refund_id: RefundId,
        status: String,
    },
    AlreadyProcessed {
        refund_id: RefundId,
        status: String,
    },
    NotFound,
    /// The event names another amount or currency than the refund's:
    /// nothing changed but the payment's timeline.
    AmountMismatch {
        refund_id: RefundId,
        status: String,
    },
    /// The event names its refund by a `reference` no refund has yet, and
    /// by the id of a refund still waiting for its provider's answer (the
    /// adapter's call is in flight, or died before the answer was stored).
    /// A provider may send its webhook before it answers the request
    /// (Adyen says so): the event can be applied once the answer is in.
    Unanswered {
        refund_id: RefundId,
    },
}

/// How a refund event names its refund (WIT `refund-event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefundLookup<'a> {
    /// The provider's id of the refund, which the adapter returned.
    pub reference: Option<&'a str>,
    /// paygate's id, when the event carries it.
    pub refund_id: Option<RefundId>,
}

/// The refund an event names, locked.
struct Target {
    id: RefundId,
    status: String,
    price: super::domain::Money,
    currency: String,
    payment_id: PaymentId,
    payment_status: String,
}

/// Why an event's amount is not the payment's, or `None` when it is.
/// The value must be a plain decimal (digits, optionally a point and more
/// digits) equal to the price; the currency is compared without case.
pub fn amount_mismatch(reported: &Money, price: &Decimal, currency: &str) -> Option<String> {
    let plain = {
        let (whole, fraction) = reported
            .value
            .split_once('.')
            .unwrap_or((&reported.value, "0"));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        digits(whole) && digits(fraction)
    };
    let value = plain
        .then(|| Decimal::from_str(&reported.value).ok())
        .flatten();
    if value.as_ref() == Some(price) && reported.currency.eq_ignore_ascii_case(currency) {
        return None;
    }
    Some(format!(
        "the provider reports {:.40} {:.8}, the payment is {price} {currency}",
        reported.value, reported.currency
    ))
}

/// How paygate learned of a payment's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A verified provider webhook.
    Webhook,
    /// The adapter's `payment-status`, asked by reconciliation.
    StatusCheck,
}

impl Source {
    /// The timeline event the move is written as.
    pub fn timeline_event(self) -> &'static str {
        match self {
            Source::Webhook => "EVENT_PROVIDER_WEBHOOK",
            Source::StatusCheck => "EVENT_PROVIDER_STATUS",
        }
    }
}

/// A provider's word on a payment, as [`PaymentStore::apply_provider_event`]
/// takes it.
#[derive(Clone, Copy, Debug)]
pub struct ProviderEvent<'a> {
    pub lookup: PaymentLookup<'a>,
    pub status: PaymentStatus,
    /// The provider's own event type, or `payment-status`.
    pub provider_type: &'a str,
    /// The provider's event id; reconciliation makes one per answer.
    pub event_id: &'a str,
    /// The amount the provider reports, when it does.
    pub amount: Option<&'a Money>,
    pub source: Source,
}

/// How a webhook event names its payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentLookup<'a> {
    Id(PaymentId),
    ProviderReference(&'a str),
}

impl<'a> From<&'a PaymentRef> for PaymentLookup<'a> {
    /// A WIT id past `i64::MAX` cannot be one of ours; it becomes `-1`,
    /// which no payment has, so the event is answered "not found".
    fn from(payment: &'a PaymentRef) -> Self {
        match payment {
            PaymentRef::PaymentId(id) => Self::Id(PaymentId::new(i64::try_from(*id).unwrap_or(-1))),
            PaymentRef::ProviderReference(r) => Self::ProviderReference(r),
        }
    }
}

impl From<EventStatus> for PaymentStatus {
    fn from(status: EventStatus) -> Self {
        match status {
            EventStatus::Finished => Self::Finished,
            EventStatus::Failed => Self::Failed,
            EventStatus::Pending => Self::Pending,
        }
    }
}

impl PaymentStore {
    /// Moves the payment `event` names (only among `aliases`) to its
    /// status, once, and only if its amount, when it names one, is the
    /// payment's price.
    pub async fn apply_provider_event(
        &self,
        event: &ProviderEvent<'_>,
        aliases: &[String],
    ) -> Result<Applied, sqlx::Error> {
        let ProviderEvent {
            lookup,
            status,
            provider_type,
            event_id,
            amount,
            source,
        } = *event;
        let mut tx = self.pool.begin().await?;
        let (by_id, by_reference) = match lookup {
            PaymentLookup::Id(id) => (Some(id.get()), None),
            PaymentLookup::ProviderReference(reference) => (None, Some(reference)),
        };
        // One of the two keys is NULL, and `= NULL` matches nothing.
        let found = sqlx::query!(
            r#"SELECT id AS "id: PaymentId", status AS "status: PaymentStatus",
                      merchant_id AS "merchant_id: MerchantId", order_id AS "order_id: OrderId",
                      currency, amount, price, metadata, created_at, alias
               FROM payments WHERE (id = $1 OR provider_reference = $2) AND alias = ANY($3) FOR UPDATE"#,
            by_id,
            by_reference,
            aliases,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(payment) = found else {
            return Ok(Applied::NotFound);
        };
        let payment_id = payment.id;
        if payment.status != PaymentStatus::Pending || status == PaymentStatus::Pending {
            return Ok(Applied::AlreadyProcessed {
                payment_id,
                status: payment.status,
            });
        }
        if let Some(why) =
            amount.and_then(|a| amount_mismatch(a, &payment.price, &payment.currency))
        {
            // Signed by the provider, about this payment, for other money:
            // a misbehaving adapter or provider, or a session changed after
            // paygate opened it. Nothing moves; a person has to look.
            let payload = json!({"provider_event_id": event_id, "provider_type": provider_type});
            log(
                &mut tx,
                payment_id,
                "EVENT_PROVIDER_AMOUNT_MISMATCH",
                payment.status.as_str(),
                &why,
                Some(payload),
            )
            .await?;
            tx.commit().await?;
            tracing::error!(payment_id = payment_id.get(), %why, "provider event refused: amount mismatch");
            return Ok(Applied::AmountMismatch {
                payment_id,
                status: payment.status,
            });
        }
        sqlx::query!(
            "UPDATE payments SET status = $2, updated_at = now() WHERE id = $1",
            payment_id.get(),
            status.as_str(),
        )
        .execute(&mut *tx)
        .await?;
        let payload = json!({"provider_event_id": event_id, "provider_type": provider_type});
        log(
            &mut tx,
            payment_id,
            source.timeline_event(),
            status.as_str(),
            provider_type,
            Some(payload),
        )
        .await?;
        let notified = Notifiable {
            id: payment_id,
            merchant_id: payment.merchant_id,
            order_id: payment.order_id,
            amount: payment.amount,
            price: payment.price,
            currency: payment.currency,
            metadata: payment.metadata,
            created_at: payment.created_at,
        };
        notify_payment(&mut tx, &notified, status).await?;
        tx.commit().await?;
        self.outbox_wake.wake().await;
        Ok(Applied::Updated {
            payment_id,
            status,
            alias: payment.alias,
        })
    }

    /// Moves the refund the event names (only of payments among `aliases`)
    /// to `status`, once, and only if `amount`, when the event names one,
    /// is the refund's price.
    ///
    /// An event with a `reference` moves only the refund stored with it,
    /// and only if its `refund_id`, when it has one, is that refund's: a
    /// refund id is something whoever asks the provider for a refund can
    /// write into it, a reference is what the provider answered paygate.
    pub async fn apply_refund_event(
        &self,
        lookup: RefundLookup<'_>,
        aliases: &[String],
        status: RefundStatus,
        provider_type: &str,
        event_id: &str,
        amount: Option<&Money>,
    ) -> Result<RefundApplied, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let found = match (lookup.reference, lookup.refund_id) {
            (Some(reference), named) => {
                // A reference another provider also used is ambiguous:
                // two rows, and neither moves.
                let rows = sqlx::query_as!(
                    Target,
                    r#"SELECT r.id AS "id: RefundId", r.status, r.price AS "price: super::domain::Money",
                              r.currency, r.payment_id AS "payment_id: PaymentId",
                              p.status AS payment_status
                       FROM refunds r JOIN payments p ON p.id = r.payment_id
                       WHERE r.provider_reference = $1 AND p.alias = ANY($2)
                       ORDER BY r.id LIMIT 2 FOR UPDATE OF r"#,
                    reference,
                    aliases,
                )
                .fetch_all(&mut *tx)
                .await?;
                if let (true, Some(id)) = (rows.is_empty(), named) {
                    // Still no reference: is the refund the event names
                    // waiting for the answer that carries it? Each
                    // statement reads its own snapshot, so the answer may
                    // have committed since the lookup above: a reference
                    // that is now the event's own (whatever the answer
                    // settled) also means "look again", never "not found",
                    // which the provider would not send again.
                    let waiting = sqlx::query_scalar!(
                        r#"SELECT r.id FROM refunds r JOIN payments p ON p.id = r.payment_id
                           WHERE r.id = $1 AND p.alias = ANY($2)
                             AND ((r.status = 'REFUND_PENDING' AND r.provider_reference IS NULL)
                                  OR r.provider_reference = $3)"#,
                        id.get(),
                        aliases,
                        reference,
                    )
                    .fetch_optional(&mut *tx)
                    .await?;
                    if waiting.is_some() {
                        return Ok(RefundApplied::Unanswered { refund_id: id });
                    }
                }
                match <[Target; 1]>::try_from(rows) {
                    Ok([target]) if named.is_none_or(|id| id == target.id) => Some(target),
                    _ => None,
                }
            }
            (None, Some(id)) => {
                sqlx::query_as!(
                    Target,
                    r#"SELECT r.id AS "id: RefundId", r.status, r.price AS "price: super::domain::Money",
                              r.currency, r.payment_id AS "payment_id: PaymentId",
                              p.status AS payment_status
                       FROM refunds r JOIN payments p ON p.id = r.payment_id
                       WHERE r.id = $1 AND p.alias = ANY($2) FOR UPDATE OF r"#,
                    id.get(),
                    aliases,
                )
                .fetch_optional(&mut *tx)
                .await?
            }
            (None, None) => None,
        };
        let Some(target) = found else {
            return Ok(RefundApplied::NotFound);
        };
        let refund_id = target.id;
        let status = match status {
            RefundStatus::Succeeded => REFUND_SUCCEEDED,
            RefundStatus::Failed => REFUND_FAILED,
            RefundStatus::Pending => REFUND_PENDING,
        };
        if target.status != REFUND_PENDING || status == REFUND_PENDING {
            return Ok(RefundApplied::AlreadyProcessed {
                refund_id,
                status: target.status,
            });
        }
        if let Some(why) =
            amount.and_then(|a| amount_mismatch(a, &target.price.value(), &target.currency))
        {
            let why = format!("refund {refund_id}: {why}");
            let payload = json!({
                "refund_id": refund_id,
                "provider_event_id": event_id,
                "provider_type": provider_type,
            });
            log(
                &mut tx,
                target.payment_id,
                "EVENT_PROVIDER_AMOUNT_MISMATCH",
                &target.payment_status,
                &why,
                Some(payload),
            )
            .await?;
            tx.commit().await?;
            tracing::error!(refund_id = refund_id.get(), %why, "provider refund event refused: amount mismatch");
            return Ok(RefundApplied::AmountMismatch {
                refund_id,
                status: target.status,
            });
        }
        let settle = Settle {
            provider_event: Some((event_id, provider_type)),
            ..Settle::answer(status, lookup.reference, provider_type)
        };
        let refund = settle_refund_in(&mut *tx, refund_id, &settle).await?;
        tx.commit().await?;
        self.outbox_wake.wake().await;
        Ok(RefundApplied::Updated {
            refund_id,
            status: refund.status,
        })
    }

    /// Outbox rows of a payment: (event_type, status), for tests and the API.
    pub async fn outbox_of(
        &self,
        payment_id: PaymentId,
    ) -> Result<Vec<(String, String)>, sqlx::Error> {
        let rows = sqlx::query!(
            "SELECT event_type, status FROM outbox WHERE payment_id = $1 ORDER BY id",
            payment_id.get(),
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|r| (r.event_type, r.status)).collect())
    }
}

/// A payment as its notifications describe it.
pub(crate) struct Notifiable {
    pub id: PaymentId,
    pub merchant_id: MerchantId,
    pub order_id: OrderId,
    pub amount: Decimal,
    pub price: Decimal,
    pub currency: String,
    pub metadata: serde_json::Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Queues the notification of `payment`'s move to the terminal `status`
/// (`payment.finished`, `payment.failed` or `payment.expired`) inside the
/// caller's transaction (announce it after the commit:
/// [`crate::outbox::OutboxWake`]); a move to pending is notified to no one.
pub(crate) async fn notify_payment(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    payment: &Notifiable,
    status: PaymentStatus,
) -> Result<(), sqlx::Error> {
    notify_payments(tx, &[(payment, status)]).await
}

/// [`notify_payment`] for many payments, in one statement.
pub(crate) async fn notify_payments(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    moves: &[(&Notifiable, PaymentStatus)],
) -> Result<(), sqlx::Error> {
    let mut payment_ids = Vec::with_capacity(moves.len());
    let mut event_ids = Vec::with_capacity(moves.len());
    let mut event_types = Vec::with_capacity(moves.len());
    let mut bodies = Vec::with_capacity(moves.len());
    for &(payment, status) in moves {
        let event_type = match status {
            PaymentStatus::Finished => "payment.finished",
            PaymentStatus::Failed => "payment.failed",
            PaymentStatus::Expired => "payment.expired",
            PaymentStatus::Pending => continue,
        };
        let notification_id = uuid::Uuid::new_v4();
        payment_ids.push(payment.id.get());
        event_ids.push(notification_id);
        event_types.push(event_type);
        bodies.push(json!({
            "event_id": notification_id.to_string(),
            "event_type": event_type,
            "payment_id": payment.id,
            "order_id": payment.order_id,
            "merchant_id": payment.merchant_id,
            "status": status.as_str(),
            "amount": payment.amount.to_string(),
            "price": payment.price.to_string(),
            "currency": payment.currency,
            "metadata": payment.metadata,
            "created_at": payment.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }));
    }
    if payment_ids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO outbox (payment_id, event_id, event_type, payload)
         SELECT n.payment_id, n.event_id, n.event_type, n.payload
         FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::jsonb[])
              WITH ORDINALITY AS n(payment_id, event_id, event_type, payload, i)
         ORDER BY n.i",
        &payment_ids,
        &event_ids,
        &event_types as &[&str],
        &bodies,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
