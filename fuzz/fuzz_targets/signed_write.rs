//! Signed writes of a payment's creation: `X-Signature: t=<unix>,v1=<hex
//! HMAC-SHA256(secret, "{t}.{body}")>` (`paygate::http::auth::verify_signed_write`;
//! the `v2` form, which binds the method and target too, has unit tests).
//!
//! A header signed for the body is accepted exactly while the timestamp is
//! within the tolerance of now, whatever other items surround it, and is
//! `invalid_signature` for another body or secret. For raw headers: never a
//! panic, and a header that is accepted (or only late) carries the MAC
//! recomputed here.
#![no_main]

use arbitrary::Arbitrary;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use paygate::http::auth::{SignedWrite, verify_signed_write};
use paygate_fuzz::{Input, read};
use sha2::Sha256;

/// The tolerance the API documents, both ways.
const TOLERANCE_SECS: u64 = 300;

/// A header signed here for `body`, among other items.
#[derive(Arbitrary, Debug)]
struct Signed {
    secret: String,
    body: Vec<u8>,
    t: i64,
    now: u64,
    before: Vec<(String, String)>,
    after: Vec<(String, String)>,
}

fuzz_target!(|data: &[u8]| match read::<Signed>(data, 3) {
    // secret, X-Signature, now; then the body.
    Some(Input::Text(lines, body)) => {
        if let Ok(now) = lines[2].parse() {
            raw(lines[0], lines[1], body, now);
        }
    }
    Some(Input::Structured(signed)) => signed_write(signed),
    None => {}
});

fn raw(secret: &str, header: &str, body: &[u8], now: u64) {
    let code =
        verify_signed_write(secret, header, &SignedWrite::create(body), now).map_err(|e| e.code());
    if code != Err("invalid_signature") {
        let parts: Vec<_> = header
            .split(',')
            .filter_map(|p| p.trim().split_once('='))
            .collect();
        let t = parts.iter().rev().find(|(k, _)| *k == "t").expect("a t").1;
        let v1 = mac(secret, t, body);
        let v2 = mac(secret, &format!("{t}.POST./api/v1/payments"), body);
        assert!(
            parts.iter().any(|(k, v)| {
                let given = hex::decode(v).unwrap_or_default();
                (*k == "v1" && given == v1) || (*k == "v2" && given == v2)
            }),
            "{header:?} accepted"
        );
    }
}

fn signed_write(input: Signed) {
    let Signed {
        secret,
        body,
        t,
        now,
        before,
        after,
    } = input;
    let junk = |items: &[(String, String)]| -> Vec<String> {
        items
            .iter()
            .map(|(k, v)| {
                let k = k.replace([',', '='], "");
                // A later `t` would replace the real one.
                let k = if k.trim() == "t" { "x" } else { &k };
                format!("{k}={}", v.replace(',', ""))
            })
            .collect()
    };
    let mut items = junk(&before);
    items.push(format!("t={t}"));
    items.push(format!(
        "v1={}",
        hex::encode(mac(&secret, &t.to_string(), &body))
    ));
    items.extend(junk(&after));
    let header = items.join(",");
    let code = verify_signed_write(&secret, &header, &SignedWrite::create(&body), now)
        .map_err(|e| e.code());
    let skew = (i128::from(now) - i128::from(t)).unsigned_abs();
    if skew <= u128::from(TOLERANCE_SECS) {
        assert_eq!(code, Ok(()), "{header:?} at {now}");
    } else {
        assert_eq!(code, Err("signature_expired"), "{header:?} at {now}");
    }
    let mut other_body = body.clone();
    other_body.push(b'x');
    let code = verify_signed_write(&secret, &header, &SignedWrite::create(&other_body), now)
        .map_err(|e| e.code());
    assert_eq!(code, Err("invalid_signature"));
    let other_secret = format!("{secret}x");
    let code = verify_signed_write(&other_secret, &header, &SignedWrite::create(&body), now)
        .map_err(|e| e.code());
    assert_eq!(code, Err("invalid_signature"));
    raw(&secret, &header, &body, now);
}

fn mac(secret: &str, t: &str, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}
