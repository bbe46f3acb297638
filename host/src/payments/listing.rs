//! Listing a merchant's payments: filters, and either pages (`page`,
//! `limit`, with the total) or cursors (`starting_after` / `ending_before`,
//! with `has_more`), newest first.
//!
//! The SQL is built per request from the filters present, with every value
//! bound, never spliced: each combination is its own statement, which
//! PostgreSQL plans for the indexes it can use (`payments_merchant_*`); one
//! statement with `($n IS NULL OR ...)` for every filter would get a
//! generic plan that scans the merchant's payments to find one order.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};

use super::store::{Payment, PaymentStore};
use crate::ids::{MerchantId, PaymentId};

/// The statuses a list may be filtered by: the API's.
pub const FILTER_STATUSES: [&str; 4] = [
    "PAYMENT_PENDING",
    "PAYMENT_FINISHED",
    "PAYMENT_FAILED",
    "PAYMENT_EXPIRED",
];

/// What a list keeps; `None` keeps everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListFilter {
    /// One of [`FILTER_STATUSES`].
    pub status: Option<&'static str>,
    pub order_id: Option<i64>,
    /// The provider alias.
    pub provider: Option<String>,
    pub created_gte: Option<DateTime<Utc>>,
    pub created_lt: Option<DateTime<Utc>>,
}

/// Where a cursor page starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// The `limit` payments just older than this one.
    StartingAfter(PaymentId),
    /// The `limit` payments just newer than this one (still shown newest first).
    EndingBefore(PaymentId),
}

const SELECT: &str = "SELECT id AS payment_id, order_id, alias AS provider, amount, price, \
                      currency, status, payment_url, return_url, cancel_url, metadata, \
                      refunded, created_at, updated_at, expires_at FROM payments";

/// `head` with the merchant's and `filter`'s conditions.
fn filtered<'a>(
    head: &str,
    merchant: MerchantId,
    filter: &'a ListFilter,
) -> QueryBuilder<'a, Postgres> {
    let mut sql = QueryBuilder::new(head);
    sql.push(" WHERE merchant_id = ").push_bind(merchant.get());
    if let Some(status) = filter.status {
        sql.push(" AND status = ").push_bind(status);
    }
    if let Some(order_id) = filter.order_id {
        sql.push(" AND order_id = ").push_bind(order_id);
    }
    if let Some(provider) = &filter.provider {
        sql.push(" AND alias = ").push_bind(provider.as_str());
    }
    if let Some(from) = filter.created_gte {
        sql.push(" AND created_at >= ").push_bind(from);
    }
    if let Some(until) = filter.created_lt {
        sql.push(" AND created_at < ").push_bind(until);
    }
    sql
}

/// The rows of one page: on `cursor`'s side of it when there is one (its
/// `limit` nearest, in the cursor's direction), else `limit` from `offset`,
/// newest first.
fn page<'a>(
    head: &str,
    merchant: MerchantId,
    filter: &'a ListFilter,
    cursor: Option<Cursor>,
    limit: i64,
    offset: i64,
) -> QueryBuilder<'a, Postgres> {
    let mut sql = filtered(head, merchant, filter);
    match cursor {
        None => {
            sql.push(" ORDER BY id DESC LIMIT ")
                .push_bind(limit)
                .push(" OFFSET ")
                .push_bind(offset);
        }
        Some(Cursor::StartingAfter(at)) => {
            sql.push(" AND id < ")
                .push_bind(at.get())
                .push(" ORDER BY id DESC LIMIT ")
                .push_bind(limit);
        }
        Some(Cursor::EndingBefore(at)) => {
            sql.push(" AND id > ")
                .push_bind(at.get())
                .push(" ORDER BY id ASC LIMIT ")
                .push_bind(limit);
        }
    }
    sql
}

impl PaymentStore {
    /// Page `page` (from 1) of `limit` of the merchant's payments kept by
    /// `filter`, newest first, and how many `filter` keeps in all.
    pub async fn list(
        &self,
        merchant: MerchantId,
        filter: &ListFilter,
        page_number: i64,
        limit: i64,
    ) -> Result<(Vec<Payment>, i64), sqlx::Error> {
        let offset = (page_number - 1).saturating_mul(limit);
        let payments = page(SELECT, merchant, filter, None, limit, offset)
            .build_query_as()
            .fetch_all(&self.pool)
            .await?;
        let total = filtered("SELECT count(*) FROM payments", merchant, filter)
            .build_query_scalar()
            .fetch_one(&self.pool)
            .await?;
        Ok((payments, total))
    }

    /// Up to `limit` of the merchant's payments kept by `filter` on the
    /// `cursor`'s side of it, newest first, and whether more lie beyond;
    /// `None` when the cursor is not one of the merchant's payments.
    pub async fn list_from(
        &self,
        merchant: MerchantId,
        filter: &ListFilter,
        cursor: Cursor,
        limit: i64,
    ) -> Result<Option<(Vec<Payment>, bool)>, sqlx::Error> {
        let (Cursor::StartingAfter(at) | Cursor::EndingBefore(at)) = cursor;
        let owned = sqlx::query_scalar!(
            "SELECT EXISTS (SELECT 1 FROM payments WHERE id = $1 AND merchant_id = $2) AS \"owned!\"",
            at.get(),
            merchant.get(),
        )
        .fetch_one(&self.pool)
        .await?;
        if !owned {
            return Ok(None);
        }
        // One row past the page says whether there are more.
        let mut payments: Vec<Payment> = page(SELECT, merchant, filter, Some(cursor), limit + 1, 0)
            .build_query_as()
            .fetch_all(&self.pool)
            .await?;
        let has_more = payments.len() as i64 > limit;
        payments.truncate(limit as usize);
        if matches!(cursor, Cursor::EndingBefore(_)) {
            payments.reverse();
        }
        Ok(Some((payments, has_more)))
    }

    /// PostgreSQL's plan of the rows query [`PaymentStore::list`] (no
    /// cursor) or [`PaymentStore::list_from`] runs for these arguments, one
    /// line per node: for operators, and for the test that shows every
    /// filter reads an index.
    pub async fn explain_list(
        &self,
        merchant: MerchantId,
        filter: &ListFilter,
        cursor: Option<Cursor>,
        limit: i64,
    ) -> Result<String, sqlx::Error> {
        let head = format!("EXPLAIN {SELECT}");
        let limit = limit + i64::from(cursor.is_some());
        let lines: Vec<String> = page(&head, merchant, filter, cursor, limit, 0)
            .build_query_scalar()
            .fetch_all(&self.pool)
            .await?;
        Ok(lines.join("\n"))
    }
}
