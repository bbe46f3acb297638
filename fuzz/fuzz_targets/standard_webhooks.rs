//! The Standard Webhooks signatures of paygate's notifications: signed by
//! the notifier (`paygate::notifier::sign`), checked by the demo shop the
//! way any merchant should (`paygate_demo::shop::notifications::verify`).
//!
//! verify(sign(x)) is accepted within the tolerance, expired outside it, and
//! refused for another body, id or key, among any other signatures in the
//! header. For raw headers: never a panic, and an accepted notification
//! carries the MAC recomputed here and a timestamp within the tolerance.
#![no_main]

use arbitrary::Arbitrary;
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use paygate::plugins::Secret;
use paygate_demo::shop::notifications::{Refused, TOLERANCE_SECS, WebhookKey, verify};
use paygate_fuzz::{Input, read};
use sha2::Sha256;

/// A notification signed here, among other signatures.
#[derive(Arbitrary, Debug)]
struct Signed {
    key: Vec<u8>,
    id: String,
    timestamp: i64,
    now: i64,
    body: Vec<u8>,
    others: Vec<String>,
    position: u8,
}

fuzz_target!(|data: &[u8]| match read::<Signed>(data, 5) {
    // whsec_ secret, webhook-id, webhook-timestamp, webhook-signature, now;
    // then the body.
    Some(Input::Text(lines, body)) => {
        let Some(key) = lines[0]
            .strip_prefix("whsec_")
            .and_then(|k| STANDARD.decode(k).ok())
        else {
            return;
        };
        if let Ok(now) = lines[4].parse() {
            raw(&key, lines[1], lines[2], lines[3], body, now);
        }
    }
    Some(Input::Structured(signed)) => signed_notification(signed),
    None => {}
});

fn raw(key: &[u8], id: &str, timestamp: &str, signatures: &str, body: &[u8], now: i64) {
    let Ok(webhook_key) = WebhookKey::parse(&format!("whsec_{}", STANDARD.encode(key))) else {
        assert!(key.is_empty());
        return;
    };
    let headers = headers(id, timestamp, signatures);
    if let Ok(got) = verify(&webhook_key, &headers, body, now) {
        assert_eq!(got, id);
        let sent_at: i64 = timestamp
            .parse()
            .expect("an accepted timestamp is a number");
        assert!(sent_at.abs_diff(now) <= TOLERANCE_SECS as u64);
        let expected = mac(key, id, timestamp, body);
        assert!(
            signatures
                .split(' ')
                .filter_map(|s| s.strip_prefix("v1,"))
                .any(|s| STANDARD.decode(s).is_ok_and(|given| given == expected))
        );
    }
}

fn signed_notification(input: Signed) {
    let Signed {
        key,
        id,
        timestamp,
        now,
        body,
        others,
        position,
    } = input;
    let secret = format!("whsec_{}", STANDARD.encode(&key));
    let Ok(webhook_key) = WebhookKey::parse(&secret) else {
        assert!(key.is_empty(), "{secret:?} refused");
        return;
    };
    let signature = paygate::notifier::sign(&Secret::new(secret), &id, timestamp, &body)
        .expect("a whsec_ secret signs");
    let mut entries: Vec<String> = others
        .into_iter()
        .filter(|o| o.bytes().all(|b| b.is_ascii_graphic()))
        .collect();
    let at = usize::from(position) % (entries.len() + 1);
    entries.insert(at, signature);
    let signatures = entries.join(" ");
    let t = timestamp.to_string();
    let headers = headers(&id, &t, &signatures);
    let usable_id = !id.is_empty()
        && id.len() <= 255
        && headers.get("webhook-id").and_then(|v| v.to_str().ok()) == Some(id.as_str());
    let result = verify(&webhook_key, &headers, &body, now);
    if !usable_id {
        assert_eq!(result, Err(Refused::InvalidSignature));
        return;
    }
    if timestamp.abs_diff(now) <= TOLERANCE_SECS as u64 {
        assert_eq!(result, Ok(id.clone()));
    } else {
        assert_eq!(result, Err(Refused::Expired));
    }
    let mut other_body = body.clone();
    other_body.push(b'x');
    let refused = Err(Refused::InvalidSignature);
    assert_eq!(verify(&webhook_key, &headers, &other_body, now), refused);
    let mut other_key = key.clone();
    other_key[0] ^= 1;
    let other = WebhookKey::parse(&format!("whsec_{}", STANDARD.encode(&other_key))).unwrap();
    assert_eq!(verify(&other, &headers, &body, now), refused);
    if id.len() < 255 {
        let renamed = self::headers(&format!("{id}x"), &t, &signatures);
        assert_eq!(verify(&webhook_key, &renamed, &body, now), refused);
    }
    raw(&key, &id, &t, &signatures, &body, now);
}

/// The three headers, each left out when it is no valid header value.
fn headers(id: &str, timestamp: &str, signatures: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("webhook-id", id),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", signatures),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    headers
}

fn mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}
