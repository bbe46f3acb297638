//! The `POST /api/v1/payments` body: JSON to `CreatePayment`
//! (`paygate::http::payments::parse_create`) through the domain parsers
//! `Money`, `Currency`, `Alias` and `IdempotencyKey`.
//!
//! Never a panic, on raw bytes or on objects built from valid and invalid
//! field values. An accepted body has every value in range, prints back to
//! a body that parses to the same request (amounts keep their scale), and
//! agrees with a field-by-field oracle: a field known to be bad is named in
//! the 400, a body of good fields is accepted. A refused object names only
//! fields that exist in the API.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use paygate::http::error::ApiError;
use paygate::http::payments::parse_create;
use paygate::payments::create::CreatePayment;
use paygate::payments::{Alias, Currency, IdempotencyKey, Money};
use paygate_fuzz::{Input, read};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

const FIELDS: [&str; 10] = [
    "order_id",
    "subscription_id",
    "amount",
    "price",
    "alias",
    "event_id",
    "currency",
    "return_url",
    "cancel_url",
    "metadata",
];

/// A body built from chosen field values.
#[derive(Arbitrary, Debug)]
struct Fields {
    order_id: Field,
    subscription_id: Field,
    amount: Field,
    price: Field,
    alias: Field,
    event_id: Field,
    currency: Field,
    extra: Vec<(String, Field)>,
}

/// A field's value: the shapes a client sends, right and wrong.
#[derive(Arbitrary, Clone, Debug)]
enum Field {
    Missing,
    Null,
    Bool(bool),
    Int(i64),
    Unsigned(u64),
    Float(f64),
    Text(String),
    /// `whole.fraction` as a string, with `places` digits of `fraction`.
    Decimal {
        whole: u64,
        fraction: u64,
        places: u8,
    },
    Alias(Vec<u8>),
    Currency([u8; 3]),
    List(Vec<i64>),
}

impl Field {
    fn json(&self) -> Option<Value> {
        Some(match self {
            Field::Missing => return None,
            Field::Null => Value::Null,
            Field::Bool(b) => json!(b),
            Field::Int(n) => json!(n),
            Field::Unsigned(n) => json!(n),
            Field::Float(f) => json!(f),
            Field::Text(s) => json!(s),
            Field::Decimal { .. } => json!(self.decimal_text()),
            Field::Alias(bytes) => json!(alias_text(bytes)),
            Field::Currency(c) => json!(String::from_utf8_lossy(c)),
            Field::List(items) => json!(items),
        })
    }

    fn decimal_text(&self) -> String {
        let Field::Decimal {
            whole,
            fraction,
            places,
        } = self
        else {
            unreachable!()
        };
        let places = usize::from(places % 12);
        let digits = format!("{fraction:020}");
        if places == 0 {
            whole.to_string()
        } else {
            format!("{whole}.{}", &digits[20 - places..])
        }
    }
}

/// Letters, digits, `-` and `_` drawn from bytes, so most are aliases.
fn alias_text(bytes: &[u8]) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-_";
    bytes
        .iter()
        .map(|b| CHARS[usize::from(*b) % CHARS.len()] as char)
        .collect()
}

/// What the API must say of a field, where this harness can tell by itself.
fn expected(name: &str, field: &Field) -> Option<bool> {
    let required = !matches!(name, "event_id" | "currency");
    match (name, field) {
        (_, Field::Missing | Field::Null) => Some(!required),
        // JSON has no NaN or infinity: serde_json writes them as null.
        (_, Field::Float(f)) if !f.is_finite() => Some(!required),
        (_, Field::Bool(_) | Field::List(_)) => Some(false),
        ("order_id" | "subscription_id", Field::Int(n)) => Some(*n >= 1),
        ("order_id" | "subscription_id", Field::Unsigned(n)) => {
            Some((1..=i64::MAX as u64).contains(n))
        }
        ("order_id" | "subscription_id", _) => Some(false),
        ("amount" | "price", Field::Int(n)) => Some((1..1_000_000_000_000).contains(n)),
        ("amount" | "price", Field::Unsigned(n)) => Some((1..1_000_000_000_000).contains(n)),
        (
            "amount" | "price",
            Field::Decimal {
                whole,
                fraction,
                places,
            },
        ) => {
            let places = places % 12;
            let exact = 10u64.pow(u32::from(places.min(12)));
            let zero_fraction = places == 0 || fraction % exact == 0;
            Some(*whole < 1_000_000_000_000 && places <= 8 && !(*whole == 0 && zero_fraction))
        }
        ("alias", Field::Alias(bytes)) => {
            let text = alias_text(bytes);
            Some((1..=64).contains(&text.len()) && !text.starts_with(['-', '_']))
        }
        (
            "alias" | "event_id" | "currency",
            Field::Int(_) | Field::Unsigned(_) | Field::Float(_),
        ) => Some(false),
        // An active ISO 4217 code with a minor unit, in any case.
        ("currency", Field::Currency(c)) => Some(
            c.iter().all(u8::is_ascii_alphabetic)
                && iso_currency::Currency::from_code(&String::from_utf8_lossy(c).to_uppercase())
                    .is_some_and(|c| c.exponent().is_some() && c.is_superseded().is_none()),
        ),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| match read::<Fields>(data, 0) {
    // The body as a client sends it.
    Some(Input::Text(_, body)) => {
        if let Ok(value) = serde_json::from_slice::<Value>(body) {
            let _ = check(&value);
        }
    }
    Some(Input::Structured(fields)) => built(fields),
    None => {}
});

fn built(fields: Fields) {
    let Fields {
        order_id,
        subscription_id,
        amount,
        price,
        alias,
        event_id,
        currency,
        extra,
    } = fields;
    let named = [
        ("order_id", &order_id),
        ("subscription_id", &subscription_id),
        ("amount", &amount),
        ("price", &price),
        ("alias", &alias),
        ("event_id", &event_id),
        ("currency", &currency),
    ];
    let mut object = Map::new();
    for (name, field) in extra.iter().filter(|(n, _)| !FIELDS.contains(&n.as_str())) {
        if let Some(value) = field.json() {
            object.insert(name.clone(), value);
        }
    }
    for (name, field) in named {
        if let Some(value) = field.json() {
            object.insert(name.into(), value);
        }
    }
    let result = check(&Value::Object(object));
    let verdicts: Vec<_> = named.iter().map(|(n, f)| (*n, expected(n, f))).collect();
    match result {
        Ok(_) => {
            for (name, verdict) in &verdicts {
                assert_ne!(*verdict, Some(false), "bad {name} accepted");
            }
        }
        Err(named_fields) => {
            for (name, verdict) in &verdicts {
                if *verdict == Some(false) {
                    assert!(
                        named_fields.contains(&name.to_string()),
                        "bad {name} not named"
                    );
                }
            }
            assert!(
                verdicts.iter().any(|(_, v)| *v != Some(true)),
                "good fields refused"
            );
        }
    }
}

/// Parses `value` and checks what holds for any body; the error side is
/// the list of fields the 400 names.
fn check(value: &Value) -> Result<CreatePayment, Vec<String>> {
    match parse_create(value, false) {
        Ok(request) => {
            assert!(request.order_id.get() >= 1 && request.subscription_id.get() >= 1);
            for money in [request.amount, request.price] {
                let v = money.value();
                assert!(v > Decimal::ZERO && v <= Money::max() && v.scale() <= 8);
                let again = Money::parse(&money.to_string()).expect("printed money parses");
                assert_eq!(again.to_string(), money.to_string());
            }
            assert_eq!(
                Alias::parse(request.alias.as_str()).as_ref(),
                Ok(&request.alias)
            );
            if let Some(key) = &request.event_id {
                assert_eq!(IdempotencyKey::parse(key.as_str()).as_ref(), Ok(key));
            }
            if let Some(currency) = request.currency {
                assert!(currency.as_str().bytes().all(|b| b.is_ascii_uppercase()));
                assert_eq!(Currency::parse(currency.as_str()), Ok(currency));
            }
            // Printed back as a client would send it, it is the same request.
            let printed = json!({
                "order_id": request.order_id,
                "subscription_id": request.subscription_id,
                "amount": request.amount.to_string(),
                "price": request.price.to_string(),
                "alias": request.alias.as_str(),
                "event_id": request.event_id.as_ref().map(IdempotencyKey::as_str),
                "currency": request.currency.map(|c| c.to_string()),
                "return_url": request.return_url,
                "cancel_url": request.cancel_url,
                "metadata": request.metadata,
            });
            let again = parse_create(&printed, false).expect("a printed request parses");
            assert_eq!(again, request);
            assert_eq!(again.amount.to_string(), request.amount.to_string());
            assert_eq!(again.price.to_string(), request.price.to_string());
            Ok(request)
        }
        Err(ApiError::InvalidRequest { fields, .. }) => {
            if value.is_object() {
                assert!(!fields.is_empty(), "an object refused without a field");
            } else {
                assert!(fields.is_empty());
            }
            let names: Vec<String> = fields.into_iter().map(|f| f.field).collect();
            for name in &names {
                assert!(FIELDS.contains(&name.as_str()), "unknown field {name}");
            }
            Err(names)
        }
        Err(other) => panic!("a body is refused only as invalid_request, not {other:?}"),
    }
}
