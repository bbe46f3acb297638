//! Parsing of plain string settings into typed values.
//!
//! Only `core` and `alloc`: the `token-bucket` policy, built without `std`,
//! includes this file as its own module.

use alloc::format;
use alloc::string::String;
use core::str::FromStr;

/// Parses `raw` when present, falls back to `default` when absent, and
/// explains the problem when the value is present but unusable — a typo in a
/// manifest should be reported, not silently replaced by the default.
pub fn parse_or<T: FromStr>(key: &str, raw: Option<String>, default: T) -> Result<T, String> {
    match raw {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("setting `{key}` has an invalid value {text:?}")),
    }
}

/// A value that must be present and non-empty; the error names it, e.g.
/// "secret `webhook-secret` is not set", so operators know what to add.
pub fn required(kind: &str, key: &str, value: Option<String>) -> Result<String, String> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{kind} `{key}` is not set"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_defaults_and_errors() {
        assert_eq!(parse_or("n", None, 5u32), Ok(5));
        assert_eq!(parse_or("n", Some(" 7 ".into()), 5u32), Ok(7));
        assert!(
            parse_or("n", Some("x".into()), 5u32)
                .unwrap_err()
                .contains("`n`")
        );
    }
    #[test]
    fn requires_non_empty_values() {
        assert_eq!(required("secret", "k", Some("v".into())), Ok("v".into()));
        let empty = required("secret", "k", Some(String::new()));
        assert_eq!(empty, Err("secret `k` is not set".into()));
        assert_eq!(
            required("setting", "k", None),
            Err("setting `k` is not set".into())
        );
    }
}
