//! The admin API's notifications across merchants (API.md, "Admin API"):
//! list them by status (the failed ones, dead letters, by default) and
//! queue failed ones again, in bulk or one by one. Replays are admin
//! actions and go to the audit log.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::admin::Operations;
use super::admin_merchants::{Page, audit, fail, id_of, page_of, unknown_fields};
use super::error::ApiError;
use super::merchant::object;
#[allow(unused_imports)] // named by the OpenAPI annotations
use super::openapi::ErrorBody;
use crate::audit::Action;
use crate::ids::{MerchantId, OutboxId};
use crate::outbox::{Listed, Listing, Replay};

/// The statuses a notification can be listed by.
const STATUSES: [&str; 5] = [
    "LOG_PENDING",
    "LOG_PROCESSING",
    "LOG_RETRYING",
    "LOG_SUCCESS",
    "LOG_FAILED",
];

/// `?status&merchant_id&limit&starting_after`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationsQuery {
    /// `LOG_FAILED` (the default), `LOG_PENDING`, `LOG_PROCESSING`,
    /// `LOG_RETRYING` or `LOG_SUCCESS`.
    status: Option<String>,
    /// Only this merchant's.
    #[param(value_type = Option<i64>, minimum = 1)]
    merchant_id: Option<String>,
    /// At most this many (1 to 100, default 20).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// Only those older than this `notification_id`.
    #[param(value_type = Option<i64>, minimum = 1)]
    starting_after: Option<String>,
}

/// `GET /admin/v1/notifications`: newest first.
#[utoipa::path(
    get, path = "/admin/v1/notifications", tag = "notifications",
    params(NotificationsQuery),
    responses(
        (status = 200, description = "Notifications in that status, newest first, each with its latest attempt", body = NotificationList),
        (status = 400, description = "`invalid_request`: `status`, `merchant_id`, `limit` or `starting_after`", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no or another admin token", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "admin.notifications.list"))]
pub async fn list(
    State(ops): State<Operations>,
    Query(query): Query<NotificationsQuery>,
) -> Result<Json<Value>, ApiError> {
    let page = Page {
        limit: query.limit,
        starting_after: query.starting_after,
    };
    let mut errors = Vec::new();
    let status = match query.status.as_deref() {
        None => Some("LOG_FAILED"),
        Some(s) => match STATUSES.iter().find(|known| **known == s) {
            Some(known) => Some(*known),
            None => fail(
                &mut errors,
                "status",
                &format!("must be one of {}", STATUSES.join(", ")),
            ),
        },
    };
    let merchant_id = match query.merchant_id.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) if n > 0 => Some(MerchantId::new(n)),
        Some(_) => fail(&mut errors, "merchant_id", "must be a positive integer"),
    };
    let (limit, after) = page.parse_into(&mut errors);
    let Some(status) = status.filter(|_| errors.is_empty()) else {
        return Err(ApiError::fields(errors));
    };
    let listed = ops
        .outbox
        .listed(Listing {
            status,
            merchant_id,
            before: after.map(OutboxId::new),
            limit: limit + 1,
        })
        .await?;
    let (notifications, has_more) = page_of(listed, limit);
    Ok(Json(
        json!({"notifications": notifications, "has_more": has_more}),
    ))
}

/// `POST /admin/v1/notifications/retry` `{"merchant_id", "since"}`, both
/// optional: queues every failed notification in that scope again.
#[utoipa::path(
    post, path = "/admin/v1/notifications/retry", tag = "notifications", request_body = ReplayBody,
    responses(
        (status = 202, description = "How many failed notifications were queued for one more attempt each, same `event_id`", body = QueuedCount),
        (status = 400, description = "`invalid_request`: `merchant_id`, `since`, or a field that is not one", body = ErrorBody),
        (status = 401, description = "`unauthorized`: no or another admin token", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`, also when the audit log could not be written after the replay", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[tracing::instrument(
    name = "handler",
    skip_all,
    fields(route = "admin.notifications.replay")
)]
pub async fn replay(
    State(ops): State<Operations>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = object(&body)?;
    let scope = parse_replay(&body)?;
    let queued = ops.outbox.retry_all_failed(scope).await?;
    let target = match scope.merchant_id {
        Some(id) => format!("notifications:merchant:{id}"),
        None => "notifications".to_owned(),
    };
    audit(
        &ops,
        Action {
            actor: &ops.actor,
            action: "notifications.replay",
            target,
            before: Some(Value::Object(body)),
            after: Some(json!({"queued": queued})),
        },
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"queued": queued}))))
}

fn parse_replay(body: &Map<String, Value>) -> Result<Replay, ApiError> {
    let mut errors = unknown_fields(body, &["merchant_id", "since"]);
    let merchant_id = match body.get("merchant_id") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(n) if n > 0 => Some(MerchantId::new(n)),
            _ => fail(&mut errors, "merchant_id", "must be a positive integer"),
        },
    };
    let since = match body.get("since") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(_) => fail(&mut errors, "since", "must be an RFC 3339 time"),
        },
        Some(_) => fail(&mut errors, "since", "must be an RFC 3339 time"),
    };
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    Ok(Replay { merchant_id, since })
}

/// `POST /admin/v1/notifications/{id}/retry`: one failed notification
/// again (the console's **Retry** of a row).
#[utoipa::path(
    post, path = "/admin/v1/notifications/{id}/retry", tag = "notifications",
    params(("id" = i64, Path, minimum = 1, description = "The notification's `notification_id`")),
    responses(
        (status = 202, description = "Queued for one more attempt, same `event_id`", body = QueuedCount),
        (status = 401, description = "`unauthorized`: no or another admin token", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`nothing_to_retry`: the notification has not failed", body = ErrorBody),
        (status = 503, description = "`service_unavailable`, also when the audit log could not be written after the retry", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
#[tracing::instrument(
    name = "handler",
    skip_all,
    fields(route = "admin.notifications.retry")
)]
pub async fn retry(
    State(ops): State<Operations>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = OutboxId::new(id_of(&id)?);
    let queued = (ops.outbox.retry_one(id).await?).ok_or(ApiError::NotFound)?;
    if queued == 0 {
        return Err(ApiError::NothingToRetry("this notification has not failed"));
    }
    audit(
        &ops,
        Action {
            actor: &ops.actor,
            action: "notification.retry",
            target: format!("notification:{id}"),
            before: None,
            after: Some(json!({"queued": queued})),
        },
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"queued": queued}))))
}

/// `POST /admin/v1/notifications/retry` body.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ReplayBody {
    /// Only this merchant's failed notifications.
    pub merchant_id: Option<i64>,
    /// RFC 3339: only notifications of events from then on.
    pub since: Option<String>,
}

/// How many notifications were queued.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct QueuedCount {
    pub queued: i64,
}

/// A page of notifications, newest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct NotificationList {
    pub notifications: Vec<Listed>,
    pub has_more: bool,
}
