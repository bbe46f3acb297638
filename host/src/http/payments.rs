//! `/api/v1/payments` handlers.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::auth::{Access, Target, authenticate};
use super::error::{ApiError, FieldError, current_request_id};
#[allow(unused_imports)] // named by the OpenAPI annotations
use super::openapi::{CreatePaymentBody, CreatedBody, ErrorBody, PaymentList, Tracking};
use crate::ids::{OrderId, PaymentId, SubscriptionId};
use crate::merchants::Merchants;
use crate::payments::create::{CreatePayment, PaymentsService, create_payment};
use crate::payments::idempotency::fingerprint;
use crate::payments::{
    Alias, Currency, Cursor, FILTER_STATUSES, IdempotencyKey, ListFilter, Metadata, Money, Payment,
    RedirectUrl,
};
use crate::payments::{Outcome, PaymentStore};

/// `POST /api/v1/payments`.
#[utoipa::path(
    post, path = "/api/v1/payments", tag = "payments",
    request_body = CreatePaymentBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Idempotency key; else `event_id`")),
    responses(
        (status = 200, description = "Created (or replayed: `Idempotent-Replayed: true`)", body = CreatedBody),
        (status = 400, description = "`invalid_request`, `unknown_alias`, `invalid_subscription`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_api_key`", body = ErrorBody),
        (status = 403, description = "`forbidden` (read-only key, signed writes missing), `invalid_signature`, `signature_expired`", body = ErrorBody),
        (status = 409, description = "`idempotency_conflict`, `request_in_progress`, `order_exists`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 429, description = "`rate_limited`, `quota_exceeded`", body = ErrorBody),
        (status = 502, description = "`provider_error`: the payment is stored `PAYMENT_FAILED`", body = ErrorBody),
        (status = 503, description = "`provider_unavailable` (circuit open), `service_unavailable`", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "payments.create", merchant_id = tracing::field::Empty, payment_id = tracing::field::Empty))]
pub async fn create(
    State(merchants): State<Arc<Merchants>>,
    State(payments): State<Arc<PaymentsService>>,
    target: Target,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let merchant = authenticate(&merchants, &headers, target.write(&body)).await?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::malformed(format!("malformed JSON: {e}")))?;
    let request =
        parse_create(&value, payments.allow_http_redirects)?.with_merchant_defaults(&merchant);
    request
        .check_price_precision(&merchant)
        .map_err(|message| ApiError::field("price", message))?;
    let header_key = idempotency_header(&headers)?;
    let key = header_key.or_else(|| request.event_id.clone());
    let fingerprint = fingerprint(&value);
    let created = create_payment(
        &payments,
        &merchant,
        &request,
        key.as_ref(),
        &fingerprint,
        &current_request_id(),
    )
    .await?;
    let mut response = match created.outcome {
        Outcome::Opened(opened) => (StatusCode::OK, Json(opened)).into_response(),
        Outcome::Refused(refused) => (StatusCode::BAD_GATEWAY, Json(refused)).into_response(),
    };
    if created.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The request's `Idempotency-Key` header, if it sent one.
pub(super) fn idempotency_header(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|k| IdempotencyKey::parse(k).ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::field(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            )
        })
}

/// Validates a create body, reporting every bad field at once;
/// `allow_http` lets return and cancel URLs be `http://` on any host.
pub fn parse_create(value: &Value, allow_http: bool) -> Result<CreatePayment, ApiError> {
    let Some(obj) = value.as_object() else {
        return Err(ApiError::malformed("the body must be a JSON object"));
    };
    let mut errors = Vec::new();
    let order_id = positive_int(obj, "order_id", &mut errors);
    let subscription_id = positive_int(obj, "subscription_id", &mut errors);
    let amount = money(obj, "amount", &mut errors);
    let price = money(obj, "price", &mut errors);
    let alias = match obj.get("alias") {
        Some(Value::String(s)) => Alias::parse(s)
            .map_err(|m| errors.push(FieldError::new("alias", m)))
            .ok(),
        Some(_) => fail(&mut errors, "alias", "must be a string"),
        None => fail(&mut errors, "alias", "is required"),
    };
    let event_id = match obj.get("event_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => IdempotencyKey::parse(s)
            .map_err(|m| errors.push(FieldError::new("event_id", m)))
            .ok(),
        Some(_) => fail(&mut errors, "event_id", "must be a string"),
    };
    let currency = match obj.get("currency") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Currency::parse(s)
            .map_err(|m| errors.push(FieldError::new("currency", m)))
            .ok(),
        Some(_) => fail(&mut errors, "currency", "must be a string"),
    };
    let mut redirect = |field: &str| match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => RedirectUrl::parse(s, allow_http)
            .map_err(|m| errors.push(FieldError::new(field, m)))
            .ok(),
        Some(_) => fail(&mut errors, field, "must be a string"),
    };
    let return_url = redirect("return_url");
    let cancel_url = redirect("cancel_url");
    let metadata = match obj.get("metadata") {
        None | Some(Value::Null) => Metadata::default(),
        Some(value) => Metadata::parse(value)
            .map_err(|m| errors.push(FieldError::new("metadata", m)))
            .unwrap_or_default(),
    };
    match (order_id, subscription_id, amount, price, alias) {
        (Some(order_id), Some(subscription_id), Some(amount), Some(price), Some(alias))
            if errors.is_empty() =>
        {
            Ok(CreatePayment {
                order_id: OrderId::new(order_id),
                amount,
                price,
                alias,
                subscription_id: SubscriptionId::new(subscription_id),
                event_id,
                currency,
                return_url,
                cancel_url,
                metadata,
            })
        }
        _ => Err(ApiError::fields(errors)),
    }
}

fn fail<T>(errors: &mut Vec<FieldError>, field: &str, message: &str) -> Option<T> {
    errors.push(FieldError::new(field, message));
    None
}

fn positive_int(
    obj: &Map<String, Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<i64> {
    match obj.get(field) {
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) if v >= 1 => Some(v),
            _ => fail(
                errors,
                field,
                "must be a whole number from 1 to 9223372036854775807",
            ),
        },
        Some(_) => fail(errors, field, "must be a whole number"),
        None => fail(errors, field, "is required"),
    }
}

/// A required decimal field (JSON number or string), read exactly.
pub(super) fn money(
    obj: &Map<String, Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Money> {
    let text = match obj.get(field) {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return fail(errors, field, "must be a decimal number or string"),
        None => return fail(errors, field, "is required"),
    };
    Money::parse(&text)
        .map_err(|m| errors.push(FieldError::new(field, m)))
        .ok()
}

/// `GET /api/v1/payments`: filters, and pages or cursors (API.md,
/// "Listing and filtering payments").
#[utoipa::path(
    get, path = "/api/v1/payments", tag = "payments",
    params(
        ("page" = Option<i64>, Query, minimum = 1, maximum = 1000000, description = "Page form: ≥ 1, default 1; not with a cursor"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1–100, default 20"),
        ("status" = Option<String>, Query, description = "Only payments in this status: `PAYMENT_PENDING`, `PAYMENT_FINISHED`, `PAYMENT_FAILED`, `PAYMENT_EXPIRED`"),
        ("order_id" = Option<i64>, Query, minimum = 1, description = "Only the payment of this order"),
        ("provider" = Option<String>, Query, description = "Only payments through this alias"),
        ("created_gte" = Option<String>, Query, format = DateTime, description = "Created at or after (RFC 3339)"),
        ("created_lt" = Option<String>, Query, format = DateTime, description = "Created before (RFC 3339)"),
        ("starting_after" = Option<i64>, Query, minimum = 1, description = "Cursor form: the payments just older than this one of yours"),
        ("ending_before" = Option<i64>, Query, minimum = 1, description = "Cursor form: the payments just newer than this one of yours (still newest first)"),
    ),
    responses(
        (status = 200, description = "The merchant's payments, newest first: a page (`page`, `total`, `has_next`), or with a cursor `has_more`", body = PaymentList),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_api_key`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "payments.list", merchant_id = tracing::field::Empty, payment_id = tracing::field::Empty))]
pub async fn list(
    State(merchants): State<Arc<Merchants>>,
    State(payments): State<Arc<PaymentsService>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let merchant = authenticate(&merchants, &headers, Access::Read).await?;
    let query = ListQuery::parse(&params)?;
    let store = &payments.payments;
    let Some(cursor) = query.cursor else {
        let (items, total) = store
            .list(merchant.id, &query.filter, query.page, query.limit)
            .await?;
        return Ok(Json(json!({
            "page": query.page,
            "limit": query.limit,
            "total": total,
            "has_next": has_next(query.page, query.limit, total),
            "items": items,
        })));
    };
    let (items, has_more) = store
        .list_from(merchant.id, &query.filter, cursor, query.limit)
        .await?
        .ok_or_else(|| ApiError::field(cursor_param(cursor), "names no payment of yours"))?;
    Ok(Json(
        json!({"limit": query.limit, "has_more": has_more, "items": items}),
    ))
}

fn cursor_param(cursor: Cursor) -> &'static str {
    match cursor {
        Cursor::StartingAfter(_) => "starting_after",
        Cursor::EndingBefore(_) => "ending_before",
    }
}

/// A list request's query: its filters and its page or cursor.
#[derive(Debug, PartialEq)]
struct ListQuery {
    filter: ListFilter,
    page: i64,
    limit: i64,
    cursor: Option<Cursor>,
}

/// The first value of query parameter `name`.
fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A whole number from 1 to `max`, if the parameter is there.
fn whole(raw: Option<&str>, max: i64) -> Option<Result<i64, String>> {
    raw.map(|v| match v.parse::<i64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("must be a whole number from 1 to {max}")),
    })
}

/// An RFC 3339 time in UTC, if the parameter is there.
fn time(raw: Option<&str>) -> Option<Result<DateTime<Utc>, String>> {
    raw.map(|v| {
        DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| "must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z".to_owned())
    })
}

/// The value of a parameter that is there and good; a bad one is added
/// to `errors` under `name`.
fn keep<T>(
    errors: &mut Vec<FieldError>,
    name: &str,
    parsed: Option<Result<T, String>>,
) -> Option<T> {
    match parsed? {
        Ok(v) => Some(v),
        Err(m) => {
            errors.push(FieldError::new(name, m));
            None
        }
    }
}

impl ListQuery {
    /// Reads every parameter, naming each bad one in one 400. Unknown
    /// parameters are ignored; of a repeated one, the first counts.
    fn parse(params: &[(String, String)]) -> Result<Self, ApiError> {
        let raw = |name: &str| param(params, name);
        let mut errors = Vec::new();
        let page = keep(&mut errors, "page", whole(raw("page"), 1_000_000));
        let limit = keep(&mut errors, "limit", whole(raw("limit"), 100)).unwrap_or(20);
        let status = keep(
            &mut errors,
            "status",
            raw("status").map(|v| {
                FILTER_STATUSES
                    .into_iter()
                    .find(|s| *s == v)
                    .ok_or_else(|| format!("must be one of {}", FILTER_STATUSES.join(", ")))
            }),
        );
        let order_id = keep(&mut errors, "order_id", whole(raw("order_id"), i64::MAX));
        let provider = keep(
            &mut errors,
            "provider",
            raw("provider").map(|v| Alias::parse(v).map(|a| a.as_str().to_owned())),
        );
        let created_gte = keep(&mut errors, "created_gte", time(raw("created_gte")));
        let created_lt = keep(&mut errors, "created_lt", time(raw("created_lt")));
        let after = keep(
            &mut errors,
            "starting_after",
            whole(raw("starting_after"), i64::MAX),
        );
        let before = keep(
            &mut errors,
            "ending_before",
            whole(raw("ending_before"), i64::MAX),
        );
        let cursor = match (after, before) {
            (Some(_), Some(_)) => keep(
                &mut errors,
                "ending_before",
                Some(Err("cannot be combined with starting_after".into())),
            ),
            (Some(id), None) => Some(Cursor::StartingAfter(PaymentId::new(id))),
            (None, Some(id)) => Some(Cursor::EndingBefore(PaymentId::new(id))),
            (None, None) => None,
        };
        if cursor.is_some() && raw("page").is_some() {
            keep::<()>(
                &mut errors,
                "page",
                Some(Err(
                    "cannot be combined with starting_after or ending_before".into(),
                )),
            );
        }
        if !errors.is_empty() {
            return Err(ApiError::fields(errors));
        }
        Ok(Self {
            filter: ListFilter {
                status,
                order_id,
                provider,
                created_gte,
                created_lt,
            },
            page: page.unwrap_or(1),
            limit,
            cursor,
        })
    }
}

/// Whether payments come after page `page` of `limit` out of `total`.
fn has_next(page: i64, limit: i64, total: i64) -> bool {
    page * limit < total
}

pub(super) fn payment_id(raw: &str) -> Result<PaymentId, ApiError> {
    raw.parse::<PaymentId>()
        .map_err(|e| ApiError::field("id", e.to_string()))
}

/// The payment `raw_id` of the merchant whose key (allowed `access`) the
/// request carries; another merchant's is not found.
pub(super) async fn own_payment(
    (merchants, payments): (&Merchants, &PaymentStore),
    headers: &HeaderMap,
    raw_id: &str,
    access: Access<'_>,
) -> Result<Payment, ApiError> {
    let merchant = authenticate(merchants, headers, access).await?;
    let id = payment_id(raw_id)?;
    tracing::Span::current().record("payment_id", id.get());
    payments
        .get(merchant.id, id)
        .await?
        .ok_or(ApiError::NotFound)
}

/// `GET /api/v1/payments/{id}/show`.
#[utoipa::path(
    get, path = "/api/v1/payments/{id}/show", tag = "payments",
    params(("id" = i64, Path, description = "Payment id")),
    responses(
        (status = 200, description = "The payment", body = Payment),
        (status = 400, description = "`invalid_request` (id not a number)", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_api_key`", body = ErrorBody),
        (status = 404, description = "`not_found`, also for another merchant's payment", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "payments.show", merchant_id = tracing::field::Empty, payment_id = tracing::field::Empty))]
pub async fn show(
    State(merchants): State<Arc<Merchants>>,
    State(payments): State<Arc<PaymentsService>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Payment>, ApiError> {
    let services = (&*merchants, &payments.payments);
    // Serialized straight into the body, not through a `Value` first.
    let payment = own_payment(services, &headers, &id, Access::Read).await?;
    Ok(Json(payment))
}

/// `GET /api/v1/payments/{id}/tracking`.
#[utoipa::path(
    get, path = "/api/v1/payments/{id}/tracking", tag = "payments",
    params(("id" = i64, Path, description = "Payment id")),
    responses(
        (status = 200, description = "The payment's timeline in time order", body = Tracking),
        (status = 400, description = "`invalid_request` (id not a number)", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_api_key`", body = ErrorBody),
        (status = 404, description = "`not_found`, also for another merchant's payment", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "payments.tracking", merchant_id = tracing::field::Empty, payment_id = tracing::field::Empty))]
pub async fn tracking(
    State(merchants): State<Arc<Merchants>>,
    State(payments): State<Arc<PaymentsService>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let services = (&*merchants, &payments.payments);
    let payment = own_payment(services, &headers, &id, Access::Read).await?;
    let events = payments.payments.timeline(payment.payment_id).await?;
    Ok(Json(
        json!({"payment_id": payment.payment_id, "payment_status": payment.status, "events": events}),
    ))
}

#[cfg(test)]
mod pagination_properties {
    use proptest::prelude::*;

    use super::*;

    fn params(page: &str, limit: &str) -> Vec<(String, String)> {
        vec![("page".into(), page.into()), ("limit".into(), limit.into())]
    }

    proptest! {
        /// Walking the pages while `has_next` says so visits every payment
        /// once, in order (the store's offset is `(page - 1) * limit`), and
        /// stops at the last page.
        #[test]
        fn the_pages_cover_every_payment_once(total in 0i64..5_000, limit in 1i64..=100) {
            let (mut seen, mut page) = (0i64, 1i64);
            loop {
                let offset = (page - 1) * limit;
                let on_page = (total - offset).clamp(0, limit);
                prop_assert_eq!(offset, seen, "page {} starts where the last ended", page);
                seen += on_page;
                if !has_next(page, limit, total) {
                    break;
                }
                prop_assert!(on_page == limit, "only the last page is short");
                page += 1;
            }
            prop_assert_eq!(seen, total);
            prop_assert!(page == 1 || (page - 1) * limit < total, "no empty page after the first");
        }

        /// Any text for either parameter is accepted exactly when it is a
        /// whole number in range, refused with a 400 naming it otherwise,
        /// and never panics.
        #[test]
        fn parameters_are_in_range_or_refused(page in "\\PC{0,12}|-?[0-9]{1,8}", limit in "\\PC{0,6}|-?[0-9]{1,4}") {
            let valid = |raw: &str, max: i64| raw.parse::<i64>().is_ok_and(|v| (1..=max).contains(&v));
            match ListQuery::parse(&params(&page, &limit)).map(|q| (q.page, q.limit)) {
                Ok((p, l)) => {
                    prop_assert!(valid(&page, 1_000_000) && valid(&limit, 100));
                    prop_assert_eq!((Ok(p), Ok(l)), (page.parse::<i64>(), limit.parse::<i64>()));
                }
                Err(ApiError::InvalidRequest { fields, .. }) => {
                    let named: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
                    prop_assert_eq!(named.contains(&"page"), !valid(&page, 1_000_000));
                    prop_assert_eq!(named.contains(&"limit"), !valid(&limit, 100));
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn missing_parameters_take_their_defaults() {
        let query = ListQuery::parse(&[]).unwrap();
        assert_eq!((query.page, query.limit, query.cursor), (1, 20, None));
        assert_eq!(query.filter, ListFilter::default());
    }

    fn named(params: &[(&str, &str)]) -> Vec<String> {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        match ListQuery::parse(&params) {
            Ok(q) => panic!("accepted: {q:?}"),
            Err(ApiError::InvalidRequest { fields, .. }) => {
                fields.into_iter().map(|f| f.field).collect()
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn filters_and_cursors_are_read_or_named() {
        let params: Vec<(String, String)> = [
            ("status", "PAYMENT_FINISHED"),
            ("order_id", "7"),
            ("provider", "stripe"),
            ("created_gte", "2026-12-01T00:00:00+01:00"),
            ("created_lt", "2026-12-02T00:00:00Z"),
            ("starting_after", "42"),
            ("limit", "5"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let query = ListQuery::parse(&params).unwrap();
        assert_eq!(query.filter.status, Some("PAYMENT_FINISHED"));
        assert_eq!(query.filter.order_id, Some(7));
        assert_eq!(query.filter.provider.as_deref(), Some("stripe"));
        assert_eq!(
            query.filter.created_gte.unwrap().to_rfc3339(),
            "2026-11-30T23:00:00+00:00"
        );
        assert_eq!(
            query.cursor,
            Some(Cursor::StartingAfter(PaymentId::new(42)))
        );
        assert_eq!(query.limit, 5);

        assert_eq!(named(&[("status", "finished")]), ["status"]);
        assert_eq!(
            named(&[("order_id", "0"), ("provider", "a b")]),
            ["order_id", "provider"]
        );
        assert_eq!(named(&[("created_lt", "yesterday")]), ["created_lt"]);
        assert_eq!(named(&[("created_gte", "2026-12-01")]), ["created_gte"]);
        assert_eq!(named(&[("starting_after", "1"), ("page", "2")]), ["page"]);
        assert_eq!(
            named(&[("starting_after", "1"), ("ending_before", "2")]),
            ["ending_before"]
        );
        assert_eq!(named(&[("ending_before", "-1")]), ["ending_before"]);
    }
}
