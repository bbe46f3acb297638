//! The `Stripe-Signature` header: `t=<unix>,v1=<hex>[,v1=<hex>...]`.

use crate::exports::paygate::plugins::verifier::VerifyError;
use guest_common::{crypto, hex};

/// The parts of the header that take part in verification.
#[derive(Debug, PartialEq, Eq)]
pub struct SignatureHeader<'a> {
    /// The timestamp exactly as sent, because it is signed as text.
    pub timestamp_text: &'a str,
    /// The timestamp in Unix seconds.
    pub timestamp: i64,
    /// Every well-formed `v1` signature; Stripe sends several while a
    /// secret is being rolled.
    pub v1: Vec<Vec<u8>>,
}

/// Parses the header; `None` without a numeric `t` or without any `v1`.
/// Other schemes (`v0` is a test-mode scheme) are ignored, and so is a `v1`
/// that is not hex, since it could never match.
pub fn parse(value: &str) -> Option<SignatureHeader<'_>> {
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
    (!v1.is_empty()).then_some(SignatureHeader {
        timestamp_text,
        timestamp,
        v1,
    })
}

/// Checks the header against `body`: first the MAC, then the age, so an
/// attacker learns nothing about timing rules from unsigned requests.
pub fn check(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now_ms: u64,
    tolerance_seconds: u64,
) -> Result<(), VerifyError> {
    let header = header
        .ok_or_else(|| VerifyError::InvalidSignature("missing stripe-signature header".into()))?;
    let parsed = parse(header).ok_or_else(|| {
        VerifyError::InvalidSignature("unparseable stripe-signature header".into())
    })?;
    let mut signed = Vec::with_capacity(parsed.timestamp_text.len() + 1 + body.len());
    signed.extend_from_slice(parsed.timestamp_text.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    let expected = crypto::hmac_sha256(secret.as_bytes(), &signed);
    // Compare against every candidate, so timing does not tell which matched.
    let matched = parsed.v1.iter().fold(false, |any, candidate| {
        any | crypto::constant_time_eq(candidate, &expected)
    });
    if !matched {
        return Err(VerifyError::InvalidSignature(
            "no v1 signature matches the body".into(),
        ));
    }
    let now = i128::from(now_ms / 1000);
    let skew = (now - i128::from(parsed.timestamp)).abs();
    if skew > i128::from(tolerance_seconds) {
        return Err(VerifyError::SignatureExpired(format!(
            "timestamp {} is {skew}s away from now, tolerance is {tolerance_seconds}s",
            parsed.timestamp
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test";
    const BODY: &[u8] = br#"{"id":"evt_1"}"#;
    const NOW_MS: u64 = 1_700_000_000_000;

    fn sign(t: &str, body: &[u8]) -> String {
        let mut signed = format!("{t}.").into_bytes();
        signed.extend_from_slice(body);
        hex::encode(&crypto::hmac_sha256(SECRET.as_bytes(), &signed))
    }

    fn is_invalid(result: Result<(), VerifyError>) -> bool {
        matches!(result, Err(VerifyError::InvalidSignature(_)))
    }

    #[test]
    fn parses_headers() {
        let parsed = parse("t=12, v1=ab ,v1=zz,v0=cd,v1=CD").unwrap();
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
            assert!(parse(bad).is_none(), "{bad:?} parsed");
        }
    }

    #[test]
    fn accepts_a_valid_signature() {
        let header = format!("t=1700000000,v1={}", sign("1700000000", BODY));
        assert!(check(SECRET, Some(&header), BODY, NOW_MS, 300).is_ok());
    }

    #[test]
    fn accepts_any_matching_v1() {
        let header = format!(
            "t=1700000000,v1={},v1={},v0=00",
            "00".repeat(32),
            sign("1700000000", BODY).to_uppercase()
        );
        assert!(check(SECRET, Some(&header), BODY, NOW_MS, 300).is_ok());
    }

    #[test]
    fn rejects_wrong_or_missing_signatures() {
        let good = sign("1700000000", BODY);
        assert!(is_invalid(check(SECRET, None, BODY, NOW_MS, 300)));
        assert!(is_invalid(check(
            SECRET,
            Some("garbage"),
            BODY,
            NOW_MS,
            300
        )));
        let header = format!("t=1700000000,v1={good}");
        assert!(is_invalid(check(SECRET, Some(&header), b"{}", NOW_MS, 300)));
        assert!(is_invalid(check("other", Some(&header), BODY, NOW_MS, 300)));
        // The timestamp is part of the signed text, so changing it breaks the MAC.
        let moved = format!("t=1700000001,v1={good}");
        assert!(is_invalid(check(SECRET, Some(&moved), BODY, NOW_MS, 300)));
        let v0_only = format!("t=1700000000,v0={good}");
        assert!(is_invalid(check(SECRET, Some(&v0_only), BODY, NOW_MS, 300)));
    }

    #[test]
    fn enforces_the_tolerance_after_the_signature() {
        let at = |t: &str| format!("t={t},v1={}", sign(t, BODY));
        assert!(check(SECRET, Some(&at("1699999700")), BODY, NOW_MS, 300).is_ok());
        assert!(check(SECRET, Some(&at("1700000300")), BODY, NOW_MS, 300).is_ok());
        let old = check(SECRET, Some(&at("1699999699")), BODY, NOW_MS, 300);
        assert!(matches!(old, Err(VerifyError::SignatureExpired(_))));
        let future = check(SECRET, Some(&at("1700000301")), BODY, NOW_MS, 300);
        assert!(matches!(future, Err(VerifyError::SignatureExpired(_))));
        // An old timestamp with a bad MAC is a bad signature, not an expired one.
        let forged = format!("t=1,v1={}", "00".repeat(32));
        assert!(is_invalid(check(SECRET, Some(&forged), BODY, NOW_MS, 300)));
    }
}
