//! The subset of Stripe Checkout the `stripe` adapter plugin uses:
//! `POST /v1/checkout/sessions` (form-encoded) and
//! `GET /v1/checkout/sessions/{id}`, both behind a bearer key.

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::reply::{idempotency_header, stripe_error};
use sha2::Digest;

use super::ids::{Ids, SESSION_PREFIX};
use super::store::{Opened, Order, Outcome, Payment, Sandbox};
use super::stripe_form::parse;

const INVALID: &str = "invalid_request_error";

/// `POST /v1/checkout/sessions`.
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
    let session = match parse(&params) {
        Ok(session) => session,
        Err((message, param)) => {
            return stripe_error(StatusCode::BAD_REQUEST, INVALID, message, param);
        }
    };
    let key = match idempotency_header(&headers) {
        Ok(key) => key,
        Err(message) => return stripe_error(StatusCode::BAD_REQUEST, INVALID, message, None),
    };
    match sandbox.open(
        Ids::Prefixed(SESSION_PREFIX),
        Some(&account),
        key.as_deref(),
        Order::Session(session),
    ) {
        Opened::New(payment) => {
            tracing::info!(session = %payment.id, "sandbox checkout session opened");
            found(&sandbox, &payment)
        }
        Opened::Replayed(payment) => {
            let mut response = found(&sandbox, &payment);
            let replayed = header::HeaderValue::from_static("true");
            response
                .headers_mut()
                .insert("idempotent-replayed", replayed);
            response
        }
        Opened::Conflict => stripe_error(
            StatusCode::BAD_REQUEST,
            "idempotency_error",
            "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            None,
        ),
        Opened::Full => stripe_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "The sandbox holds too many sessions; restart it.",
            None,
        ),
    }
}

/// `GET /v1/checkout/sessions/{id}`.
pub(crate) async fn show(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(account) = account(&headers) else {
        return no_key();
    };
    // Another account's session is as good as none, as at Stripe.
    let mine = |p: &Payment| p.account.as_deref() == Some(account.as_str());
    match id.ok().and_then(|Path(id)| sandbox.get(&id)).filter(mine) {
        Some(payment) if matches!(payment.order, Order::Session(_)) => found(&sandbox, &payment),
        _ => stripe_error(
            StatusCode::NOT_FOUND,
            INVALID,
            "No such checkout.session",
            Some("id"),
        ),
    }
}

/// The session as Stripe shows it, `Null` for a payment of the link API.
/// Webhook events embed the same object.
pub(crate) fn session_json(sandbox: &Sandbox, payment: &Payment) -> Value {
    let Order::Session(session) = &payment.order else {
        return Value::Null;
    };
    let (status, payment_status) = match payment.outcome {
        Outcome::Pending => ("open", "unpaid"),
        Outcome::Finished => ("complete", "paid"),
        Outcome::Failed => ("expired", "unpaid"),
    };
    json!({
        "id": payment.id,
        "object": "checkout.session",
        "url": sandbox.payment_url(&payment.id),
        "status": status,
        "payment_status": payment_status,
        "mode": "payment",
        "livemode": false,
        "created": payment.created,
        "client_reference_id": session.client_reference_id,
        "payment_intent": payment_intent(payment),
        "amount_total": session.amount_total,
        "currency": session.currency,
        "metadata": session.metadata,
        "success_url": session.success_url,
        "cancel_url": session.cancel_url,
    })
}

fn found(sandbox: &Sandbox, payment: &Payment) -> Response {
    axum::Json(session_json(sandbox, payment)).into_response()
}

/// The PaymentIntent of a paid session, named after it; `null` before.
fn payment_intent(payment: &Payment) -> Option<String> {
    (payment.outcome == Outcome::Finished).then(|| intent_of_session(&payment.id))
}

/// The PaymentIntent id of session `id`.
pub(crate) fn intent_of_session(id: &str) -> String {
    format!("{INTENT_PREFIX}{}", id.trim_start_matches(SESSION_PREFIX))
}

/// The session a PaymentIntent id of [`payment_intent`] names.
pub(crate) fn session_of_intent(intent: &str) -> Option<String> {
    intent
        .strip_prefix(INTENT_PREFIX)
        .map(|tail| format!("{SESSION_PREFIX}{tail}"))
}

const INTENT_PREFIX: &str = "pi_test_";

/// The account a request's `Authorization: Bearer` key names; `None`
/// without a usable one (answer [`no_key`]). Any non-empty key is
/// accepted, and each key is its own account: what one key opened another
/// cannot see, as two Stripe accounts cannot. The account is a digest of
/// the key; the key itself is not kept.
pub(crate) fn account(headers: &HeaderMap) -> Option<String> {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .filter(|key| !key.is_empty())?;
    let digest = sha2::Sha256::digest(key.as_bytes());
    Some(format!("acct_{}", hex::encode(&digest[..8])))
}

/// Stripe's answer to a request without a usable `Authorization: Bearer`.
pub(crate) fn no_key() -> Response {
    stripe_error(
        StatusCode::UNAUTHORIZED,
        INVALID,
        "You did not provide an API key. Send it as 'Authorization: Bearer <key>'.",
        None,
    )
}
