//! `X-Api-Key` and, for merchants who require it, signed writes.

use axum::http::{HeaderMap, Method, Uri};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::error::ApiError;
use crate::merchants::{Merchant, Merchants, Scope};
use crate::plugins::Clock;

/// Tolerance of a signed write's timestamp, both ways.
const SIGNATURE_TOLERANCE_SECS: u64 = 300;

/// What a request asks to do, as authentication needs to know it.
pub enum Access<'a> {
    Read,
    /// A write, and what its signature must cover when the merchant
    /// requires signed writes.
    Write(SignedWrite<'a>),
}

/// What a signed write's `v2` signature covers: the method, the request
/// target (path and query, as sent) and the raw body. The legacy `v1` form
/// covers the body alone, so it is accepted only where the body says all
/// the write does: creating a payment (security review, finding 12: a `v1`
/// signature over one payment's empty retry body was valid for any other
/// payment's retry, and a body could be replayed to another route).
pub struct SignedWrite<'a> {
    pub method: &'a Method,
    pub target: &'a str,
    pub body: &'a [u8],
}

impl<'a> SignedWrite<'a> {
    pub fn of(method: &'a Method, uri: &'a Uri, body: &'a [u8]) -> Self {
        let target = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
        Self {
            method,
            target,
            body,
        }
    }

    /// `POST /api/v1/payments` with `body`: creating a payment.
    pub fn create(body: &'a [u8]) -> Self {
        Self {
            method: &Method::POST,
            target: "/api/v1/payments",
            body,
        }
    }

    fn accepts_v1(&self) -> bool {
        self.method == Method::POST && self.target == "/api/v1/payments"
    }
}

/// The method and target of a request: what a `v2` signature covers
/// besides the body.
pub struct Target {
    method: Method,
    uri: Uri,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Target {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
        })
    }
}

impl Target {
    /// This request as a write with `body`.
    pub fn write<'a>(&'a self, body: &'a [u8]) -> Access<'a> {
        Access::Write(SignedWrite::of(&self.method, &self.uri, body))
    }
}

/// The merchant behind the request's key, allowed to `access`. A write is
/// checked against `X-Signature` when the merchant requires signed writes.
pub async fn authenticate(
    merchants: &Merchants,
    headers: &HeaderMap,
    access: Access<'_>,
) -> Result<Merchant, ApiError> {
    let key = headers.get("x-api-key").ok_or(ApiError::Unauthorized)?;
    let key = key.to_str().map_err(|_| ApiError::InvalidApiKey)?;
    let merchant = merchants
        .by_key(key)
        .await?
        .ok_or(ApiError::InvalidApiKey)?;
    tracing::Span::current().record("merchant_id", merchant.id.get());
    super::access_log::note_merchant(merchant.id.get());
    if let Access::Write(write) = access {
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
            verify_signed_write(
                secret.expose(),
                header,
                &write,
                Clock::System.now_ms() / 1000,
            )?;
        }
    }
    Ok(merchant)
}

/// Checks `t=<unix>,v2=<hex HMAC-SHA256(secret, "{t}.{METHOD}.{target}.{body}")>`,
/// or where the write allows it, `v1=<hex HMAC-SHA256(secret, "{t}.{body}")>`.
pub fn verify_signed_write(
    secret: &str,
    header: &str,
    write: &SignedWrite<'_>,
    now_secs: u64,
) -> Result<(), ApiError> {
    let mut timestamp = None;
    let (mut v1, mut v2) = (Vec::new(), Vec::new());
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t),
            Some(("v1", sig)) => v1.push(sig),
            Some(("v2", sig)) => v2.push(sig),
            _ => {}
        }
    }
    let bad =
        || ApiError::InvalidSignature("the X-Signature header is malformed or does not match");
    let t = timestamp.ok_or_else(bad)?;
    let t_secs: i64 = t.parse().map_err(|_| bad())?;
    let mac = || Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| bad());
    let mut bound = mac()?;
    for part in [
        t.as_bytes(),
        write.method.as_str().as_bytes(),
        write.target.as_bytes(),
    ] {
        bound.update(part);
        bound.update(b".");
    }
    bound.update(write.body);
    let mut matches = any_matches(&v2, &bound.finalize().into_bytes());
    if !matches && write.accepts_v1() {
        let mut body_only = mac()?;
        body_only.update(t.as_bytes());
        body_only.update(b".");
        body_only.update(write.body);
        matches = any_matches(&v1, &body_only.finalize().into_bytes());
    }
    if !matches {
        if v2.is_empty() && !v1.is_empty() && !write.accepts_v1() {
            return Err(ApiError::InvalidSignature(
                "this write must be signed with v2 (method, path and query, body)",
            ));
        }
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

/// Whether any hex signature in `given` is `expected`, in constant time.
fn any_matches(given: &[&str], expected: &[u8]) -> bool {
    given.iter().any(|sig| {
        hex::decode(sig)
            .is_ok_and(|given| subtle::ConstantTimeEq::ct_eq(&given[..], expected).into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: &str = "/api/v1/payments";

    fn write<'a>(method: &'a Method, target: &'a str, body: &'a [u8]) -> SignedWrite<'a> {
        SignedWrite {
            method,
            target,
            body,
        }
    }

    fn sign(secret: &str, t: u64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn sign_v2(secret: &str, t: u64, method: &str, target: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.{method}.{target}.").as_bytes());
        mac.update(body);
        format!("t={t},v2={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signed_writes_check_signature_then_time() {
        let now = 1_800_000_000;
        let body = br#"{"order_id":1}"#;
        let create = write(&Method::POST, CREATE, body);
        let check = |header: &str| verify_signed_write("s3cret", header, &create, now);
        assert!(check(&sign("s3cret", now, body)).is_ok());
        assert!(check(&sign("s3cret", now - 300, body)).is_ok());
        assert!(check(&sign_v2("s3cret", now, "POST", CREATE, body)).is_ok());
        let old = check(&sign("s3cret", now - 301, body)).unwrap_err();
        assert_eq!(old.code(), "signature_expired");
        for header in [
            sign("other", now, body),
            "t=1".into(),
            "garbage".into(),
            format!("t={now},v1=zz"),
            sign_v2("s3cret", now, "POST", "/api/v1/payments?x=1", body),
        ] {
            let err = check(&header).unwrap_err();
            assert_eq!(err.code(), "invalid_signature", "{header}");
        }
        let tampered = write(&Method::POST, CREATE, b"{}");
        let err = verify_signed_write("s3cret", &sign("s3cret", now, body), &tampered, now);
        assert_eq!(err.unwrap_err().code(), "invalid_signature");
    }

    /// Security review, finding 12: a signature bound only the body, so the
    /// one over payment 1's (empty) retry also signed payment 2's.
    #[test]
    fn a_signature_binds_the_method_and_target_of_every_other_write() {
        let now = 1_800_000_000;
        let (one, two) = (
            "/api/v1/payments/1/notifications/retry",
            "/api/v1/payments/2/notifications/retry",
        );
        let retry_one = write(&Method::POST, one, b"");
        let retry_two = write(&Method::POST, two, b"");
        let v2 = sign_v2("s3cret", now, "POST", one, b"");
        assert!(verify_signed_write("s3cret", &v2, &retry_one, now).is_ok());
        let replayed = verify_signed_write("s3cret", &v2, &retry_two, now).unwrap_err();
        assert_eq!(replayed.code(), "invalid_signature");
        // The body-only form signs nothing but a create.
        let v1 = sign("s3cret", now, b"");
        for target in [&retry_one, &retry_two] {
            let err = verify_signed_write("s3cret", &v1, target, now).unwrap_err();
            assert_eq!(err.code(), "invalid_signature");
            assert!(err.to_string().contains("v2"), "{err}");
        }
        let put = write(&Method::PUT, CREATE, b"{}");
        let v1 = sign("s3cret", now, b"{}");
        assert!(verify_signed_write("s3cret", &v1, &put, now).is_err());
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
        let create = write(&Method::POST, CREATE, body);
        for (t, now) in [
            (-4_412_750_543_122_677_054, 14_033_993_530_586_874_562),
            (now as i64 - i64::MAX - 1, now),
            (i64::MIN, now),
            (i64::MAX, 0),
        ] {
            let err = verify_signed_write("s3cret", &signed_at(t), &create, now).unwrap_err();
            assert_eq!(err.code(), "signature_expired", "t={t} now={now}");
        }
    }
}
