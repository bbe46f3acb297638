//! Decimal price strings to integer minor units (cents, yen, fils ...).

/// Currencies whose minor unit is the major unit (ISO 4217 exponent 0, as
/// Stripe treats them).
const ZERO_DECIMAL: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND",
    "VUV", "XAF", "XOF", "XPF",
];

/// Currencies with a thousandth as minor unit (ISO 4217 exponent 3).
const THREE_DECIMAL: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];

/// Number of decimal places of `currency` (an upper-case ISO 4217 code);
/// every currency not listed as 0 or 3 has 2.
pub fn exponent(currency: &str) -> u32 {
    if ZERO_DECIMAL.contains(&currency) {
        0
    } else if THREE_DECIMAL.contains(&currency) {
        3
    } else {
        2
    }
}

/// Number of decimal places Adyen counts minor units in: [`exponent`]'s,
/// except for the four currencies where Adyen's published table departs
/// from ISO 4217 (CLP and ISK in hundredths, CVE and IDR in whole units).
/// A payment sent with one count and read back with another would be off
/// by a factor of 100, so adapter and verifier must both use this.
pub fn adyen_exponent(currency: &str) -> u32 {
    match currency {
        "CLP" | "ISK" => 2,
        "CVE" | "IDR" => 0,
        _ => exponent(currency),
    }
}

/// An ISO 4217 code: three ASCII letters, returned in upper case; `None`
/// for anything else, so it can go into a request or an event as it is.
pub fn currency_code(text: &str) -> Option<String> {
    (text.len() == 3 && text.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| text.to_ascii_uppercase())
}

/// Converts a non-negative decimal string such as `"10.50"` into minor units
/// of `currency`, e.g. `1050` for EUR or `10` for JPY `"10"`.
///
/// Only plain digits with an optional fractional part are accepted. Extra
/// fractional digits are allowed only while they are zeros: `"10.500"` EUR is
/// exactly 1050 cents, but `"10.505"` cannot be charged and is an error
/// rather than being rounded behind the merchant's back.
pub fn to_minor_units(price: &str, currency: &str) -> Result<u64, String> {
    to_minor_units_at(price, currency, exponent(currency))
}

/// [`to_minor_units`] with `digits` decimal places instead of [`exponent`]'s,
/// for a provider whose currency table differs, such as [`adyen_exponent`];
/// `currency` only names the currency in an error.
pub fn to_minor_units_at(price: &str, currency: &str, digits: u32) -> Result<u64, String> {
    let digits = digits as usize;
    let (whole, fraction) = match price.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (price, ""),
    };
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !is_digits(whole) || !is_digits(fraction) {
        return Err(format!("price {price:?} is not a plain decimal number"));
    }
    if price.contains('.') && fraction.is_empty() {
        return Err(format!(
            "price {price:?} has no digits after the decimal point"
        ));
    }
    let (kept, rest) = fraction.split_at(fraction.len().min(digits));
    if rest.bytes().any(|b| b != b'0') {
        return Err(format!(
            "price {price:?} has more than {digits} decimal places, the precision of {currency}"
        ));
    }
    // Pad the kept fraction to exactly `digits` places before joining, so
    // "10.5" EUR becomes "1050".
    let joined = format!("{whole}{kept:0<digits$}");
    joined
        .parse::<u64>()
        .map_err(|_| format!("price {price:?} is too large"))
}

/// Writes an integer amount of `currency`'s minor units as a plain decimal
/// in major units, the inverse of [`to_minor_units`]: `1050` EUR is
/// `"10.50"`, `1500` JPY is `"1500"`, `1234` KWD is `"1.234"`.
pub fn from_minor_units(minor: u64, currency: &str) -> String {
    from_minor_units_at(minor, exponent(currency))
}

/// [`from_minor_units`] with `digits` decimal places, the inverse of
/// [`to_minor_units_at`].
pub fn from_minor_units_at(minor: u64, digits: u32) -> String {
    let digits = digits as usize;
    if digits == 0 {
        return minor.to_string();
    }
    let padded = format!("{minor:0>width$}", width = digits + 1);
    let (whole, fraction) = padded.split_at(padded.len() - digits);
    format!("{whole}.{fraction}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_back_to_decimals() {
        assert_eq!(from_minor_units(1050, "EUR"), "10.50");
        assert_eq!(from_minor_units(1, "USD"), "0.01");
        assert_eq!(from_minor_units(0, "USD"), "0.00");
        assert_eq!(from_minor_units(1500, "JPY"), "1500");
        assert_eq!(from_minor_units(1234, "KWD"), "1.234");
        assert_eq!(from_minor_units(5, "BHD"), "0.005");
        assert_eq!(from_minor_units(u64::MAX, "EUR"), "184467440737095516.15");
        for (price, currency) in [("10.50", "EUR"), ("1500", "JPY"), ("1.234", "KWD")] {
            let minor = to_minor_units(price, currency).unwrap();
            assert_eq!(from_minor_units(minor, currency), price);
        }
    }

    #[test]
    fn two_decimal_currencies() {
        assert_eq!(to_minor_units("10.00", "EUR"), Ok(1000));
        assert_eq!(to_minor_units("10.5", "EUR"), Ok(1050));
        assert_eq!(to_minor_units("10", "USD"), Ok(1000));
        assert_eq!(to_minor_units("0.01", "USD"), Ok(1));
        assert_eq!(to_minor_units("10.500", "EUR"), Ok(1050));
        assert!(to_minor_units("10.505", "EUR").is_err());
    }

    #[test]
    fn zero_and_three_decimal_currencies() {
        assert_eq!(exponent("JPY"), 0);
        assert_eq!(to_minor_units("1500", "JPY"), Ok(1500));
        assert_eq!(to_minor_units("1500.0", "KRW"), Ok(1500));
        assert!(to_minor_units("1500.5", "JPY").is_err());
        assert_eq!(exponent("KWD"), 3);
        assert_eq!(to_minor_units("1.234", "KWD"), Ok(1234));
        assert_eq!(to_minor_units("1.2", "BHD"), Ok(1200));
        assert!(to_minor_units("1.2345", "OMR").is_err());
    }

    #[test]
    fn adyen_counts_four_currencies_differently() {
        for (currency, digits) in [("CLP", 2), ("ISK", 2), ("CVE", 0), ("IDR", 0)] {
            assert_eq!(adyen_exponent(currency), digits, "{currency}");
            assert_ne!(exponent(currency), digits, "{currency}");
        }
        for currency in ["EUR", "JPY", "KWD", "USD"] {
            assert_eq!(adyen_exponent(currency), exponent(currency));
        }
        assert_eq!(to_minor_units_at("1500", "CLP", 2), Ok(150_000));
        assert_eq!(to_minor_units_at("1500", "IDR", 0), Ok(1500));
        assert!(to_minor_units_at("1500.50", "IDR", 0).is_err());
        assert_eq!(from_minor_units_at(150_000, 2), "1500.00");
        assert_eq!(from_minor_units_at(1500, 0), "1500");
    }

    #[test]
    fn reads_currency_codes() {
        assert_eq!(currency_code("eur"), Some("EUR".into()));
        assert_eq!(currency_code("JPY"), Some("JPY".into()));
        for bad in ["", "EU", "EURO", "E1R", "€UR", " EU"] {
            assert_eq!(currency_code(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rejects_malformed_prices() {
        for bad in [
            "", ".5", "5.", "-1", "+1", "1e3", "1,00", " 1", "1.2.3", "abc",
        ] {
            assert!(to_minor_units(bad, "EUR").is_err(), "{bad:?} accepted");
        }
        assert!(to_minor_units("99999999999999999999", "EUR").is_err());
    }
}
