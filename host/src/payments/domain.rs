//! Payment values that are valid by construction: parse, don't validate.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A positive decimal with at most 8 places, below 10^12: an amount or a price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Money(#[serde(with = "rust_decimal::serde::str")] Decimal);

impl Money {
    /// The largest accepted value, 999999999999.99999999.
    pub fn max() -> Decimal {
        Decimal::from_str("999999999999.99999999").expect("static decimal")
    }

    /// Parses the decimal text of a JSON number or string.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() || text.len() > 40 {
            return Err("must be a decimal number".into());
        }
        if text.contains(['e', 'E']) {
            return Err("must be written without an exponent".into());
        }
        let value =
            Decimal::from_str_exact(text).map_err(|_| "must be a decimal number".to_owned())?;
        if value.scale() > 8 {
            return Err("must have at most 8 decimal places".into());
        }
        if value <= Decimal::ZERO {
            return Err("must be greater than 0".into());
        }
        if value > Self::max() {
            return Err("must be at most 999999999999.99999999".into());
        }
        Ok(Self(value))
    }

    pub fn value(&self) -> Decimal {
        self.0
    }

    /// Whether the value can be charged in `currency`: no more decimal
    /// places than its minor unit, trailing zeros aside ("10.50" EUR fits,
    /// "10.505" does not).
    pub fn fits(&self, currency: &Currency) -> bool {
        self.0.normalize().scale() <= currency.exponent()
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An active ISO 4217 currency: a code the standard lists now (not one it
/// has withdrawn or superseded, e.g. HRK or BGN since the euro) that has a
/// minor unit (not gold, SDRs or the test code XTS). The list and the
/// decimals come from the `iso_currency` crate, not from a hand-kept table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    pub fn parse(text: &str) -> Result<Self, String> {
        let upper = text.trim().to_ascii_uppercase();
        iso_currency::Currency::from_code(&upper)
            .filter(|c| c.exponent().is_some() && c.is_superseded().is_none())
            .map(Self)
            .ok_or_else(|| "must be an active ISO 4217 currency code, such as \"EUR\"".into())
    }

    pub fn as_str(&self) -> &str {
        self.0.code()
    }

    /// Decimal places of the currency's minor unit (ISO 4217): 0 for JPY,
    /// 3 for KWD, 2 for most.
    pub fn exponent(&self) -> u32 {
        self.0.exponent().map_or(0, u32::from)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider alias such as `stripe`: lower-case letters, digits, `-`, `_`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Alias(String);

impl Alias {
    pub fn parse(text: &str) -> Result<Self, String> {
        let ok = (1..=64).contains(&text.len())
            && text.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && (b == b'-' || b == b'_'))
            });
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err("must be a provider alias such as \"stripe\"".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Alias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An idempotency key: 1 to 255 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(text: &str) -> Result<Self, String> {
        if (1..=255).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(text.to_owned()))
        } else {
            Err("must be 1 to 255 visible ASCII characters".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a provider sends the buyer after paying or cancelling: an
/// absolute `https://` URL of at most 2,048 characters, without
/// credentials, in ASCII (a `Location` header carries it as written, and
/// providers refuse the rest: an international host goes in its punycode
/// form, other characters percent-encoded). `http://` is accepted for a loopback host, and for any
/// host where the setting allows it (`serve --demo`). Kept exactly as
/// written: Stripe fills a `{CHECKOUT_SESSION_ID}` placeholder that a
/// normalising parser would have percent-encoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RedirectUrl(String);

impl RedirectUrl {
    pub const MAX_CHARS: usize = 2048;

    pub fn parse(text: &str, allow_http: bool) -> Result<Self, String> {
        if text.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        // The URL parser drops surrounding spaces and inner tabs and line
        // breaks; a stored URL must be the one that was checked.
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters".into());
        }
        if !text.is_ascii() {
            return Err(
                "must be ASCII: the host in punycode, other characters percent-encoded".into(),
            );
        }
        let url = url::Url::parse(text).map_err(|_| "must be an absolute URL".to_owned())?;
        let Some(host) = url.host() else {
            return Err("must be an absolute URL with a host".into());
        };
        let loopback = match host {
            url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback || allow_http => {}
            _ => return Err("must be an https:// URL (http:// only for a loopback host)".into()),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry a user name or password".into());
        }
        Ok(Self(text.to_owned()))
    }

    /// A URL as a merchant's settings stored it. Before the ASCII rule
    /// (2026-12-04) a host or path could be international; such a URL is
    /// read in its ASCII form (the host in punycode, the rest
    /// percent-encoded), the one a browser would have requested, rather
    /// than dropped. `None` only for a value no rule ever accepted.
    pub fn from_stored(text: &str) -> Option<Self> {
        if text.is_ascii() {
            return Self::parse(text, true).ok();
        }
        Self::parse(url::Url::parse(text).ok()?.as_str(), true).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A merchant's key/value pairs on a payment: at most 20 keys of 1 to 40
/// characters, each value a string of at most 500 characters; none may hold
/// U+0000, which PostgreSQL's `text` and `jsonb` cannot store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Metadata(std::collections::BTreeMap<String, String>);

impl Metadata {
    pub const MAX_KEYS: usize = 20;
    pub const MAX_KEY_CHARS: usize = 40;
    pub const MAX_VALUE_CHARS: usize = 500;

    /// Reads a JSON object; the error says which rule it breaks.
    pub fn parse(value: &serde_json::Value) -> Result<Self, String> {
        let serde_json::Value::Object(object) = value else {
            return Err("must be an object of string values".into());
        };
        if object.len() > Self::MAX_KEYS {
            return Err(format!("must have at most {} keys", Self::MAX_KEYS));
        }
        let mut pairs = std::collections::BTreeMap::new();
        for (key, value) in object {
            let chars = key.chars().count();
            if !(1..=Self::MAX_KEY_CHARS).contains(&chars) {
                return Err(format!(
                    "keys must be 1 to {} characters",
                    Self::MAX_KEY_CHARS
                ));
            }
            let serde_json::Value::String(value) = value else {
                return Err(format!("the value of {key:.40?} must be a string"));
            };
            if key.contains('\0') || value.contains('\0') {
                return Err("keys and values must not contain U+0000".into());
            }
            if value.chars().count() > Self::MAX_VALUE_CHARS {
                return Err(format!(
                    "the value of {key:.40?} must be at most {} characters",
                    Self::MAX_VALUE_CHARS
                ));
            }
            pairs.insert(key.clone(), value.clone());
        }
        Ok(Self(pairs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pairs in key order, as the WIT passes them.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The JSON object, as stored and echoed.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.0).expect("a map of strings is JSON")
    }
}

/// Payment states, as the API spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = "PAYMENT_PENDING")]
pub enum PaymentStatus {
    #[serde(rename = "PAYMENT_PENDING")]
    Pending,
    #[serde(rename = "PAYMENT_FINISHED")]
    Finished,
    #[serde(rename = "PAYMENT_FAILED")]
    Failed,
    /// Still pending `PAYGATE_PAYMENT_EXPIRY` after creation.
    #[serde(rename = "PAYMENT_EXPIRED")]
    Expired,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "PAYMENT_PENDING",
            PaymentStatus::Finished => "PAYMENT_FINISHED",
            PaymentStatus::Failed => "PAYMENT_FAILED",
            PaymentStatus::Expired => "PAYMENT_EXPIRED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            PaymentStatus::Pending,
            PaymentStatus::Finished,
            PaymentStatus::Failed,
            PaymentStatus::Expired,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// Read from a `NUMERIC` column, whose checks hold the same bounds.
impl sqlx::Type<sqlx::Postgres> for Money {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <Decimal as sqlx::Type<sqlx::Postgres>>::type_info()
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Money {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        <Decimal as sqlx::Decode<sqlx::Postgres>>::decode(value).map(Self)
    }
}

/// Read from a `TEXT` column: a status this version does not know (written
/// by a newer one, or by hand) is a decoding error, never a guess.
impl sqlx::Type<sqlx::Postgres> for PaymentStatus {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <&str as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for PaymentStatus {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        PaymentStatus::parse(text).ok_or_else(|| format!("unknown payment status {text:?}").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_keeps_scale_and_enforces_bounds() {
        assert_eq!(Money::parse("10.00").unwrap().to_string(), "10.00");
        assert_eq!(
            Money::parse("999999999999.99999999").unwrap().to_string(),
            "999999999999.99999999"
        );
        for bad in [
            "0",
            "-1",
            "0.000000001",
            "1000000000000",
            "1e3",
            "abc",
            "",
            "NaN",
            "1.2.3",
        ] {
            assert!(Money::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn currency_alias_and_keys() {
        assert_eq!(Currency::parse("eur").unwrap().as_str(), "EUR");
        assert!(Currency::parse("EURO").is_err());
        assert!(Currency::parse("E1R").is_err());
        // Three letters are not enough: the code must be an active one
        // with a minor unit.
        for inactive in ["XYZ", "XTS", "XAU", "XXX", "HRK", "BGN", "VES"] {
            assert!(Currency::parse(inactive).is_err(), "{inactive} accepted");
        }
        for (code, decimals) in [("USD", 2), ("JPY", 0), ("KWD", 3), ("ISK", 0), ("CLF", 4)] {
            assert_eq!(
                Currency::parse(code).unwrap().exponent(),
                decimals,
                "{code}"
            );
        }
        let eur = Currency::parse("EUR").unwrap();
        let jpy = Currency::parse("JPY").unwrap();
        let kwd = Currency::parse("KWD").unwrap();
        assert!(Money::parse("10.50").unwrap().fits(&eur));
        assert!(Money::parse("10.5000").unwrap().fits(&eur));
        assert!(!Money::parse("10.001").unwrap().fits(&eur));
        assert!(Money::parse("10.001").unwrap().fits(&kwd));
        assert!(Money::parse("1000").unwrap().fits(&jpy));
        assert!(!Money::parse("1000.5").unwrap().fits(&jpy));
        assert!(Alias::parse("stripe").is_ok());
        assert!(Alias::parse("Stripe").is_err());
        assert!(Alias::parse("-x").is_err());
        assert!(Alias::parse("").is_err());
        assert!(IdempotencyKey::parse("evt_123").is_ok());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }

    #[test]
    fn redirect_urls() {
        let ok = |text: &str, http: bool| RedirectUrl::parse(text, http).map(|u| u.0);
        let session = "https://shop.example/done?session={CHECKOUT_SESSION_ID}";
        assert_eq!(ok(session, false).unwrap(), session, "kept as written");
        assert!(ok("http://127.0.0.1:8001/orders/1", false).is_ok());
        assert!(ok("http://localhost/x", false).is_ok());
        assert!(ok("http://[::1]/x", false).is_ok());
        assert!(ok("http://shop.example/x", true).is_ok());
        for bad in [
            "http://shop.example/x",
            "javascript:alert(1)",
            "data:text/html,hi",
            "/relative",
            "https://user:pw@shop.example/",
            "https://shop.example/a b",
            " https://shop.example/",
            "https://shop.example/\n",
            "ftp://shop.example/",
            "https://",
            "https://\u{a3}/",
            "https://shop.example/caf\u{e9}",
        ] {
            assert!(ok(bad, false).is_err(), "{bad} accepted");
        }
        let long = format!("https://shop.example/{}", "a".repeat(2048 - 21));
        assert_eq!(long.len(), 2048);
        assert!(ok(&long, false).is_ok());
        assert!(ok(&format!("{long}a"), false).is_err());
    }

    #[test]
    fn redirect_urls_stored_before_the_ascii_rule() {
        let read = |text: &str| RedirectUrl::from_stored(text).map(|u| u.0);
        assert_eq!(
            read("https://b\u{fc}cher.example/caf\u{e9}?s={ID}").as_deref(),
            Some("https://xn--bcher-kva.example/caf%C3%A9?s={ID}")
        );
        let session = "https://shop.example/done?session={CHECKOUT_SESSION_ID}";
        assert_eq!(read(session).as_deref(), Some(session), "kept as written");
        for never in [
            "https://\u{fc}:pw@shop.example/",
            "ftp://b\u{fc}cher.example/",
            "/caf\u{e9}",
            "https://shop.example/a b",
        ] {
            assert_eq!(read(never), None, "{never}");
        }
    }

    #[test]
    fn metadata_rules() {
        use serde_json::json;
        let parsed = Metadata::parse(&json!({"b": "2", "a": "é".repeat(500)})).unwrap();
        assert_eq!(parsed.pairs()[0].0, "a", "key order");
        assert!(Metadata::parse(&json!({})).unwrap().is_empty());
        let twenty: serde_json::Map<_, _> =
            (0..20).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(Metadata::parse(&json!(twenty)).is_ok());
        let mut many = twenty.clone();
        many.insert("k20".into(), json!("v"));
        for bad in [
            json!(many),
            json!({"": "x"}),
            json!({"k".repeat(41): "x"}),
            json!({"k": 1}),
            json!({"k": null}),
            json!({"k": "x".repeat(501)}),
            json!(["k"]),
            json!("k=v"),
            json!({"k": "a\u{0}"}),
            json!({"\u{0}": "v"}),
        ] {
            assert!(Metadata::parse(&bad).is_err(), "{bad} accepted");
        }
        assert!(Metadata::parse(&json!({"k".repeat(40): "x"})).is_ok());
    }
}

#[cfg(test)]
mod money_properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Every positive decimal in range with at most 8 places parses,
        /// and prints back exactly as written (scale kept: "10.00").
        #[test]
        fn in_range_amounts_parse_and_print_back(
            int in 0u64..1_000_000_000_000,
            frac in proptest::option::of("[0-9]{1,8}"),
        ) {
            let text = match &frac { Some(f) => format!("{int}.{f}"), None => int.to_string() };
            let value = Decimal::from_str_exact(&text).unwrap();
            match Money::parse(&text) {
                Ok(money) => {
                    prop_assert!(value > Decimal::ZERO);
                    prop_assert_eq!(money.to_string(), text.clone());
                    prop_assert_eq!(Money::parse(&money.to_string()).unwrap(), money);
                }
                Err(_) => prop_assert_eq!(value, Decimal::ZERO, "{} refused", text),
            }
        }

        /// More than 8 places is refused, even when they are zeros.
        #[test]
        fn more_than_eight_places_are_refused(int in 0u64..1_000_000, frac in "[0-9]{9,12}") {
            let text = format!("{int}.{frac}");
            prop_assert!(Money::parse(&text).is_err());
        }

        /// Zero, negatives and values past the maximum are refused.
        #[test]
        fn out_of_range_is_refused(int in 1_000_000_000_000u64..u64::MAX / 2, negative in 0u64..1_000_000) {
            prop_assert!(Money::parse(&int.to_string()).is_err());
            let negative = format!("-{negative}");
            prop_assert!(Money::parse(&negative).is_err());
        }

        /// Whatever the text, parsing answers and never panics.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,60}") {
            let _ = Money::parse(&text);
        }
    }
}
