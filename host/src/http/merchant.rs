//! `/api/v1/merchant`: the calling merchant's own settings, and the
//! rotation of its webhook secret and API keys (API.md, "The merchant's
//! own settings").

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Map, Value, json};

use super::auth::{Access, Target, authenticate};
use super::error::{ApiError, FieldError};
#[allow(unused_imports)] // named by the OpenAPI annotations
use super::openapi::{ErrorBody, GraceBody, MerchantPatch, RotatedKeysBody, RotatedSecretBody};
use crate::merchants::{
    MAX_GRACE, Merchant, Merchants, Settings, SettingsChange, WEBHOOK_SECRET_GRACE,
    check_callback_url,
};
use crate::payments::RedirectUrl;

/// The fields `PATCH /api/v1/merchant` changes.
const SETTABLE: [&str; 3] = ["callback_url", "default_return_url", "default_cancel_url"];

/// `GET /api/v1/merchant`.
#[utoipa::path(
    get, path = "/api/v1/merchant", tag = "merchant",
    responses(
        (status = 200, description = "The calling merchant's settings; no secret", body = Settings),
        (status = 401, description = "`unauthorized`, `invalid_api_key`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "merchant.show", merchant_id = tracing::field::Empty))]
pub async fn show(
    State(merchants): State<Arc<Merchants>>,
    headers: HeaderMap,
) -> Result<Json<Settings>, ApiError> {
    let merchant = authenticate(&merchants, &headers, Access::Read).await?;
    let settings = merchants.store.settings(merchant.id).await?;
    Ok(Json(settings.ok_or(ApiError::InvalidApiKey)?))
}

/// `PATCH /api/v1/merchant`.
#[utoipa::path(
    patch, path = "/api/v1/merchant", tag = "merchant",
    request_body = MerchantPatch,
    responses(
        (status = 200, description = "The settings after the change", body = Settings),
        (status = 400, description = "`invalid_request`: a URL breaks its rules, a field is not a setting", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_api_key`", body = ErrorBody),
        (status = 403, description = "`forbidden` (read-only key, signed writes missing), `invalid_signature`, `signature_expired`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "merchant.update", merchant_id = tracing::field::Empty))]
pub async fn update(
    State(merchants): State<Arc<Merchants>>,
    target: Target,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Settings>, ApiError> {
    let merchant = authenticate(&merchants, &headers, target.write(&body)).await?;
    let change = parse_change(&object(&body)?, &merchants)?;
    if !merchants
        .store
        .change_settings(merchant.id, &change)
        .await?
    {
        return Err(ApiError::InvalidApiKey);
    }
    // The default URLs ride on the cached merchant: this replica uses the
    // new ones at once.
    merchants.forget(merchant.id);
    let settings = merchants.store.settings(merchant.id).await?;
    Ok(Json(settings.ok_or(ApiError::InvalidApiKey)?))
}

/// `POST /api/v1/merchant/webhook-secret/rotate`.
#[utoipa::path(
    post, path = "/api/v1/merchant/webhook-secret/rotate", tag = "merchant",
    request_body(content = GraceBody, description = "Optional; the old secret signs too for `grace_seconds` (default 86400)"),
    responses(
        (status = 200, description = "The new secret, shown this once", body = RotatedSecretBody),
        (status = 400, description = "`invalid_request`: `grace_seconds` not an integer from 0 to 604800", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_api_key`", body = ErrorBody),
        (status = 403, description = "`forbidden` (read-only key, signed writes missing), `invalid_signature`, `signature_expired`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "merchant.rotate_webhook_secret", merchant_id = tracing::field::Empty))]
pub async fn rotate_webhook_secret(
    State(merchants): State<Arc<Merchants>>,
    target: Target,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (merchant, grace) =
        rotation(&merchants, &target, &headers, &body, WEBHOOK_SECRET_GRACE).await?;
    let rotated = (merchants.store.rotate_webhook_secret(merchant.id, grace))
        .await?
        .ok_or(ApiError::InvalidApiKey)?;
    tracing::info!(
        merchant_id = merchant.id.get(),
        grace_seconds = grace.as_secs(),
        "webhook secret rotated"
    );
    Ok(Json(json!({
        "webhook_secret": rotated.webhook_secret.expose(),
        "previous_expires_at": rfc3339(rotated.previous_expires_at),
    })))
}

/// `POST /api/v1/merchant/api-keys/rotate`.
#[utoipa::path(
    post, path = "/api/v1/merchant/api-keys/rotate", tag = "merchant",
    request_body(content = GraceBody, description = "Optional; the old keys work for `grace_seconds` (default 0)"),
    responses(
        (status = 200, description = "The new keys, shown this once", body = RotatedKeysBody),
        (status = 400, description = "`invalid_request`: `grace_seconds` not an integer from 0 to 604800", body = ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_api_key`", body = ErrorBody),
        (status = 403, description = "`forbidden` (read-only key, signed writes missing), `invalid_signature`, `signature_expired`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "merchant.rotate_api_keys", merchant_id = tracing::field::Empty))]
pub async fn rotate_api_keys(
    State(merchants): State<Arc<Merchants>>,
    target: Target,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (merchant, grace) = rotation(&merchants, &target, &headers, &body, Duration::ZERO).await?;
    let rotated = (merchants.store.rotate_keys(merchant.id, grace))
        .await?
        .ok_or(ApiError::InvalidApiKey)?;
    if grace.is_zero() {
        // This replica stops trusting the old keys now; the others within
        // the cache's few seconds.
        merchants.forget(merchant.id);
    }
    tracing::info!(
        merchant_id = merchant.id.get(),
        grace_seconds = grace.as_secs(),
        "API keys rotated"
    );
    Ok(Json(json!({
        "api_key": rotated.api_key.expose(),
        "read_api_key": rotated.read_api_key.expose(),
        "previous_expires_at": rfc3339(rotated.previous_expires_at),
    })))
}

/// A rotation's caller, allowed to write, and its grace period
/// (`default` when the body names none).
async fn rotation(
    merchants: &Merchants,
    target: &Target,
    headers: &HeaderMap,
    body: &[u8],
    default: Duration,
) -> Result<(Merchant, Duration), ApiError> {
    let merchant = authenticate(merchants, headers, target.write(body)).await?;
    Ok((merchant, grace(&object(body)?, default)?))
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The body as a JSON object; an empty body is an empty object.
pub(super) fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::malformed("the body must be a JSON object")),
        Err(e) => Err(ApiError::malformed(format!("malformed JSON: {e}"))),
    }
}

/// `grace_seconds`: an integer from 0 to [`MAX_GRACE`]; `default` without it.
fn grace(body: &Map<String, Value>, default: Duration) -> Result<Duration, ApiError> {
    let mut errors = Vec::new();
    for name in body.keys().filter(|k| *k != "grace_seconds") {
        errors.push(FieldError::new(
            name.as_str(),
            "is not a field of this request",
        ));
    }
    let grace = match body.get("grace_seconds") {
        None | Some(Value::Null) => Some(default),
        Some(value) => match value.as_u64() {
            Some(n) if n <= MAX_GRACE.as_secs() => Some(Duration::from_secs(n)),
            _ => {
                let max = MAX_GRACE.as_secs();
                errors.push(FieldError::new(
                    "grace_seconds",
                    format!("must be an integer from 0 to {max}"),
                ));
                None
            }
        },
    };
    match grace {
        Some(grace) if errors.is_empty() => Ok(grace),
        _ => Err(ApiError::fields(errors)),
    }
}

/// Validates a settings change, naming every bad field at once: a field
/// that is not a setting, a URL that breaks its rules (return and cancel
/// URLs as a payment's, the callback URL as notifications need it).
fn parse_change(
    body: &Map<String, Value>,
    merchants: &Merchants,
) -> Result<SettingsChange, ApiError> {
    let policy = merchants.url_policy;
    let mut errors = Vec::new();
    for name in body.keys().filter(|k| !SETTABLE.contains(&k.as_str())) {
        let settable = SETTABLE.join(", ");
        errors.push(FieldError::new(
            name.as_str(),
            format!("is not a setting; settings are {settable}"),
        ));
    }
    let mut url =
        |field: &str, check: &dyn Fn(&str) -> Result<String, String>| match body.get(field) {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) => match check(s) {
                Ok(url) => Some(Some(url)),
                Err(m) => {
                    errors.push(FieldError::new(field, m));
                    None
                }
            },
            Some(_) => {
                errors.push(FieldError::new(field, "must be a string or null"));
                None
            }
        };
    let redirect =
        |s: &str| RedirectUrl::parse(s, policy.allow_http).map(|u| u.as_str().to_owned());
    let callback = |s: &str| check_callback_url(s, policy);
    let change = SettingsChange {
        callback_url: url("callback_url", &callback),
        default_return_url: url("default_return_url", &redirect),
        default_cancel_url: url("default_cancel_url", &redirect),
        ..SettingsChange::default()
    };
    if errors.is_empty() {
        Ok(change)
    } else {
        Err(ApiError::fields(errors))
    }
}
