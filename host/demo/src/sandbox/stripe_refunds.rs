//! Stripe's Refunds, as the `stripe` adapter uses them:
//! `POST /v1/refunds` (form-encoded, a paid session's `payment_intent`,
//! `amount` in minor units) and `GET /v1/refunds/{id}`, behind a bearer
//! key. The test prices of [`super::refunds`] apply: minor units ending in
//! `13` are refused (402, `card_error`), `42` stays pending a second and
//! is then announced by a signed `refund.updated`, `43` likewise without
//! the webhook.

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::checkout::{account, intent_of_session, no_key, session_of_intent};
use super::ids::Ids;
use super::refunds::{Script, scripted, succeed_later_if_pending};
use super::reply::{idempotency_header, stripe_error};
use super::store::{Asked, RefundOutcome, Refunded, Sandbox, SandboxRefund, exponent};

/// Prefix of Stripe refund ids.
const STRIPE_REFUND_PREFIX: &str = "re_test_";

const INVALID: &str = "invalid_request_error";

/// `POST /v1/refunds`.
pub(crate) async fn create(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Some(account) = account(&headers) else {
        return no_key();
    };
    let params = match form {
        Ok(Form(params)) => params,
        Err(rejection) => {
            return stripe_error(rejection.status(), INVALID, rejection.body_text(), None);
        }
    };
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(session) = param("payment_intent").and_then(session_of_intent) else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            INVALID,
            "No such payment_intent",
            Some("payment_intent"),
        );
    };
    let mine = |p: &super::store::Payment| p.account.as_deref() == Some(account.as_str());
    let Some(paid) = sandbox.get(&session).filter(mine) else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            INVALID,
            "No such payment_intent",
            Some("payment_intent"),
        );
    };
    let currency = match &paid.order {
        super::store::Order::Session(s) => s.currency.to_ascii_uppercase(),
        super::store::Order::Link(_) | super::store::Order::Adyen(_) => {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                INVALID,
                "No such payment_intent",
                Some("payment_intent"),
            );
        }
    };
    let Some(minor) = param("amount")
        .and_then(|a| a.parse::<u64>().ok())
        .filter(|a| *a > 0)
    else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            INVALID,
            "Invalid positive integer",
            Some("amount"),
        );
    };
    let price = Decimal::new(minor as i64, exponent(&currency));
    let refund_id = param("metadata[paygate_refund_id]")
        .and_then(|id| id.parse().ok())
        .unwrap_or(0);
    let key = match idempotency_header(&headers) {
        Ok(key) => key,
        Err(message) => return stripe_error(StatusCode::BAD_REQUEST, INVALID, message, None),
    };
    let Script { outcome, announced } = scripted(price, &currency).unwrap_or(Script {
        outcome: RefundOutcome::Succeeded,
        announced: true,
    });
    if outcome == RefundOutcome::Failed {
        return stripe_error(
            StatusCode::PAYMENT_REQUIRED,
            "card_error",
            "The refund was declined (test amount ending in 13).",
            Some("amount"),
        );
    }
    let asked = Asked {
        ids: Ids::Prefixed(STRIPE_REFUND_PREFIX),
        account: Some(&account),
        key: key.as_deref(),
        refund_id,
        reference: None,
        price,
        currency: &currency,
        outcome,
    };
    match sandbox.refund(&session, asked) {
        Refunded::New(refund) => {
            tracing::info!(refund = %refund.id, session = %session, "sandbox stripe refund taken");
            succeed_later_if_pending(&sandbox, &refund, announced);
            axum::Json(refund_json(&refund)).into_response()
        }
        Refunded::Replayed(refund) => {
            let mut response = axum::Json(refund_json(&refund)).into_response();
            let replayed = header::HeaderValue::from_static("true");
            response
                .headers_mut()
                .insert("idempotent-replayed", replayed);
            response
        }
        Refunded::Conflict => stripe_error(
            StatusCode::BAD_REQUEST,
            "idempotency_error",
            "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            None,
        ),
        Refunded::NoSuchPayment | Refunded::WrongCurrency => stripe_error(
            StatusCode::BAD_REQUEST,
            INVALID,
            "No such payment_intent",
            Some("payment_intent"),
        ),
        Refunded::NotPaid => stripe_error(
            StatusCode::BAD_REQUEST,
            INVALID,
            "This PaymentIntent does not have a successful charge to refund.",
            Some("payment_intent"),
        ),
        Refunded::TooMuch { left } => stripe_error(
            StatusCode::BAD_REQUEST,
            INVALID,
            format!("Refund amount is greater than unrefunded amount on charge ({left})."),
            Some("amount"),
        ),
        Refunded::Full => stripe_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "The sandbox holds too many refunds; restart it.",
            None,
        ),
    }
}

/// `GET /v1/refunds/{id}`.
pub(crate) async fn show(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(account) = account(&headers) else {
        return no_key();
    };
    let mine = |r: &SandboxRefund| r.account.as_deref() == Some(account.as_str());
    match id
        .ok()
        .and_then(|Path(id)| sandbox.get_refund(&id))
        .filter(mine)
    {
        Some(refund) => axum::Json(refund_json(&refund)).into_response(),
        None => stripe_error(StatusCode::NOT_FOUND, INVALID, "No such refund", Some("id")),
    }
}

/// A refund as Stripe shows it: the amount in minor units.
pub(crate) fn refund_json(refund: &SandboxRefund) -> Value {
    let status = match refund.outcome {
        RefundOutcome::Pending => "pending",
        RefundOutcome::Succeeded => "succeeded",
        RefundOutcome::Failed => "failed",
    };
    let minor = refund.price * Decimal::from(10u64.pow(exponent(&refund.currency)));
    json!({
        "id": refund.id,
        "object": "refund",
        "amount": minor.trunc().to_string().parse::<u64>().unwrap_or(0),
        "currency": refund.currency.to_ascii_lowercase(),
        "payment_intent": intent_of_session(&refund.payment),
        "status": status,
        "metadata": {"paygate_refund_id": refund.refund_id.to_string()},
    })
}
