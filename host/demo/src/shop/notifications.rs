//! Checking paygate's notifications the way any merchant should: the
//! Standard Webhooks signature (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`), compared in constant time, and a timestamp no
//! further than five minutes from now; then reading the body.

use std::fmt;

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use paygate::{OrderId, PaymentId};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far a notification's timestamp may be from now, either way.
pub const TOLERANCE_SECS: i64 = 300;

/// Longest `webhook-id` accepted; paygate's are UUIDs.
const MAX_ID: usize = 255;

/// The HMAC key of notifications: the bytes a `whsec_…` secret encodes.
#[derive(Clone)]
pub struct WebhookKey(Vec<u8>);

impl WebhookKey {
    /// Decodes `whsec_<base64>`, the form `paygate merchants create` prints.
    pub fn parse(secret: &str) -> Result<Self, String> {
        let encoded = secret.trim().strip_prefix("whsec_").ok_or_else(|| {
            "must be the merchant's webhook secret, starting with whsec_".to_owned()
        })?;
        match STANDARD.decode(encoded) {
            Ok(key) if !key.is_empty() => Ok(Self(key)),
            _ => Err("must be whsec_ followed by base64".to_owned()),
        }
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookKey([redacted])")
    }
}

/// Why a notification was refused before its body was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// A header missing or malformed, or no signature matching.
    InvalidSignature,
    /// Correctly signed, but the timestamp is outside the tolerance.
    Expired,
}

/// Checks the signature first and the age second, so a stale timestamp is
/// only reported for a notification that really came from paygate.
/// Returns the `webhook-id`.
pub fn verify(
    key: &WebhookKey,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: i64,
) -> Result<String, Refused> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let (Some(id), Some(timestamp), Some(signatures)) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    ) else {
        return Err(Refused::InvalidSignature);
    };
    if id.is_empty() || id.len() > MAX_ID {
        return Err(Refused::InvalidSignature);
    }
    let sent_at: i64 = timestamp.parse().map_err(|_| Refused::InvalidSignature)?;
    let expected = key.mac(id, timestamp, body).finalize().into_bytes();
    // Several signatures may be sent while a secret is rotated; one match is
    // enough. Versions other than v1 are skipped, as the scheme asks.
    let matches = signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .any(|given| bool::from(given.as_slice().ct_eq(expected.as_slice())));
    if !matches {
        return Err(Refused::InvalidSignature);
    }
    if sent_at.abs_diff(now_secs) > TOLERANCE_SECS as u64 {
        return Err(Refused::Expired);
    }
    Ok(id.to_owned())
}

/// The notification body fields the shop acts on (API.md, "Notifications
/// to merchants"); the others are ignored.
#[derive(Clone, Debug, Deserialize)]
pub struct Notification {
    pub event_type: String,
    pub order_id: OrderId,
    pub payment_id: PaymentId,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NOW: i64 = 1_800_000_000;

    fn signed(id: &str, timestamp: i64, body: &str, signature: Option<String>) -> HeaderMap {
        let key = WebhookKey::parse(SECRET).unwrap();
        let t = timestamp.to_string();
        let sig = signature.unwrap_or_else(|| {
            let mac = key.mac(id, &t, body.as_bytes()).finalize().into_bytes();
            format!("v1,{}", STANDARD.encode(mac))
        });
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", id.parse().unwrap());
        headers.insert("webhook-timestamp", t.parse().unwrap());
        headers.insert("webhook-signature", sig.parse().unwrap());
        headers
    }

    fn check(headers: &HeaderMap, body: &str) -> Result<String, Refused> {
        verify(
            &WebhookKey::parse(SECRET).unwrap(),
            headers,
            body.as_bytes(),
            NOW,
        )
    }

    #[test]
    fn accepts_a_signature_among_several() {
        let headers = signed("msg_1", NOW, "{}", None);
        assert_eq!(check(&headers, "{}"), Ok("msg_1".to_owned()));
        let good = headers["webhook-signature"].to_str().unwrap().to_owned();
        let several = format!("v1a,xyz v1,AAAA {good}");
        assert!(check(&signed("msg_1", NOW, "{}", Some(several)), "{}").is_ok());
    }

    #[test]
    fn refuses_what_does_not_match() {
        let headers = signed("msg_1", NOW, "{}", None);
        assert_eq!(check(&headers, "{ }"), Err(Refused::InvalidSignature));
        let good = headers["webhook-signature"].to_str().unwrap().to_owned();
        for bad in [&good[..good.len() - 4], "v2,abc", "v1,not base64!", ""] {
            let headers = signed("msg_1", NOW, "{}", Some(bad.to_owned()));
            assert_eq!(
                check(&headers, "{}"),
                Err(Refused::InvalidSignature),
                "{bad}"
            );
        }
        for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            let mut headers = headers.clone();
            headers.remove(missing);
            assert_eq!(check(&headers, "{}"), Err(Refused::InvalidSignature));
        }
    }

    #[test]
    fn refuses_stale_and_future_timestamps_once_signed() {
        for t in [NOW - 301, NOW + 301] {
            assert_eq!(
                check(&signed("m", t, "{}", None), "{}"),
                Err(Refused::Expired)
            );
        }
        for t in [NOW - 300, NOW + 300] {
            assert!(check(&signed("m", t, "{}", None), "{}").is_ok());
        }
    }

    #[test]
    fn keys_must_be_webhook_secrets() {
        assert!(WebhookKey::parse("whsec_").is_err());
        assert!(WebhookKey::parse("whsec_***").is_err());
        assert!(WebhookKey::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert_eq!(
            format!("{:?}", WebhookKey::parse(SECRET).unwrap()),
            "WebhookKey([redacted])"
        );
    }
}
