//! Adyen's `amount` object: an integer of minor units and a currency code.

use guest_common::money;
use guest_common::provider::Failure;
use serde_json::{Value, json};

/// `{"value": <minor units>, "currency": "<ISO 4217>"}` for a decimal price
/// in major units, counted as Adyen counts the currency
/// ([`money::adyen_exponent`]). A price finer than the currency's minor
/// unit is refused rather than rounded.
pub fn minor(price: &str, currency: &str) -> Result<Value, Failure> {
    let code = money::currency_code(currency).ok_or_else(|| {
        Failure::InvalidRequest(format!("currency {currency:?} is not an ISO 4217 code"))
    })?;
    let value = money::to_minor_units_at(price, &code, money::adyen_exponent(&code))
        .map_err(Failure::InvalidRequest)?;
    Ok(json!({ "value": value, "currency": code }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_minor_units_for_eur_and_jpy() {
        assert_eq!(
            minor("10.00", "EUR"),
            Ok(json!({"value": 1000, "currency": "EUR"}))
        );
        assert_eq!(
            minor("2.5", "eur"),
            Ok(json!({"value": 250, "currency": "EUR"}))
        );
        assert_eq!(
            minor("1500", "JPY"),
            Ok(json!({"value": 1500, "currency": "JPY"}))
        );
        // Adyen counts Iceland's krona in hundredths, unlike ISO 4217.
        assert_eq!(
            minor("100", "ISK"),
            Ok(json!({"value": 10000, "currency": "ISK"}))
        );
    }

    #[test]
    fn refuses_what_adyen_cannot_charge() {
        for (price, currency) in [
            ("10.005", "EUR"),
            ("1500.5", "JPY"),
            ("ten", "EUR"),
            ("-1", "EUR"),
            ("10", "EURO"),
            ("10", ""),
        ] {
            assert!(
                matches!(minor(price, currency), Err(Failure::InvalidRequest(_))),
                "{price} {currency}"
            );
        }
    }
}
