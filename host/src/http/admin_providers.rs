//! The admin API's provider accounts per merchant (API.md, "Admin API"):
//! `PUT`, `GET` and `DELETE /admin/v1/merchants/{id}/providers/{alias}`.
//! What is stored and audited of secrets is their names: values are sealed
//! on the way in and never come back out of this API.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::admin::Operations;
use super::admin_merchants::{audit, fail, id_of, unknown_fields};
use super::error::ApiError;
use super::merchant::object;
#[allow(unused_imports)] // named by the OpenAPI annotations
use super::openapi::ErrorBody;
use crate::audit::Action;
use crate::ids::MerchantId;
use crate::merchants::AccountView;
use crate::plugins::Secret;

/// Settings of each kind an account holds at most.
const MAX_ENTRIES: usize = 50;
/// A setting's name: 1 to 64 of `A-Z a-z 0-9 - _ .`.
const MAX_NAME: usize = 64;
const MAX_CONFIG_VALUE: usize = 2048;
const MAX_SECRET_VALUE: usize = 4096;

/// The merchant (it must exist) and the alias (it must be bound to a
/// provider adapter) of a route, or 404.
async fn target(ops: &Operations, id: &str, alias: &str) -> Result<MerchantId, ApiError> {
    let id = MerchantId::new(id_of(id)?);
    if ops.merchants.store.record(id).await?.is_none()
        || ops.payments.providers.get(alias).await?.is_none()
    {
        return Err(ApiError::NotFound);
    }
    Ok(id)
}

/// Writes a change of the merchant's account at `alias` to the audit log:
/// the account before and after as operators see it, secrets by name.
async fn audit_account(
    ops: &Operations,
    action: &str,
    id: MerchantId,
    alias: &str,
    before: Option<&AccountView>,
    after: Option<&AccountView>,
) -> Result<(), ApiError> {
    let json = |view: &AccountView| serde_json::to_value(view).expect("a view serializes");
    let action = Action {
        actor: &ops.actor,
        action,
        target: format!("merchant:{id}/provider:{alias}"),
        before: before.map(json),
        after: after.map(json),
    };
    audit(ops, action).await
}

/// `PUT /admin/v1/merchants/{id}/providers/{alias}` `{"config", "secrets"}`.
#[utoipa::path(
    put, path = "/admin/v1/merchants/{id}/providers/{alias}", tag = "merchants",
    request_body = AccountBody,
    params(
        ("id" = i64, Path, minimum = 1, description = "Merchant id"),
        ("alias" = String, Path, description = "A bound provider alias, e.g. `stripe`"),
    ),
    responses(
        (status = 200, description = "The account: its config, and its secrets by name only", body = AccountView),
        (status = 400, description = "`invalid_request`: `config` or `secrets` (names, values, counts) or a field that is not one", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no or another admin token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such merchant, or no such alias", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`, also when the audit log could not be written after the change", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "admin.providers.put"))]
pub async fn put(
    State(ops): State<Operations>,
    Path((id, alias)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<AccountView>, ApiError> {
    let body = object(&body)?;
    let (config, secrets) = parse_account(&body)?;
    let id = target(&ops, &id, &alias).await?;
    let accounts = &ops.merchants.store.accounts;
    let before = accounts.view(id, &alias).await?;
    let after = accounts.put(id, &alias, &config, &secrets).await?;
    tracing::info!(merchant_id = id.get(), %alias, secrets = ?after.secrets, "merchant provider account set");
    let action = "merchant.provider.put";
    audit_account(&ops, action, id, &alias, before.as_ref(), Some(&after)).await?;
    Ok(Json(after))
}

type Settings<T> = BTreeMap<String, T>;

fn parse_account(
    body: &Map<String, Value>,
) -> Result<(Settings<String>, Settings<Secret>), ApiError> {
    let mut errors = unknown_fields(body, &["config", "secrets"]);
    let config = settings(body.get("config"), "config", MAX_CONFIG_VALUE, &mut errors);
    let secrets = settings(
        body.get("secrets"),
        "secrets",
        MAX_SECRET_VALUE,
        &mut errors,
    );
    match (config, secrets) {
        (Some(config), Some(secrets)) if errors.is_empty() => Ok((
            config,
            (secrets.into_iter())
                .map(|(name, value)| (name, Secret::new(value)))
                .collect(),
        )),
        _ => Err(ApiError::fields(errors)),
    }
}

/// An object of at most [`MAX_ENTRIES`] names to strings of 1 to `max`
/// characters, none of them control characters; absent or null is none.
fn settings(
    value: Option<&Value>,
    field: &str,
    max: usize,
    errors: &mut Vec<super::error::FieldError>,
) -> Option<Settings<String>> {
    let object = match value {
        None | Some(Value::Null) => return Some(Settings::new()),
        Some(Value::Object(object)) => object,
        Some(_) => return fail(errors, field, "must be an object of names to strings"),
    };
    if object.len() > MAX_ENTRIES {
        return fail(
            errors,
            field,
            &format!("has more than {MAX_ENTRIES} entries"),
        );
    }
    let mut out = Settings::new();
    for (name, value) in object {
        let name_ok = (1..=MAX_NAME).contains(&name.len())
            && (name.bytes()).all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return fail(
                errors,
                field,
                &format!("names are 1 to {MAX_NAME} of A-Z, a-z, 0-9, '-', '_' and '.'"),
            );
        }
        match value {
            Value::String(s)
                if (1..=max).contains(&s.chars().count()) && !s.chars().any(char::is_control) =>
            {
                out.insert(name.clone(), s.clone());
            }
            _ => {
                return fail(
                    errors,
                    field,
                    &format!(
                        "{name:?} must be a string of 1 to {max} characters, none of them control characters"
                    ),
                );
            }
        }
    }
    Some(out)
}

/// `GET /admin/v1/merchants/{id}/providers/{alias}`.
#[utoipa::path(
    get, path = "/admin/v1/merchants/{id}/providers/{alias}", tag = "merchants",
    params(
        ("id" = i64, Path, minimum = 1, description = "Merchant id"),
        ("alias" = String, Path, description = "A bound provider alias"),
    ),
    responses(
        (status = 200, description = "The account: its config, and its secrets by name only", body = AccountView),
        (status = 401, description = "`unauthorized`: no or another admin token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such merchant or alias, or the merchant has no account there", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "admin.providers.show"))]
pub async fn show(
    State(ops): State<Operations>,
    Path((id, alias)): Path<(String, String)>,
) -> Result<Json<AccountView>, ApiError> {
    let id = target(&ops, &id, &alias).await?;
    let view = ops.merchants.store.accounts.view(id, &alias).await?;
    Ok(Json(view.ok_or(ApiError::NotFound)?))
}

/// `DELETE /admin/v1/merchants/{id}/providers/{alias}`: the merchant's
/// calls on the alias use its shared account again.
#[utoipa::path(
    delete, path = "/admin/v1/merchants/{id}/providers/{alias}", tag = "merchants",
    params(
        ("id" = i64, Path, minimum = 1, description = "Merchant id"),
        ("alias" = String, Path, description = "A bound provider alias"),
    ),
    responses(
        (status = 204, description = "Removed; the alias's shared account serves the merchant again"),
        (status = 401, description = "`unauthorized`: no or another admin token", body = ErrorBody),
        (status = 404, description = "`not_found`: no such merchant or alias, or the merchant has no account there", body = ErrorBody),
        (status = 503, description = "`service_unavailable`, also when the audit log could not be written after the change", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "admin.providers.delete"))]
pub async fn delete(
    State(ops): State<Operations>,
    Path((id, alias)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = target(&ops, &id, &alias).await?;
    let accounts = &ops.merchants.store.accounts;
    let before = accounts.view(id, &alias).await?;
    if !accounts.delete(id, &alias).await? {
        return Err(ApiError::NotFound);
    }
    audit_account(
        &ops,
        "merchant.provider.delete",
        id,
        &alias,
        before.as_ref(),
        None,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /admin/v1/merchants/{id}/providers/{alias}` body.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AccountBody {
    /// Plain settings of the alias's adapter, e.g. `{"base-url": "…"}`: each
    /// replaces the alias's own for this merchant's calls.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// Secrets, e.g. `{"secret-key": "sk_live_…"}`: sealed at rest, never
    /// shown again.
    #[schema(value_type = Option<Object>)]
    pub secrets: Option<Value>,
}
