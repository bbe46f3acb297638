//! The admin API's merchants and audit log (API.md, "Admin API"): create,
//! list, show and change merchants, add tokens to a subscription, and list
//! what was done. Every change is written to the audit log with the
//! merchant before and after it, no secret in either.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::admin::Operations;
use super::error::{ApiError, FieldError};
use super::merchant::object;
#[allow(unused_imports)] // named by the OpenAPI annotations
use super::openapi::ErrorBody;
use crate::audit::{Action, AuditEntry};
use crate::ids::{MerchantId, SubscriptionId};
use crate::merchants::{
    MerchantRecord, NewMerchant, SettingsChange, SubscriptionUse, check_callback_url,
};
use crate::payments::Currency;

/// The most tokens one call adds, and a new merchant starts with.
const MAX_TOKENS: i64 = 1_000_000_000;
/// A page of merchants or audit entries: at most this many.
const MAX_LIMIT: i64 = 100;

/// `?limit&starting_after` of a list, newest first.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// At most this many (1 to 100, default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub(super) limit: Option<String>,
    /// Only those older than this id.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub(super) starting_after: Option<String>,
}

/// The first `limit` of `items` (fetched one more than the limit), and
/// whether there were more.
pub(super) fn page_of<T>(mut items: Vec<T>, limit: i64) -> (Vec<T>, bool) {
    let has_more = items.len() > limit as usize;
    items.truncate(limit as usize);
    (items, has_more)
}

impl Page {
    /// The limit (1 to 100, default 20) and the cursor, or a 400 naming them.
    pub(super) fn parse(&self) -> Result<(i64, Option<i64>), ApiError> {
        let mut errors = Vec::new();
        let parsed = self.parse_into(&mut errors);
        if errors.is_empty() {
            Ok(parsed)
        } else {
            Err(ApiError::fields(errors))
        }
    }

    /// [`Page::parse`] adding its errors to those of other parameters.
    pub(super) fn parse_into(&self, errors: &mut Vec<FieldError>) -> (i64, Option<i64>) {
        let limit = match self.limit.as_deref().map(str::parse::<i64>) {
            None => 20,
            Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
            Some(_) => {
                errors.push(FieldError::new("limit", "must be an integer from 1 to 100"));
                0
            }
        };
        let after = match self.starting_after.as_deref().map(str::parse::<i64>) {
            None => None,
            Some(Ok(n)) if n > 0 => Some(n),
            Some(_) => fail(errors, "starting_after", "must be a positive integer"),
        };
        (limit, after)
    }
}

pub(super) fn id_of(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(ApiError::NotFound)
}

/// Writes one action to the audit log. The change is made already: if it
/// cannot be written the operator is told to look (503) and the entry is
/// logged in full instead, so no action goes unrecorded.
pub(super) async fn audit(ops: &Operations, action: Action<'_>) -> Result<(), ApiError> {
    if let Err(error) = ops.audit.record(&action).await {
        let json = |v: &Option<Value>| v.as_ref().map_or("null".into(), Value::to_string);
        let entry = format!(
            "{} {} by {}: {} -> {}",
            action.action,
            action.target,
            action.actor,
            json(&action.before),
            json(&action.after),
        );
        tracing::error!(%error, %entry, "admin action done but not written to the audit log");
        return Err(ApiError::ServiceUnavailable(
            "the action was done, but the audit log could not be written".into(),
        ));
    }
    Ok(())
}

fn record_json(record: &MerchantRecord) -> Value {
    serde_json::to_value(record).expect("a record serializes")
}

/// `POST /admin/v1/merchants`: the CLI's fields; answers the CLI's JSON,
/// the one time the keys and secrets are shown.
#[utoipa::path(
    post, path = "/admin/v1/merchants", tag = "merchants", request_body = NewMerchantBody,
    responses(
        (status = 200, description = "The merchant with its keys and secrets, shown this once", body = Object),
        (status = 400, description = "`invalid_request`: a field is wrong or unknown", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no or another admin token", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`, also when the audit log could not be written after the change", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "admin.merchants.create"))]
pub async fn create(State(ops): State<Operations>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let new = parse_new(&object(&body)?, &ops)?;
    let created = ops.merchants.store.create(&new).await?;
    let record = ops.merchants.store.record(created.merchant_id).await?;
    audit(
        &ops,
        Action {
            actor: &ops.actor,
            action: "merchant.create",
            target: format!("merchant:{}", created.merchant_id),
            before: None,
            after: record.as_ref().map(record_json),
        },
    )
    .await?;
    Ok(Json(json!(created)))
}

fn parse_new(body: &Map<String, Value>, ops: &Operations) -> Result<NewMerchant, ApiError> {
    let known = [
        "name",
        "callback_url",
        "tokens",
        "currency",
        "require_signed_writes",
    ];
    let mut errors = unknown_fields(body, &known);
    let name = match body.get("name") {
        Some(Value::String(s)) => check_name(s, &mut errors),
        Some(_) => fail(&mut errors, "name", "must be a string"),
        None => fail(&mut errors, "name", "is required"),
    };
    let callback_url = match body.get("callback_url") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => check_callback_url(s, ops.merchants.url_policy)
            .map_err(|m| errors.push(FieldError::new("callback_url", m)))
            .ok(),
        Some(_) => fail(&mut errors, "callback_url", "must be a string or null"),
    };
    let tokens = match body.get("tokens") {
        None => Some(1000),
        Some(v) => match v.as_i64() {
            Some(n) if (0..=MAX_TOKENS).contains(&n) => Some(n),
            _ => fail(
                &mut errors,
                "tokens",
                "must be an integer from 0 to 1000000000",
            ),
        },
    };
    let currency = match body.get("currency") {
        None => Some("EUR".to_owned()),
        Some(Value::String(s)) => Currency::parse(s)
            .map(|c| c.to_string())
            .map_err(|m| errors.push(FieldError::new("currency", m)))
            .ok(),
        Some(_) => fail(&mut errors, "currency", "must be a string"),
    };
    let signed = match body.get("require_signed_writes") {
        None => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => fail(
            &mut errors,
            "require_signed_writes",
            "must be true or false",
        ),
    };
    match (name, tokens, currency, signed) {
        (Some(name), Some(tokens), Some(currency), Some(require_signed_writes))
            if errors.is_empty() =>
        {
            Ok(NewMerchant {
                name,
                callback_url,
                tokens,
                currency,
                require_signed_writes,
            })
        }
        _ => Err(ApiError::fields(errors)),
    }
}

pub(super) fn unknown_fields(body: &Map<String, Value>, known: &[&str]) -> Vec<FieldError> {
    (body.keys())
        .filter(|k| !known.contains(&k.as_str()))
        .map(|k| {
            FieldError::new(
                k.as_str(),
                format!("is not a field; fields are {}", known.join(", ")),
            )
        })
        .collect()
}

pub(super) fn fail<T>(errors: &mut Vec<FieldError>, field: &str, message: &str) -> Option<T> {
    errors.push(FieldError::new(field, message));
    None
}

fn check_name(name: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    let chars = name.chars().count();
    if (1..=200).contains(&chars) && !name.chars().any(char::is_control) {
        Some(name.to_owned())
    } else {
        fail(
            errors,
            "name",
            "must be 1 to 200 characters, none of them control characters",
        )
    }
}

/// `GET /admin/v1/merchants?limit&starting_after`: newest first.
#[utoipa::path(
    get, path = "/admin/v1/merchants", tag = "merchants",
    params(Page),
    responses(
        (status = 200, description = "Merchants, newest first; no secret", body = MerchantList),
        (status = 400, description = "`invalid_request`: `limit` or `starting_after`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no or another admin token", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "admin.merchants.list"))]
pub async fn list(
    State(ops): State<Operations>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let (limit, after) = page.parse()?;
    let records = (ops.merchants.store)
        .records(limit + 1, after.map(MerchantId::new))
        .await?;
    let (merchants, has_more) = page_of(records, limit);
    Ok(Json(json!({"merchants": merchants, "has_more": has_more})))
}

/// `GET /admin/v1/merchants/{id}`: no secret.
#[utoipa::path(
    get, path = "/admin/v1/merchants/{id}", tag = "merchants",
    params(("id" = i64, Path, minimum = 1, description = "Merchant id")),
    responses(
        (status = 200, description = "The merchant; no secret", body = MerchantRecord),
        (status = 401, description = "`unauthorized`: no or another admin token", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "admin.merchants.show"))]
pub async fn show(
    State(ops): State<Operations>,
    Path(id): Path<String>,
) -> Result<Json<MerchantRecord>, ApiError> {
    let id = MerchantId::new(id_of(&id)?);
    let record = ops.merchants.store.record(id).await?;
    Ok(Json(record.ok_or(ApiError::NotFound)?))
}

/// `PATCH /admin/v1/merchants/{id}`: `name`, `callback_url`, `disabled`.
#[utoipa::path(
    patch, path = "/admin/v1/merchants/{id}", tag = "merchants", request_body = MerchantUpdateBody,
    params(("id" = i64, Path, minimum = 1, description = "Merchant id")),
    responses(
        (status = 200, description = "The merchant after the change", body = MerchantRecord),
        (status = 400, description = "`invalid_request`: a field is wrong or unknown", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no or another admin token", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`, also when the audit log could not be written after the change", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "admin.merchants.update"))]
pub async fn update(
    State(ops): State<Operations>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<MerchantRecord>, ApiError> {
    let id = MerchantId::new(id_of(&id)?);
    let change = parse_update(&object(&body)?, &ops)?;
    let before = ops
        .merchants
        .store
        .record(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if !ops.merchants.store.change_settings(id, &change).await? {
        return Err(ApiError::NotFound);
    }
    let after = ops
        .merchants
        .store
        .record(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    // This replica stops serving a disabled merchant at once; the others
    // within the key cache's few seconds.
    ops.merchants.forget(id);
    audit(
        &ops,
        Action {
            actor: &ops.actor,
            action: "merchant.update",
            target: format!("merchant:{id}"),
            before: Some(record_json(&before)),
            after: Some(record_json(&after)),
        },
    )
    .await?;
    Ok(Json(after))
}

fn parse_update(body: &Map<String, Value>, ops: &Operations) -> Result<SettingsChange, ApiError> {
    let mut errors = unknown_fields(body, &["name", "callback_url", "disabled"]);
    let name = match body.get("name") {
        None => None,
        Some(Value::String(s)) => check_name(s, &mut errors),
        Some(_) => fail(&mut errors, "name", "must be a string"),
    };
    let callback_url = match body.get("callback_url") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => check_callback_url(s, ops.merchants.url_policy)
            .map(Some)
            .map_err(|m| errors.push(FieldError::new("callback_url", m)))
            .ok(),
        Some(_) => fail(&mut errors, "callback_url", "must be a string or null"),
    };
    let disabled = match body.get("disabled") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => fail(&mut errors, "disabled", "must be true or false"),
    };
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    Ok(SettingsChange {
        callback_url,
        name,
        disabled,
        ..SettingsChange::default()
    })
}

/// `POST /admin/v1/merchants/{id}/subscriptions/{sid}/tokens` `{"add": N}`.
#[utoipa::path(
    post, path = "/admin/v1/merchants/{id}/subscriptions/{sid}/tokens", tag = "merchants",
    request_body = TokensBody,
    params(
        ("id" = i64, Path, minimum = 1, description = "Merchant id"),
        ("sid" = i64, Path, minimum = 1, description = "One of the merchant's subscriptions"),
    ),
    responses(
        (status = 200, description = "The subscription after the change", body = SubscriptionUse),
        (status = 400, description = "`invalid_request`: `add` not an integer from 1 to 10^9", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no or another admin token", body = ErrorBody),
        (status = 404, description = "`not_found`, also for another merchant's subscription", body = ErrorBody),
        (status = 503, description = "`service_unavailable`, also when the audit log could not be written after the change", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "admin.merchants.tokens"))]
pub async fn add_tokens(
    State(ops): State<Operations>,
    Path((id, sid)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (id, sid) = (
        MerchantId::new(id_of(&id)?),
        SubscriptionId::new(id_of(&sid)?),
    );
    let body = object(&body)?;
    let mut errors = unknown_fields(&body, &["add"]);
    let add = match body.get("add").and_then(Value::as_i64) {
        Some(n) if (1..=MAX_TOKENS).contains(&n) => n,
        _ => {
            errors.push(FieldError::new(
                "add",
                "must be an integer from 1 to 1000000000",
            ));
            0
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let before = ops
        .merchants
        .store
        .record(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let subscription =
        (ops.merchants.store.add_tokens(id, sid, add).await?).ok_or(ApiError::NotFound)?;
    let after = json!({"subscription": subscription, "added": add});
    let before_subscription = (before.settings.subscriptions.iter())
        .find(|s| s.subscription_id == sid)
        .map(|s| json!({"subscription": s}));
    audit(
        &ops,
        Action {
            actor: &ops.actor,
            action: "merchant.tokens.add",
            target: format!("merchant:{id}/subscription:{sid}"),
            before: before_subscription,
            after: Some(after),
        },
    )
    .await?;
    Ok(Json(json!(subscription)))
}

/// `GET /admin/v1/audit?limit&starting_after`: newest first.
#[utoipa::path(
    get, path = "/admin/v1/audit", tag = "audit",
    params(Page),
    responses(
        (status = 200, description = "Admin actions, newest first", body = AuditList),
        (status = 400, description = "`invalid_request`: `limit` or `starting_after`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no or another admin token", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "admin.audit"))]
pub async fn audit_log(
    State(ops): State<Operations>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let (limit, after) = page.parse()?;
    let (entries, has_more) = page_of(ops.audit.list(limit + 1, after).await?, limit);
    Ok(Json(json!({"entries": entries, "has_more": has_more})))
}

/// `POST /admin/v1/merchants` body.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct NewMerchantBody {
    /// 1 to 200 characters.
    pub name: String,
    /// Where notifications go (the merchant can change it itself).
    pub callback_url: Option<String>,
    /// The first subscription's tokens, 0 to 10^9 (default 1000).
    pub tokens: Option<i64>,
    /// An active ISO 4217 code (default EUR).
    pub currency: Option<String>,
    /// Writes must carry a `v2` signature (default false).
    pub require_signed_writes: Option<bool>,
}

/// `PATCH /admin/v1/merchants/{id}` body: any of the fields.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct MerchantUpdateBody {
    pub name: Option<String>,
    /// Null clears it.
    pub callback_url: Option<String>,
    /// A disabled merchant's keys get 401 `invalid_api_key`.
    pub disabled: Option<bool>,
}

/// `POST /admin/v1/merchants/{id}/subscriptions/{sid}/tokens` body.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TokensBody {
    /// 1 to 10^9.
    pub add: i64,
}

/// A page of merchants, newest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct MerchantList {
    pub merchants: Vec<MerchantRecord>,
    pub has_more: bool,
}

/// A page of the audit log, newest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
    pub has_more: bool,
}
