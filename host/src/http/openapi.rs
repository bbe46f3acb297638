//! The OpenAPI document, generated from the handlers' annotations and the
//! response types themselves, and Swagger UI served from paygate's own
//! binary (no CDN).

use axum::Router;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

use super::AppState;
use super::error::FieldError;
use crate::outbox::{Attempt, NotificationStatus};
use crate::payments::store::{Payment, TimelineEvent};

/// The API's document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "paygate",
        description = "Merchant API of paygate: create, list, show and track payments. Every error is \
                       {\"error\", \"message\", \"request_id\"} with a stable code; field errors add \"fields\".",
        version = "0.1.0"
    ),
    paths(
        super::payments::create,
        super::payments::list,
        super::payments::show,
        super::payments::tracking,
        super::notifications::list,
        super::notifications::retry,
        super::refunds::create,
        super::refunds::list,
        super::refunds::show,
        super::merchant::show,
        super::merchant::update,
        super::merchant::rotate_webhook_secret,
        super::merchant::rotate_api_keys,
        super::webhooks::internal,
        super::webhooks::for_alias,
        super::health::health,
        super::health::readyz,
        super::health::livez,
    ),
    components(schemas(crate::merchants::Settings, crate::merchants::SubscriptionUse, MerchantPatch, GraceBody, RotatedSecretBody, RotatedKeysBody, crate::payments::PaymentStatus, crate::payments::refunds::RefundStatusName, RefundReasonName, RefundBody, RefundList, crate::payments::refunds::Refund, ErrorBody, FieldError, CreatePaymentBody, CreatedBody, Payment, PaymentPage, PaymentCursorPage, PaymentList, TimelineEvent, Tracking, Notifications, NotificationStatus, Attempt, Queued)),
    modifiers(&KeyAuth),
    tags(
        (name = "payments", description = "Payments of the calling merchant"),
        (name = "refunds", description = "Money given back on the calling merchant's finished payments"),
        (name = "merchant", description = "The calling merchant's own settings, webhook secret and API keys"),
        (name = "webhooks", description = "Payment events from providers, signature-checked by verifier plugins")
    )
)]
pub struct ApiDoc;

struct KeyAuth;

impl Modify for KeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
    }
}

/// `/openapi.json` and Swagger UI at `/docs`.
pub fn routes() -> Router<AppState> {
    Router::from(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}

/// Every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable code, e.g. `invalid_request`, `order_exists`.
    pub error: String,
    pub message: String,
    pub request_id: String,
    /// Field errors (400 `invalid_request` on fields only).
    pub fields: Option<Vec<FieldError>>,
    /// The existing payment (409 `order_exists`) or the failed one (502).
    pub payment_id: Option<i64>,
}

/// `POST /api/v1/payments` body.
#[derive(Serialize, ToSchema)]
pub struct CreatePaymentBody {
    /// The merchant's order number, unique per merchant.
    #[schema(minimum = 1)]
    pub order_id: i64,
    /// Quantity bought: a JSON number or string, > 0, ≤ 999999999999.99999999, at most 8
    /// decimal places, read exactly as written.
    #[schema(value_type = String, example = "1", pattern = r"^[0-9]{1,12}(\.[0-9]{1,8})?$")]
    pub amount: String,
    /// Total charged: a JSON number or string, > 0, ≤ 999999999999.99999999, read exactly as
    /// written, with at most as many decimal places as the currency's minor unit (EUR 2, JPY 0,
    /// KWD 3).
    #[schema(value_type = String, example = "10.00", pattern = r"^[0-9]{1,12}(\.[0-9]{1,8})?$")]
    pub price: String,
    /// Provider alias, e.g. `stripe`.
    #[schema(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$", max_length = 64)]
    pub alias: String,
    #[schema(minimum = 1)]
    pub subscription_id: i64,
    /// Idempotency key when no `Idempotency-Key` header is sent: 1 to 255 visible ASCII characters.
    #[schema(min_length = 1, max_length = 255, pattern = r"^[!-~]+$")]
    pub event_id: Option<String>,
    /// An active ISO 4217 code with a minor unit (case-insensitive); the merchant's default otherwise.
    #[schema(pattern = r"^[A-Za-z]{3}$", example = "EUR")]
    pub currency: Option<String>,
    /// Where the provider sends the buyer after paying: an absolute `https://` URL (`http://`
    /// only for a loopback host, or under `serve --demo`), at most 2,048 characters, without
    /// credentials. Without it, the alias's configured URL.
    #[schema(
        max_length = 2048,
        pattern = r"^https?://[!-~]+$",
        example = "https://shop.example/orders/123"
    )]
    pub return_url: Option<String>,
    /// Where the provider sends a buyer who cancels or is declined; rules as for `return_url`.
    #[schema(max_length = 2048, pattern = r"^https?://[!-~]+$")]
    pub cancel_url: Option<String>,
    /// The merchant's key/value pairs: at most 20 keys of 1–40 characters, each value a string
    /// of at most 500 characters, none holding U+0000. Passed to the provider, echoed in the
    /// payment and in its notifications.
    #[schema(schema_with = metadata_schema)]
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
}

/// `metadata`'s rules as schema keywords, so a generated client checks them.
fn metadata_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::{ObjectBuilder, Type};
    // U+0000 is refused: PostgreSQL's text and jsonb cannot store it.
    let text = |min: usize, max: usize| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(min))
            .max_length(Some(max))
            .pattern(Some(r"^[^\u0000]*$"))
    };
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .max_properties(Some(crate::payments::Metadata::MAX_KEYS))
        .property_names(Some(text(1, crate::payments::Metadata::MAX_KEY_CHARS)))
        .additional_properties(Some(text(0, crate::payments::Metadata::MAX_VALUE_CHARS)))
        .build()
}

/// `POST /api/v1/payments/{id}/refunds` body; every field optional.
#[derive(Serialize, ToSchema)]
pub struct RefundBody {
    /// The amount to give back: a JSON number or string, > 0, at most what is left to refund
    /// (the price less succeeded and pending refunds), no finer than the currency's minor
    /// unit. Default: what is left.
    #[schema(value_type = Option<String>, example = "2.50", pattern = r"^[0-9]{1,12}(\.[0-9]{1,8})?$")]
    pub price: Option<String>,
    #[schema(value_type = Option<RefundReasonName>)]
    pub reason: Option<String>,
}

/// `PATCH /api/v1/merchant` body: any of the fields; null clears one.
#[derive(Serialize, ToSchema)]
pub struct MerchantPatch {
    /// Where notifications go: an absolute `https://` URL of at most 2,048 characters, not on
    /// a loopback or private address (unless the host allows them).
    #[schema(example = "https://shop.example/paygate/notifications")]
    pub callback_url: Option<String>,
    /// Where buyers go after paying when a payment names no `return_url`: a payment's URL rules.
    #[schema(example = "https://shop.example/thanks")]
    pub default_return_url: Option<String>,
    /// Where buyers go after cancelling when a payment names no `cancel_url`.
    #[schema(example = "https://shop.example/cart")]
    pub default_cancel_url: Option<String>,
}

/// A rotation's body; optional.
#[derive(Serialize, ToSchema)]
pub struct GraceBody {
    /// How long the replaced secret or keys keep working, 0 to 604800 seconds.
    #[schema(minimum = 0, maximum = 604800, example = 86400)]
    pub grace_seconds: Option<u32>,
}

/// A new webhook secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct RotatedSecretBody {
    /// `whsec_` and base64; notifications are signed with it from now on.
    pub webhook_secret: String,
    /// Until then notifications carry a second signature, with the replaced secret.
    #[schema(format = DateTime)]
    pub previous_expires_at: String,
}

/// New API keys, shown this once.
#[derive(Serialize, ToSchema)]
pub struct RotatedKeysBody {
    pub api_key: String,
    pub read_api_key: String,
    /// Until then the replaced keys work too.
    #[schema(format = DateTime)]
    pub previous_expires_at: String,
}

/// Why money goes back.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundReasonName {
    RequestedByCustomer,
    Duplicate,
    Fraudulent,
}

/// A payment's refunds, oldest first.
#[derive(Serialize, ToSchema)]
pub struct RefundList {
    pub payment_id: i64,
    pub refunds: Vec<crate::payments::refunds::Refund>,
}

/// A created payment.
#[derive(Serialize, ToSchema)]
pub struct CreatedBody {
    pub payment_id: i64,
    pub status: crate::payments::PaymentStatus,
    pub payment_url: String,
}

/// A page of payments, newest first.
#[derive(Serialize, ToSchema)]
pub struct PaymentPage {
    pub page: i64,
    pub limit: i64,
    pub total: i64,
    pub has_next: bool,
    pub items: Vec<Payment>,
}

/// The payments on one side of a cursor, newest first.
#[derive(Serialize, ToSchema)]
pub struct PaymentCursorPage {
    pub limit: i64,
    /// More payments lie beyond, in the cursor's direction.
    pub has_more: bool,
    pub items: Vec<Payment>,
}

/// A list of payments: a page, or with `starting_after` / `ending_before`
/// the cursor form.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum PaymentList {
    Page(PaymentPage),
    Cursor(PaymentCursorPage),
}

/// A payment's timeline.
#[derive(Serialize, ToSchema)]
pub struct Tracking {
    pub payment_id: i64,
    pub payment_status: crate::payments::PaymentStatus,
    pub events: Vec<TimelineEvent>,
}

/// A payment's merchant notifications.
#[derive(Serialize, ToSchema)]
pub struct Notifications {
    pub payment_id: i64,
    pub notifications: Vec<NotificationStatus>,
}

/// A notification queued again.
#[derive(Serialize, ToSchema)]
pub struct Queued {
    #[schema(example = "queued")]
    pub status: String,
}
