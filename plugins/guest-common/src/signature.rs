//! The webhook signature schemes the verifier plugins check: Stripe's
//! `Stripe-Signature` header and the internal hex HMAC of the raw body.
//!
//! They live here, free of WIT types, so that the fuzz targets in `fuzz/`
//! and the unit tests run them natively; [`verifier_glue!`](crate::verifier_glue)
//! turns a [`Rejected`] into the calling crate's `verify-error`.

use crate::{crypto, headers, hex};

/// Why a signature was refused, mirroring the WIT `verify-error` cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// Missing, malformed or not matching.
    Invalid(String),
    /// Matching, but outside the allowed clock skew.
    Expired(String),
}

/// The parts of a `Stripe-Signature` header (`t=<unix>,v1=<hex>[,v1=<hex>...]`)
/// that take part in verification.
#[derive(Debug, PartialEq, Eq)]
pub struct StripeHeader<'a> {
    /// The timestamp exactly as sent, because it is signed as text.
    pub timestamp_text: &'a str,
    /// The timestamp in Unix seconds.
    pub timestamp: i64,
    /// Every well-formed `v1` signature; Stripe sends several while a
    /// secret is being rolled.
    pub v1: Vec<Vec<u8>>,
}

/// Parses a `Stripe-Signature` header; `None` without a numeric `t` or
/// without any `v1`. Other schemes (`v0` is a test-mode scheme) are ignored,
/// and so is a `v1` that is not hex, since it could never match.
pub fn parse_stripe(value: &str) -> Option<StripeHeader<'_>> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in value.split(',') {
        let Some((key, val)) = item.split_once('=') else {
            continue;
        };
        match key.trim() {
            "t" if timestamp.is_none() => timestamp = Some(val.trim()),
            "v1" => v1.extend(hex::decode(val.trim())),
            _ => {}
        }
    }
    let timestamp_text = timestamp?;
    // Only digits: `i64::from_str` alone would also accept a sign.
    if timestamp_text.is_empty() || !timestamp_text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let timestamp = timestamp_text.parse().ok()?;
    (!v1.is_empty()).then_some(StripeHeader {
        timestamp_text,
        timestamp,
        v1,
    })
}

/// What Stripe signs: `"{t}.{body}"`.
pub fn stripe_payload(timestamp_text: &str, body: &[u8]) -> Vec<u8> {
    let mut signed = Vec::with_capacity(timestamp_text.len() + 1 + body.len());
    signed.extend_from_slice(timestamp_text.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    signed
}

/// The MAC Stripe puts in `v1`: HMAC-SHA256 of `"{t}.{body}"` under the
/// whole `whsec_...` string.
pub fn stripe_mac(secret: &str, timestamp_text: &str, body: &[u8]) -> [u8; 32] {
    crypto::hmac_sha256(secret.as_bytes(), &stripe_payload(timestamp_text, body))
}

/// Checks a `Stripe-Signature` header against `body`: first the MAC, then
/// the age, so an attacker learns nothing about timing rules from unsigned
/// requests.
pub fn check_stripe(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now_ms: u64,
    tolerance_seconds: u64,
) -> Result<(), Rejected> {
    let header =
        header.ok_or_else(|| Rejected::Invalid("missing stripe-signature header".into()))?;
    let parsed = parse_stripe(header)
        .ok_or_else(|| Rejected::Invalid("unparseable stripe-signature header".into()))?;
    let signed = stripe_payload(parsed.timestamp_text, body);
    // Each candidate is checked by the `hmac` crate's constant-time
    // comparison, and every one is checked, so timing does not tell which
    // matched or how much of a forgery was right.
    let matched = parsed.v1.iter().fold(false, |any, candidate| {
        any | crypto::verify_hmac_sha256(secret.as_bytes(), &signed, candidate)
    });
    if !matched {
        return Err(Rejected::Invalid("no v1 signature matches the body".into()));
    }
    let now = i128::from(now_ms / 1000);
    let skew = (now - i128::from(parsed.timestamp)).abs();
    if skew > i128::from(tolerance_seconds) {
        return Err(Rejected::Expired(format!(
            "timestamp {} is {skew}s away from now, tolerance is {tolerance_seconds}s",
            parsed.timestamp
        )));
    }
    Ok(())
}

/// Headers that may carry the internal signature, in order of preference.
pub const INTERNAL_HEADERS: [&str; 2] = ["x-internal-signature", "x-provider-signature"];

/// Checks the internal scheme: a hex HMAC-SHA256 of the raw body in
/// `X-Internal-Signature` (or `X-Provider-Signature`).
pub fn check_internal(
    secret: &str,
    header_list: &[(String, String)],
    body: &[u8],
) -> Result<(), Rejected> {
    let given = INTERNAL_HEADERS
        .iter()
        .find_map(|name| headers::find(header_list, name))
        .ok_or_else(|| Rejected::Invalid("missing signature header".into()))?;
    let given = hex::decode(given.trim())
        .ok_or_else(|| Rejected::Invalid("signature is not hex".into()))?;
    if crypto::verify_hmac_sha256(secret.as_bytes(), body, &given) {
        Ok(())
    } else {
        Err(Rejected::Invalid(
            "signature does not match the body".into(),
        ))
    }
}

/// Bridges [`Rejected`] to the `verify-error` generated in the calling crate.
///
/// Expand once at the root of a crate whose `generate!` targets the
/// `webhook-verifier` world: `verifier_glue!()` where the package's module
/// is `paygate::plugins` (one WIT version in the crate's `wit/`), or
/// `verifier_glue!(crate::exports::paygate::plugins0_2_0::verifier)` naming
/// the generated interface module.
// `crate` (not `$crate`) is deliberate: the generated types live in the
// crate that expands the macro.
#[allow(clippy::crate_in_macro_def)]
#[macro_export]
macro_rules! verifier_glue {
    () => {
        $crate::verifier_glue!(crate::exports::paygate::plugins::verifier);
    };
    ($($interface:ident)::+) => {
        impl ::core::convert::From<$crate::signature::Rejected>
            for $($interface)::+::VerifyError
        {
            fn from(rejected: $crate::signature::Rejected) -> Self {
                match rejected {
                    $crate::signature::Rejected::Invalid(m) => Self::InvalidSignature(m),
                    $crate::signature::Rejected::Expired(m) => Self::SignatureExpired(m),
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test";
    const BODY: &[u8] = br#"{"id":"evt_1"}"#;
    const NOW_MS: u64 = 1_700_000_000_000;

    fn sign(t: &str, body: &[u8]) -> String {
        hex::encode(&stripe_mac(SECRET, t, body))
    }

    fn is_invalid(result: Result<(), Rejected>) -> bool {
        matches!(result, Err(Rejected::Invalid(_)))
    }

    #[test]
    fn parses_stripe_headers() {
        let parsed = parse_stripe("t=12, v1=ab ,v1=zz,v0=cd,v1=CD").unwrap();
        assert_eq!(parsed.timestamp, 12);
        assert_eq!(parsed.v1, vec![vec![0xab], vec![0xcd]]);
        for bad in [
            "",
            "v1=ab",
            "t=12",
            "t=x,v1=ab",
            "t=-5,v1=ab",
            "t=,v1=ab",
            "t=1,v1=zz",
        ] {
            assert!(parse_stripe(bad).is_none(), "{bad:?} parsed");
        }
    }

    #[test]
    fn accepts_a_valid_stripe_signature() {
        let header = format!("t=1700000000,v1={}", sign("1700000000", BODY));
        assert!(check_stripe(SECRET, Some(&header), BODY, NOW_MS, 300).is_ok());
    }

    #[test]
    fn accepts_any_matching_v1() {
        let header = format!(
            "t=1700000000,v1={},v1={},v0=00",
            "00".repeat(32),
            sign("1700000000", BODY).to_uppercase()
        );
        assert!(check_stripe(SECRET, Some(&header), BODY, NOW_MS, 300).is_ok());
    }

    #[test]
    fn rejects_wrong_or_missing_stripe_signatures() {
        let good = sign("1700000000", BODY);
        let check = |secret: &str, header: Option<&str>, body: &[u8]| {
            check_stripe(secret, header, body, NOW_MS, 300)
        };
        assert!(is_invalid(check(SECRET, None, BODY)));
        assert!(is_invalid(check(SECRET, Some("garbage"), BODY)));
        let header = format!("t=1700000000,v1={good}");
        assert!(is_invalid(check(SECRET, Some(&header), b"{}")));
        assert!(is_invalid(check("other", Some(&header), BODY)));
        // The timestamp is part of the signed text, so changing it breaks the MAC.
        let moved = format!("t=1700000001,v1={good}");
        assert!(is_invalid(check(SECRET, Some(&moved), BODY)));
        let v0_only = format!("t=1700000000,v0={good}");
        assert!(is_invalid(check(SECRET, Some(&v0_only), BODY)));
    }

    #[test]
    fn enforces_the_tolerance_after_the_signature() {
        let at = |t: &str| format!("t={t},v1={}", sign(t, BODY));
        let check = |header: &str| check_stripe(SECRET, Some(header), BODY, NOW_MS, 300);
        assert!(check(&at("1699999700")).is_ok());
        assert!(check(&at("1700000300")).is_ok());
        assert!(matches!(
            check(&at("1699999699")),
            Err(Rejected::Expired(_))
        ));
        assert!(matches!(
            check(&at("1700000301")),
            Err(Rejected::Expired(_))
        ));
        // An old timestamp with a bad MAC is a bad signature, not an expired one.
        let forged = format!("t=1,v1={}", "00".repeat(32));
        assert!(is_invalid(check(&forged)));
    }

    fn headers_with(name: &str, value: &str) -> Vec<(String, String)> {
        vec![(name.to_string(), value.to_string())]
    }

    fn internal_signature() -> String {
        hex::encode(&crypto::hmac_sha256(SECRET.as_bytes(), BODY))
    }

    #[test]
    fn internal_accepts_either_header_in_any_case() {
        let sig = internal_signature();
        let headers = headers_with("x-internal-signature", &sig);
        assert!(check_internal(SECRET, &headers, BODY).is_ok());
        let upper = headers_with("X-Provider-Signature", &sig.to_uppercase());
        assert!(check_internal(SECRET, &upper, BODY).is_ok());
    }

    #[test]
    fn internal_rejects_bad_signatures() {
        let invalid =
            |h: Vec<(String, String)>, body: &[u8]| is_invalid(check_internal(SECRET, &h, body));
        let sig = internal_signature();
        assert!(invalid(Vec::new(), BODY));
        assert!(invalid(
            headers_with("x-internal-signature", "nothex"),
            BODY
        ));
        let zeros = "00".repeat(32);
        assert!(invalid(headers_with("x-internal-signature", &zeros), BODY));
        assert!(invalid(headers_with("x-internal-signature", &sig), b"{}"));
        assert!(invalid(
            headers_with("x-internal-signature", &sig[..62]),
            BODY
        ));
    }
}
