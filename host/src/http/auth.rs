//! `X-Api-Key` and, for merchants who require it, signed writes.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::error::ApiError;
use crate::merchants::{Merchant, Merchants, Scope};
use crate::plugins::Clock;

/// Tolerance of a signed write's timestamp, both ways.
const SIGNATURE_TOLERANCE_SECS: u64 = 300;

/// The merchant behind the request's key, allowed to act with `scope`.
/// `body` is the raw body of a write, checked against `X-Signature` when
/// the merchant requires signed writes.
pub async fn authenticate(
    merchants: &Merchants,
    headers: &HeaderMap,
    scope: Scope,
    body: &[u8],
) -> Result<Merchant, ApiError> {
    let key = headers.get("x-api-key").ok_or(ApiError::Unauthorized)?;
    let key = key.to_str().map_err(|_| ApiError::InvalidApiKey)?;
    let merchant = merchants
        .by_key(key)
        .await?
        .ok_or(ApiError::InvalidApiKey)?;
    tracing::Span::current().record("merchant_id", merchant.id.get());
    if scope == Scope::Write {
        if merchant.scope != Scope::Write {
            return Err(ApiError::Forbidden("this key is read-only"));
        }
        if let Some(secret) = &merchant.request_signing_secret {
            let header = headers
                .get("x-signature")
                .and_then(|v| v.to_str().ok())
                .ok_or(ApiError::Forbidden(
                    "this merchant requires signed writes (X-Signature)",
                ))?;
            verify_signed_write(secret.expose(), header, body, Clock::System.now_ms() / 1000)?;
        }
    }
    Ok(merchant)
}

/// Checks `t=<unix>,v1=<hex HMAC-SHA256(secret, "{t}.{body}")>`.
pub fn verify_signed_write(
    secret: &str,
    header: &str,
    body: &[u8],
    now_secs: u64,
) -> Result<(), ApiError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t),
            Some(("v1", sig)) => signatures.push(sig),
            _ => {}
        }
    }
    let bad =
        || ApiError::InvalidSignature("the X-Signature header is malformed or does not match");
    let t = timestamp.ok_or_else(bad)?;
    let t_secs: i64 = t.parse().map_err(|_| bad())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| bad())?;
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    let matches = signatures.iter().any(|sig| {
        hex::decode(sig)
            .is_ok_and(|given| subtle::ConstantTimeEq::ct_eq(&given[..], &expected[..]).into())
    });
    if !matches {
        return Err(bad());
    }
    // In i128: `now` is a u64 and `t` any i64, so their difference needs
    // 65 bits; in i64 it wrapped, and a far-off `t` could look fresh.
    let skew = (i128::from(now_secs) - i128::from(t_secs)).unsigned_abs();
    if skew > u128::from(SIGNATURE_TOLERANCE_SECS) {
        return Err(ApiError::SignatureExpired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, t: u64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signed_writes_check_signature_then_time() {
        let now = 1_800_000_000;
        let body = br#"{"order_id":1}"#;
        assert!(verify_signed_write("s3cret", &sign("s3cret", now, body), body, now).is_ok());
        assert!(verify_signed_write("s3cret", &sign("s3cret", now - 300, body), body, now).is_ok());
        let old =
            verify_signed_write("s3cret", &sign("s3cret", now - 301, body), body, now).unwrap_err();
        assert_eq!(old.code(), "signature_expired");
        for header in [
            sign("other", now, body),
            "t=1".into(),
            "garbage".into(),
            format!("t={now},v1=zz"),
        ] {
            let err = verify_signed_write("s3cret", &header, body, now).unwrap_err();
            assert_eq!(err.code(), "invalid_signature", "{header}");
        }
        let tampered =
            verify_signed_write("s3cret", &sign("s3cret", now, body), b"{}", now).unwrap_err();
        assert_eq!(tampered.code(), "invalid_signature");
    }

    /// Found by the `signed_write` fuzz target: the skew was computed in
    /// i64, so a far-off timestamp wrapped around to look fresh (or
    /// overflowed, in a build with overflow checks).
    #[test]
    fn far_off_timestamps_are_expired_not_wrapped() {
        let body = b"{}";
        let signed_at = |t: i64| {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
            mac.update(format!("{t}.").as_bytes());
            mac.update(body);
            format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
        };
        let now: u64 = 1_800_000_000;
        for (t, now) in [
            (-4_412_750_543_122_677_054, 14_033_993_530_586_874_562),
            (now as i64 - i64::MAX - 1, now),
            (i64::MIN, now),
            (i64::MAX, 0),
        ] {
            let err = verify_signed_write("s3cret", &signed_at(t), body, now).unwrap_err();
            assert_eq!(err.code(), "signature_expired", "t={t} now={now}");
        }
    }
}
