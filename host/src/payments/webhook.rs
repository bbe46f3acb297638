//! Applying verified provider events: a pending payment moves to finished
//! or failed once; its timeline row and its outbox row commit in the same
//! transaction; terminal payments never change.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::json;

use super::domain::PaymentStatus;
use super::store::{PaymentStore, log};
use crate::ids::{MerchantId, OrderId, PaymentId};
use crate::plugins::bindings::{EventStatus, Money, PaymentRef};

/// What applying one event did.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    Updated {
        payment_id: PaymentId,
        status: PaymentStatus,
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
    /// Moves the payment (only among `aliases`) to `status`, once, and
    /// only if `amount`, when the event names one, is the payment's price.
    pub async fn apply_provider_event(
        &self,
        lookup: PaymentLookup<'_>,
        aliases: &[String],
        status: PaymentStatus,
        provider_type: &str,
        event_id: &str,
        amount: Option<&Money>,
    ) -> Result<Applied, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let (by_id, by_reference) = match lookup {
            PaymentLookup::Id(id) => (Some(id.get()), None),
            PaymentLookup::ProviderReference(reference) => (None, Some(reference)),
        };
        // One of the two keys is NULL, and `= NULL` matches nothing.
        let found = sqlx::query!(
            r#"SELECT id AS "id: PaymentId", status AS "status: PaymentStatus",
                      merchant_id AS "merchant_id: MerchantId", order_id AS "order_id: OrderId",
                      currency, amount, price, metadata, created_at
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
            "EVENT_PROVIDER_WEBHOOK",
            status.as_str(),
            provider_type,
            Some(payload),
        )
        .await?;
        let event_type = if status == PaymentStatus::Finished {
            "payment.finished"
        } else {
            "payment.failed"
        };
        let notification_id = uuid::Uuid::new_v4();
        let body = json!({
            "event_id": notification_id.to_string(),
            "event_type": event_type,
            "payment_id": payment_id,
            "order_id": payment.order_id,
            "merchant_id": payment.merchant_id,
            "status": status.as_str(),
            "amount": payment.amount.to_string(),
            "price": payment.price.to_string(),
            "currency": payment.currency,
            "metadata": payment.metadata,
            "created_at": payment.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        notify(&mut tx, payment_id, None, notification_id, event_type, body).await?;
        tx.commit().await?;
        Ok(Applied::Updated { payment_id, status })
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

/// Queues the merchant notification `body` (event `notification_id` of
/// type `event_type`, about the payment or one of its refunds) inside the
/// caller's transaction, and wakes the outbox producer when it commits.
pub(crate) async fn notify(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    payment_id: PaymentId,
    refund_id: Option<crate::ids::RefundId>,
    notification_id: uuid::Uuid,
    event_type: &str,
    body: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO outbox (payment_id, refund_id, event_id, event_type, payload)
         VALUES ($1, $2, $3, $4, $5)",
        payment_id.get(),
        refund_id.map(crate::ids::RefundId::get),
        notification_id,
        event_type,
        body,
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!("SELECT pg_notify('paygate_outbox', '')")
        .execute(&mut **tx)
        .await?;
    Ok(())
}
