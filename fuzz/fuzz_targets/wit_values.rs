//! The host's conversions between its own types and the WIT (bindgen)
//! values it hands plugins or gets back from them.
//!
//! - `CreatePayment` → `payment-request` (`provider_request`): ids kept,
//!   amounts print back to the same `Money`, and the provider-side
//!   idempotency key is scoped by merchant: it splits back into merchant id
//!   and key, and the derived one never looks like a merchant's.
//! - `payment-ref` / `event-status` → `PaymentLookup` / `PaymentStatus`: ids
//!   kept while they fit i64, otherwise a lookup no payment matches.
//! - an event's `money` (WIT 0.2.0) against the payment's price: accepted
//!   only when it is a plain decimal equal to the price in the same
//!   currency, and the price's own text always is.
//! - `decision` → `RateLimit-*` and `Retry-After`: numbers parse back, the
//!   reset and the wait are rounded up, never down.
//! - `provider-error` → the merchant's message: a misconfigured provider's
//!   own text never reaches the merchant.
//! - `LimitsSpec` → `Limits`: overrides applied, memory and HTTP timeout
//!   clamped.
//! - a webhook's `HeaderMap` → the `webhook-request` header pairs, and the
//!   guest's lookup of them: every value kept in order, and each name finds
//!   its first value whatever its case.
#![no_main]

use std::str::FromStr;
use std::time::Duration;

use arbitrary::Arbitrary;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use libfuzzer_sys::fuzz_target;
use paygate::http::error::ApiError;
use paygate::http::rate_limit::{add_headers, retry_after_secs};
use paygate::http::webhooks::header_pairs;
use paygate::payments::create::{CreatePayment, provider_message, provider_request};
use paygate::payments::webhook::{PaymentLookup, amount_mismatch};
use paygate::payments::{
    Alias, Currency, IdempotencyKey, Metadata, Money, PaymentStatus, RedirectUrl,
};
use paygate::plugins::bindings::{
    Decision, EventStatus, Money as WitMoney, PaymentRef, ProviderError,
};
use paygate::plugins::{Limits, MAX_MEMORY_BYTES};
use paygate::{MerchantId, OrderId, PaymentId, SubscriptionId};
use paygate_plugin_registry::LimitsSpec;
use rust_decimal::Decimal;

#[derive(Arbitrary, Debug)]
struct Input {
    payment: Payment,
    reference: Reference,
    status: u8,
    decision: DecisionFields,
    error: (u8, String),
    limits: Spec,
    headers: Vec<(String, Vec<u8>)>,
    reported: (String, String),
}

/// `allowed`, `limit`, `remaining`, `reset-ms`, `retry-after-ms`.
type DecisionFields = (bool, u32, u32, u64, Option<u64>);

/// The fields of a plugin's `[limits]`.
#[derive(Arbitrary, Debug)]
struct Spec {
    memory_mib: Option<u32>,
    timeout_ms: Option<u32>,
    fuel: Option<u64>,
    max_input_kib: Option<u32>,
    max_output_kib: Option<u32>,
    http_timeout_ms: Option<u32>,
    http_max_response_kib: Option<u32>,
}

#[derive(Arbitrary, Debug)]
struct Payment {
    payment_id: u64,
    merchant_id: u64,
    other_merchant_id: u64,
    order_id: u64,
    amount: (u64, u32),
    price: (u64, u32),
    alias: String,
    key: Option<String>,
    currency: [u8; 3],
}

#[derive(Arbitrary, Debug)]
enum Reference {
    Id(u64),
    Provider(String),
}

fuzz_target!(|input: Input| {
    payment_request(&input.payment);
    payment_ref(&input.reference, input.status);
    decision(input.decision);
    provider_error(input.error);
    limits(input.limits);
    webhook_headers(&input.headers);
    event_amount(input.payment.price, input.reported);
});

fn event_amount((whole, scale): (u64, u32), (value, currency): (String, String)) {
    let price = Decimal::new((whole % 1_000_000_000_000_000) as i64, scale % 12);
    let reported = WitMoney { value, currency };
    match amount_mismatch(&reported, &price, "EUR") {
        None => {
            assert_eq!(Decimal::from_str(&reported.value).ok(), Some(price));
            assert!(reported.currency.eq_ignore_ascii_case("EUR"));
            assert!(
                reported
                    .value
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.')
            );
        }
        Some(why) => assert!(why.chars().count() < 150, "{why}"),
    }
    let exact = WitMoney {
        value: price.to_string(),
        currency: "eur".into(),
    };
    assert_eq!(amount_mismatch(&exact, &price, "EUR"), None);
}

/// An id as the database hands it out: 1 to i64::MAX.
fn id(raw: u64) -> i64 {
    (raw % i64::MAX as u64) as i64 + 1
}

fn money((whole, fraction): (u64, u32)) -> Money {
    let text = format!(
        "{}.{:08}",
        whole % 1_000_000_000_000,
        fraction % 100_000_000
    );
    Money::parse(&text).unwrap_or_else(|_| Money::parse("1").unwrap())
}

fn payment_request(p: &Payment) {
    let (payment_id, merchant_id) = (
        PaymentId::new(id(p.payment_id)),
        MerchantId::new(id(p.merchant_id)),
    );
    let request = CreatePayment {
        order_id: OrderId::new(id(p.order_id)),
        amount: money(p.amount),
        price: money(p.price),
        alias: Alias::parse(&p.alias).unwrap_or_else(|_| Alias::parse("stripe").unwrap()),
        subscription_id: SubscriptionId::new(1),
        event_id: None,
        currency: Currency::parse(&String::from_utf8_lossy(&p.currency)).ok(),
        return_url: RedirectUrl::parse(&p.alias, true).ok(),
        cancel_url: None,
        metadata: Metadata::parse(&serde_json::json!({ "alias": p.alias })).unwrap_or_default(),
    };
    let currency = request.currency.map_or("EUR".into(), |c| c.to_string());
    let key = p.key.as_deref().and_then(|k| IdempotencyKey::parse(k).ok());
    let wit = provider_request(payment_id, merchant_id, &request, &currency, key.as_ref());
    assert_eq!(wit.payment_id, payment_id.get() as u64);
    assert_eq!(wit.merchant_id, merchant_id.get() as u64);
    assert_eq!(wit.order_id, request.order_id.get() as u64);
    assert_eq!(wit.currency, currency);
    assert_eq!(
        wit.return_url.as_deref(),
        request.return_url.as_ref().map(RedirectUrl::as_str)
    );
    assert_eq!(wit.cancel_url, None);
    assert_eq!(wit.metadata, request.metadata.pairs());
    for (text, money) in [(&wit.amount, request.amount), (&wit.price, request.price)] {
        let back = Money::parse(text).expect("the plugin gets a decimal paygate accepts");
        assert_eq!((back, back.to_string()), (money, money.to_string()));
    }
    match &key {
        Some(key) => {
            let (merchant, own) = wit.idempotency_key.split_once('-').expect("merchant-key");
            assert_eq!(
                (merchant, own),
                (merchant_id.to_string().as_str(), key.as_str())
            );
            let other = MerchantId::new(id(p.other_merchant_id));
            let theirs = provider_request(payment_id, other, &request, &currency, Some(key));
            assert_eq!(
                theirs.idempotency_key == wit.idempotency_key,
                other == merchant_id
            );
        }
        None => {
            assert_eq!(wit.idempotency_key, format!("paygate-payment-{payment_id}"));
            assert!(
                !wit.idempotency_key
                    .starts_with(|c: char| c.is_ascii_digit())
            );
        }
    }
}

fn payment_ref(reference: &Reference, status: u8) {
    let wit = match reference {
        Reference::Id(id) => PaymentRef::PaymentId(*id),
        Reference::Provider(r) => PaymentRef::ProviderReference(r.clone()),
    };
    match (PaymentLookup::from(&wit), reference) {
        (PaymentLookup::Id(got), Reference::Id(sent)) => match i64::try_from(*sent) {
            Ok(sent) => assert_eq!(got.get(), sent),
            Err(_) => assert!(got.get() < 1, "{sent} became a real id {got}"),
        },
        (PaymentLookup::ProviderReference(got), Reference::Provider(sent)) => {
            assert_eq!(got, sent.as_str())
        }
        (got, sent) => panic!("{sent:?} became {got:?}"),
    }
    let (event, name) = match status % 3 {
        0 => (EventStatus::Pending, "PAYMENT_PENDING"),
        1 => (EventStatus::Finished, "PAYMENT_FINISHED"),
        _ => (EventStatus::Failed, "PAYMENT_FAILED"),
    };
    let status = PaymentStatus::from(event);
    assert_eq!(status.as_str(), name);
    assert_eq!(PaymentStatus::parse(name), Some(status));
}

fn decision((allowed, limit, remaining, reset_ms, retry_after_ms): DecisionFields) {
    let d = Decision {
        allowed,
        limit,
        remaining,
        reset_ms,
        retry_after_ms,
    };
    let mut headers = HeaderMap::new();
    add_headers(&mut headers, &d);
    let number = |name: &str| -> u64 {
        headers[name]
            .to_str()
            .unwrap()
            .parse()
            .expect("a whole number")
    };
    assert_eq!(number("ratelimit-limit"), u64::from(limit));
    assert_eq!(number("ratelimit-remaining"), u64::from(remaining));
    let reset = number("ratelimit-reset");
    assert!(u128::from(reset) * 1000 >= u128::from(reset_ms));
    assert!(u128::from(reset) * 1000 < u128::from(reset_ms) + 1000);
    let wait_ms = retry_after_ms.unwrap_or(1000);
    let wait = retry_after_secs(&d);
    assert!(u128::from(wait) * 1000 >= u128::from(wait_ms));
    assert!(u128::from(wait) * 1000 < u128::from(wait_ms) + 1000);
    let response = ApiError::RateLimited {
        retry_after_secs: wait,
    }
    .into_response();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let header: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(header, wait.max(1));
}

fn provider_error((kind, message): (u8, String)) {
    let (error, shown) = match kind % 4 {
        0 => (ProviderError::Declined(message.clone()), true),
        1 => (ProviderError::InvalidRequest(message.clone()), true),
        2 => (ProviderError::Unavailable(message.clone()), false),
        _ => (ProviderError::Misconfigured(message.clone()), false),
    };
    let text = provider_message(&error);
    if shown {
        assert!(text.ends_with(&message));
    } else {
        // An outage's or a misconfiguration's own words stay in the log.
        assert!(
            [
                "the provider integration is misconfigured",
                "the provider is unavailable; retry later"
            ]
            .contains(&text.as_str()),
            "{text}"
        );
    }
}

fn limits(s: Spec) {
    let spec = LimitsSpec {
        memory_mib: s.memory_mib,
        timeout_ms: s.timeout_ms,
        fuel: s.fuel,
        max_input_kib: s.max_input_kib,
        max_output_kib: s.max_output_kib,
        http_timeout_ms: s.http_timeout_ms,
        http_max_response_kib: s.http_max_response_kib,
    };
    let got = Limits::from_spec(&spec);
    let d = Limits::default();
    let kib = |v: Option<u32>, default: usize| v.map_or(default, |k| k as usize * 1024);
    assert!(got.memory_bytes <= MAX_MEMORY_BYTES);
    if let Some(mib) = s.memory_mib {
        assert_eq!(
            got.memory_bytes,
            (mib as usize * 1024 * 1024).min(MAX_MEMORY_BYTES)
        );
    }
    let timeout = s
        .timeout_ms
        .map_or(d.timeout, |ms| Duration::from_millis(ms.into()));
    assert_eq!(got.timeout, timeout);
    assert!(got.http_timeout <= got.timeout);
    assert_eq!(got.fuel, s.fuel);
    assert_eq!(got.max_input_bytes, kib(s.max_input_kib, d.max_input_bytes));
    assert_eq!(
        got.max_output_bytes,
        kib(s.max_output_kib, d.max_output_bytes)
    );
    assert_eq!(
        got.http_max_response_bytes,
        kib(s.http_max_response_kib, d.http_max_response_bytes)
    );
}

fn webhook_headers(raw: &[(String, Vec<u8>)]) {
    let mut headers = HeaderMap::new();
    for (name, value) in raw {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    let pairs = header_pairs(&headers);
    assert_eq!(pairs.len(), headers.len());
    for (name, value) in headers.iter() {
        let seen = guest_common::headers::find(&pairs, &name.as_str().to_ascii_uppercase());
        let first = headers.get(name).expect("present");
        assert_eq!(
            seen,
            Some(String::from_utf8_lossy(first.as_bytes()).as_ref())
        );
        if let Ok(text) = value.to_str() {
            assert!(pairs.iter().any(|(n, v)| n == name.as_str() && v == text));
        }
    }
}
