//! The original provider's payment-link API, as the `sandbox` adapter
//! plugin calls it: `POST /payment-links` and `GET /payment-links/{id}`.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::ids::{Ids, LINK_PREFIX};
use super::reply::{idempotency_header, idempotency_key, is_currency, link_error, redirect_url};
use super::store::{Link, Opened, Order, Outcome, Payment, Sandbox};

/// Longest decimal string accepted for `amount` and `price`.
const MAX_DECIMAL: usize = 40;
/// Most metadata keys a link keeps (paygate sends at most 20).
const MAX_METADATA: usize = 50;

/// `POST /payment-links`: opens a link, or returns the one the same
/// idempotency key (header first, then body field) opened.
pub(crate) async fn create(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (link, body_key) = match parse(&body) {
        Ok(parsed) => parsed,
        Err(message) => return link_error(StatusCode::BAD_REQUEST, message),
    };
    let key = match idempotency_header(&headers) {
        Ok(Some(key)) => Some(key),
        Ok(None) => body_key,
        Err(message) => return link_error(StatusCode::BAD_REQUEST, message),
    };
    match sandbox.open(
        Ids::Prefixed(LINK_PREFIX),
        None,
        key.as_deref(),
        Order::Link(link),
    ) {
        Opened::New(payment) => {
            tracing::info!(link = %payment.id, "sandbox payment link opened");
            (
                StatusCode::CREATED,
                axum::Json(link_json(&sandbox, &payment)),
            )
                .into_response()
        }
        Opened::Replayed(payment) => (
            StatusCode::CREATED,
            [("idempotent-replayed", "true")],
            axum::Json(link_json(&sandbox, &payment)),
        )
            .into_response(),
        Opened::Conflict => link_error(
            StatusCode::CONFLICT,
            "this idempotency key was used with a different request",
        ),
        Opened::Full => link_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the sandbox holds too many payments; restart it",
        ),
    }
}

/// `GET /payment-links/{id}`.
pub(crate) async fn show(
    State(sandbox): State<Sandbox>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let found = id.ok().and_then(|Path(id)| sandbox.get(&id));
    match found {
        Some(payment) if matches!(payment.order, Order::Link(_)) => {
            axum::Json(link_json(&sandbox, &payment)).into_response()
        }
        _ => link_error(StatusCode::NOT_FOUND, "no such payment link"),
    }
}

/// A link as the API shows it. The adapter reads `id`, `payment_url` and
/// `status`; the rest helps whoever looks at it by hand.
fn link_json(sandbox: &Sandbox, payment: &Payment) -> Value {
    let status = match payment.outcome {
        Outcome::Pending => "pending",
        Outcome::Finished => "finished",
        Outcome::Failed => "failed",
    };
    let mut body = json!({
        "id": payment.id,
        "object": "payment_link",
        "status": status,
        "payment_url": sandbox.payment_url(&payment.id),
    });
    if let Order::Link(link) = &payment.order {
        body["payment_id"] = link.payment_id.into();
        body["order_id"] = link.order_id.into();
        body["amount"] = link.amount.as_str().into();
        body["price"] = link.price.as_str().into();
        body["currency"] = link.currency.as_str().into();
        body["metadata"] = json!(link.metadata);
    }
    body
}

/// Reads and checks the request body; the error names the field.
fn parse(body: &[u8]) -> Result<(Link, Option<String>), String> {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return Err("the body must be a JSON object".into());
    };
    let currency = match object.get("currency") {
        Some(Value::String(code)) if is_currency(code) => code.to_ascii_uppercase(),
        _ => return Err("currency must be a three-letter ISO 4217 code".into()),
    };
    let key = match object.get("idempotency_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) => idempotency_key(key)?,
        Some(_) => return Err("idempotency_key must be a string".into()),
    };
    let url = |field: &str| match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(url)) => redirect_url(field, url).map(Some),
        Some(_) => Err(format!("{field} must be a string")),
    };
    let return_url = url("return_url")?;
    let cancel_url = url("cancel_url")?;
    let metadata = match object.get("metadata") {
        None | Some(Value::Null) => Default::default(),
        Some(Value::Object(pairs)) if pairs.len() <= MAX_METADATA => pairs
            .iter()
            .map(|(k, v)| match v {
                Value::String(v) => Ok((k.clone(), v.clone())),
                _ => Err("metadata values must be strings".to_owned()),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(format!(
                "metadata must be an object of at most {MAX_METADATA} strings"
            ));
        }
    };
    let link = Link {
        payment_id: whole_number(&object, "payment_id")?,
        merchant_id: whole_number(&object, "merchant_id")?,
        order_id: whole_number(&object, "order_id")?,
        amount: positive_decimal(&object, "amount")?,
        price: positive_decimal(&object, "price")?,
        currency,
        return_url,
        cancel_url,
        metadata,
    };
    Ok((link, key))
}

/// A non-negative integer, as a JSON number or a string of digits.
fn whole_number(object: &Map<String, Value>, field: &str) -> Result<u64, String> {
    let value = match object.get(field) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) if s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    };
    value.ok_or_else(|| format!("{field} must be a non-negative integer"))
}

/// A decimal above zero in plain notation (`10`, `10.50`), kept as text so
/// the page shows exactly what paygate sent.
fn positive_decimal(object: &Map<String, Value>, field: &str) -> Result<String, String> {
    let text = match object.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let well_formed = text.len() <= MAX_DECIMAL
        && match text.split_once('.') {
            Some((whole, fraction)) => digits(whole) && digits(fraction),
            None => digits(&text),
        };
    if well_formed && text.bytes().any(|b| matches!(b, b'1'..=b'9')) {
        Ok(text)
    } else {
        Err(format!(
            "{field} must be a decimal number above zero, such as \"10.00\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(value: Value) -> Result<String, String> {
        let object = json!({ "x": value });
        positive_decimal(object.as_object().unwrap(), "x")
    }

    #[test]
    fn accepts_plain_positive_decimals() {
        for ok in [json!("10.00"), json!("0.5"), json!(3), json!(2.5)] {
            assert!(field(ok.clone()).is_ok(), "{ok}");
        }
        for bad in [
            json!("0"),
            json!("0.00"),
            json!("-1"),
            json!("1."),
            json!(".5"),
            json!("1e3"),
            json!("1.2.3"),
            json!(""),
            json!(null),
            json!(true),
        ] {
            assert!(field(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_the_bad_field() {
        let body = br#"{"payment_id": 1, "merchant_id": 2, "order_id": -3, "amount": "1",
            "price": "10.00", "currency": "EUR"}"#;
        assert!(parse(body).unwrap_err().contains("order_id"));
        let body = br#"{"payment_id": 1, "merchant_id": 2, "order_id": 3, "amount": "1",
            "price": "10.00", "currency": "EUR", "return_url": "javascript:alert(1)"}"#;
        assert!(parse(body).unwrap_err().contains("return_url"));
        let body = br#"{"payment_id": 1, "merchant_id": 2, "order_id": 3, "amount": "1",
            "price": "10.00", "currency": "EUR", "cancel_url": "data:text/html,x"}"#;
        assert!(parse(body).unwrap_err().contains("cancel_url"));
        let body = br#"{"payment_id": 1, "merchant_id": 2, "order_id": 3, "amount": "1",
            "price": "10.00", "currency": "EUR", "metadata": {"a": 1}}"#;
        assert!(parse(body).unwrap_err().contains("metadata"));
        assert!(parse(b"[]").unwrap_err().contains("JSON object"));
    }
}
