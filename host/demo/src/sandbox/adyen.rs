//! The part of Adyen's Checkout API (v71) the `adyen` adapter uses:
//! `POST /v71/payments` with a redirect payment method, behind `X-API-Key`,
//! as notes/adyen-wire.md describes it. A payment answers `RedirectShopper`
//! to the sandbox's hosted page, whose buttons send an `AUTHORISATION`
//! notification ([`super::adyen_webhook`]). Refunds are
//! [`super::adyen_refunds`].

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

use super::ids::{ADYEN_PAYMENTS, psp_reference};
use super::reply::{idempotency_header, is_currency, redirect_url};
use super::store::{AdyenPayment, Opened, Order, Payment, Sandbox};

/// Adyen's longest idempotency key.
const MAX_KEY: usize = 64;
/// Adyen's longest `reference`, and the longest merchant account name or
/// payment method type the sandbox takes.
pub(crate) const MAX_REFERENCE: usize = 80;
/// The longest `merchantOrderReference`.
const MAX_ORDER_REFERENCE: usize = 1000;
/// Most `metadata` entries Adyen takes, and its longest key and value (in
/// characters).
const MAX_METADATA: usize = 20;
const MAX_METADATA_KEY: usize = 20;
const MAX_METADATA_VALUE: usize = 80;

/// A refused request, answered with Adyen's error body. The error codes are
/// the sandbox's choice; the adapter reads the HTTP status.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    code: &'static str,
    kind: &'static str,
    message: String,
}

impl Refusal {
    /// 422: the request is well formed HTTP but its content is not valid.
    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code,
            kind: "validation",
            message: message.into(),
        }
    }

    /// 401: no `X-API-Key`, or not the sandbox's.
    fn unauthorised() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "000",
            kind: "security",
            message: "Unauthorized: send the account's API key in X-API-Key".into(),
        }
    }

    /// 503: the sandbox's memory is full.
    pub(crate) fn full() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "000",
            kind: "internal",
            message: "The sandbox holds too many payments and refunds; restart it.".into(),
        }
    }

    /// 422: the idempotency key came with another request before.
    pub(crate) fn key_reused() -> Self {
        Self::invalid(
            "704",
            "This Idempotency-Key was used with a different request.",
        )
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut body = json!({
            "status": self.status.as_u16(),
            "errorCode": self.code,
            "message": self.message,
            "errorType": self.kind,
        });
        // Adyen names a request it looked at; a refused key gets nothing.
        if self.status != StatusCode::UNAUTHORIZED {
            body["pspReference"] = Value::from(psp_reference());
        }
        (self.status, axum::Json(body)).into_response()
    }
}

/// `POST /v71/payments`.
pub(crate) async fn create(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    open(&sandbox, &headers, &body).unwrap_or_else(IntoResponse::into_response)
}

fn open(sandbox: &Sandbox, headers: &HeaderMap, body: &[u8]) -> Result<Response, Refusal> {
    let key = checked(sandbox, headers)?;
    let (account, order) = parse(body)?;
    let payment = match sandbox.open(
        ADYEN_PAYMENTS,
        Some(&account),
        key.as_deref(),
        Order::Adyen(order),
    ) {
        Opened::New(payment) => {
            tracing::info!(psp_reference = %payment.id, "sandbox adyen payment opened");
            payment
        }
        // Adyen answers a repeated key with the first response.
        Opened::Replayed(payment) => payment,
        Opened::Conflict => return Err(Refusal::key_reused()),
        Opened::Full => return Err(Refusal::full()),
    };
    Ok(with_key(answer(sandbox, &payment), key.as_deref()))
}

/// The API key and the idempotency key of a request: the first must be
/// the sandbox's, the second at most [`MAX_KEY`] characters.
pub(crate) fn checked(sandbox: &Sandbox, headers: &HeaderMap) -> Result<Option<String>, Refusal> {
    let expected = sandbox.settings().adyen_api_key.expose().as_bytes();
    let given = headers.get("x-api-key").map(HeaderValue::as_bytes);
    // Compared in constant time; an unset sandbox key opens nothing.
    let known =
        given.is_some_and(|given| !expected.is_empty() && bool::from(given.ct_eq(expected)));
    if !known {
        return Err(Refusal::unauthorised());
    }
    let key = idempotency_header(headers).map_err(|message| Refusal::invalid("702", message))?;
    if key.as_ref().is_some_and(|k| k.len() > MAX_KEY) {
        return Err(Refusal::invalid(
            "702",
            format!("Idempotency-Key is longer than {MAX_KEY} characters."),
        ));
    }
    Ok(key)
}

/// `response` with the `Idempotency-Key` it was asked with, as Adyen
/// returns it.
pub(crate) fn with_key(mut response: Response, key: Option<&str>) -> Response {
    if let Some(value) = key.and_then(|k| HeaderValue::from_str(k).ok()) {
        response.headers_mut().insert("idempotency-key", value);
    }
    response
}

/// Adyen's answer to a redirect payment method: send the shopper to the
/// payment page.
fn answer(sandbox: &Sandbox, payment: &Payment) -> Response {
    let Order::Adyen(order) = &payment.order else {
        return Refusal::invalid("702", "Not an Adyen payment.").into_response();
    };
    axum::Json(json!({
        "resultCode": "RedirectShopper",
        "pspReference": payment.id,
        "merchantReference": order.reference,
        "amount": {"value": order.value, "currency": order.currency},
        "action": {
            "type": "redirect",
            "method": "GET",
            "url": sandbox.payment_url(&payment.id),
            "paymentMethodType": order.method,
        },
    }))
    .into_response()
}

/// The merchant account and the payment a request body asks for.
fn parse(body: &[u8]) -> Result<(String, AdyenPayment), Refusal> {
    let object = object_of(body)?;
    let account = merchant_account(&object)?;
    let reference = short_text(&object, "reference", MAX_REFERENCE)?;
    let (value, currency) = amount(&object)?;
    let method = match object.get("paymentMethod") {
        Some(Value::Object(method)) => short_text(method, "type", MAX_REFERENCE).map_err(|_| {
            Refusal::invalid(
                "702",
                "Required field 'paymentMethod.type' is not provided.",
            )
        })?,
        _ => {
            return Err(Refusal::invalid(
                "702",
                "Required field 'paymentMethod' is not provided.",
            ));
        }
    };
    let return_url = match object.get("returnUrl") {
        Some(Value::String(url)) => {
            redirect_url("returnUrl", url).map_err(|message| Refusal::invalid("702", message))?
        }
        _ => {
            return Err(Refusal::invalid(
                "702",
                "Required field 'returnUrl' is not provided.",
            ));
        }
    };
    match object.get("channel") {
        None | Some(Value::Null) => {}
        Some(Value::String(channel)) if ["Web", "iOS", "Android"].contains(&channel.as_str()) => {}
        Some(_) => {
            return Err(Refusal::invalid(
                "702",
                "channel must be one of Web, iOS, Android.",
            ));
        }
    }
    let order_reference = match object.get("merchantOrderReference") {
        None | Some(Value::Null) => None,
        Some(_) => Some(short_text(
            &object,
            "merchantOrderReference",
            MAX_ORDER_REFERENCE,
        )?),
    };
    let metadata = metadata(&object)?;
    let order = AdyenPayment {
        reference,
        value,
        currency,
        method,
        return_url,
        order_reference,
        metadata,
    };
    Ok((account, order))
}

/// The body as a JSON object.
pub(crate) fn object_of(body: &[u8]) -> Result<Map<String, Value>, Refusal> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(Refusal::invalid("702", "The body must be a JSON object.")),
    }
}

/// `merchantAccount`: any account name is the sandbox's.
pub(crate) fn merchant_account(object: &Map<String, Value>) -> Result<String, Refusal> {
    short_text(object, "merchantAccount", MAX_REFERENCE)
        .map_err(|_| Refusal::invalid("901", "Invalid Merchant Account"))
}

/// A non-empty string of at most `max` characters, without control
/// characters.
pub(crate) fn short_text(
    object: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<String, Refusal> {
    match object.get(field) {
        Some(Value::String(text))
            if !text.trim().is_empty()
                && text.chars().count() <= max
                && !text.chars().any(char::is_control) =>
        {
            Ok(text.clone())
        }
        Some(_) => Err(Refusal::invalid(
            "702",
            format!("Field '{field}' must be a string of 1 to {max} characters."),
        )),
        None => Err(Refusal::invalid(
            "702",
            format!("Required field '{field}' is not provided."),
        )),
    }
}

/// `amount`: `value` in minor units above zero, and a currency code.
pub(crate) fn amount(object: &Map<String, Value>) -> Result<(u64, String), Refusal> {
    let Some(Value::Object(amount)) = object.get("amount") else {
        return Err(Refusal::invalid("100", "No amount specified"));
    };
    let value = amount
        .get("value")
        .and_then(Value::as_u64)
        .filter(|v| *v > 0 && i64::try_from(*v).is_ok())
        .ok_or_else(|| Refusal::invalid("137", "Invalid amount specified"))?;
    let currency = match amount.get("currency") {
        Some(Value::String(code)) if is_currency(code) => code.to_ascii_uppercase(),
        _ => return Err(Refusal::invalid("702", "Invalid currency specified")),
    };
    Ok((value, currency))
}

/// `metadata`: at most [`MAX_METADATA`] string values, keys of at most
/// [`MAX_METADATA_KEY`] characters and values of at most
/// [`MAX_METADATA_VALUE`].
fn metadata(object: &Map<String, Value>) -> Result<BTreeMap<String, String>, Refusal> {
    let refused = || {
        Refusal::invalid(
            "702",
            format!(
                "metadata must be an object of at most {MAX_METADATA} strings, keys of at most \
                 {MAX_METADATA_KEY} characters, values of at most {MAX_METADATA_VALUE}."
            ),
        )
    };
    match object.get("metadata") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(pairs)) if pairs.len() <= MAX_METADATA => pairs
            .iter()
            .map(|(k, v)| match v {
                Value::String(v)
                    if k.chars().count() <= MAX_METADATA_KEY
                        && v.chars().count() <= MAX_METADATA_VALUE =>
                {
                    Ok((k.clone(), v.clone()))
                }
                _ => Err(refused()),
            })
            .collect(),
        Some(_) => Err(refused()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Value {
        json!({"merchantAccount": "PaygateDemo", "reference": "42",
               "amount": {"value": 1000, "currency": "EUR"},
               "paymentMethod": {"type": "ideal"}, "returnUrl": "https://shop.example/return",
               "channel": "Web", "merchantOrderReference": "1042",
               "metadata": {"order": "A-1"}})
    }

    fn refused(body: &Value) -> String {
        parse(body.to_string().as_bytes()).unwrap_err().message
    }

    #[test]
    fn reads_the_wire_formats_payment() {
        let (account, order) = parse(body().to_string().as_bytes()).unwrap();
        assert_eq!(account, "PaygateDemo");
        assert_eq!((order.value, order.currency.as_str()), (1000, "EUR"));
        assert_eq!(order.method, "ideal");
        assert_eq!(order.order_reference.as_deref(), Some("1042"));
        assert_eq!(order.metadata["order"], "A-1");
    }

    #[test]
    fn names_what_is_wrong() {
        let without = |field: &str| {
            let mut body = body();
            body.as_object_mut().unwrap().remove(field);
            body
        };
        assert!(refused(&without("returnUrl")).contains("returnUrl"));
        assert!(refused(&without("reference")).contains("reference"));
        assert!(refused(&without("paymentMethod")).contains("paymentMethod"));
        assert!(refused(&without("merchantAccount")).contains("Merchant Account"));
        assert!(refused(&without("amount")).contains("amount"));
        let mut zero = body();
        zero["amount"]["value"] = json!(0);
        assert!(refused(&zero).contains("amount"));
        let mut decimal = body();
        decimal["amount"]["value"] = json!(10.5);
        assert!(refused(&decimal).contains("amount"));
        let mut script = body();
        script["returnUrl"] = json!("javascript:alert(1)");
        assert!(refused(&script).contains("returnUrl"));
        assert!(parse(b"[1]").unwrap_err().message.contains("JSON object"));
    }

    #[test]
    fn refuses_metadata_beyond_adyens_limits() {
        let with = |metadata: Value| {
            let mut body = body();
            body["metadata"] = metadata;
            body
        };
        let many: Map<String, Value> = (0..21).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(refused(&with(Value::Object(many))).contains("metadata"));
        assert!(refused(&with(json!({"a".repeat(21): "v"}))).contains("metadata"));
        assert!(refused(&with(json!({"k": "x".repeat(81)}))).contains("metadata"));
        assert!(refused(&with(json!({"k": 1}))).contains("metadata"));
        // The limits are characters: 20 two-byte letters are a key Adyen takes.
        let (_, order) = parse(
            with(json!({"é".repeat(20): "ü".repeat(80)}))
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(order.metadata[&"é".repeat(20)], "ü".repeat(80));
    }
}
