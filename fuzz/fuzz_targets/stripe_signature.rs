//! `Stripe-Signature` parsing and checking (stripe-verifier, through
//! `guest_common::signature`).
//!
//! Raw headers: parsing never panics, a parsed header prints back to one
//! that parses the same, and a header that checks is one that parses and
//! carries the MAC recomputed here. Signed headers: a header signed for the
//! body verifies whatever junk items surround it, is expired exactly when
//! the skew passes the tolerance, and stops verifying for another body,
//! secret or timestamp.
#![no_main]

use arbitrary::Arbitrary;
use guest_common::signature::{Rejected, check_stripe, parse_stripe, stripe_mac};
use guest_common::hex;
use libfuzzer_sys::fuzz_target;
use paygate_fuzz::{Input, read};

/// A header signed here for `body`, among junk items.
#[derive(Arbitrary, Debug)]
struct Signed {
    secret: String,
    body: Vec<u8>,
    timestamp: u64,
    now_ms: u64,
    tolerance: u16,
    junk_before: Vec<Junk>,
    junk_after: Vec<Junk>,
    upper_case: bool,
}

/// Items a real header may carry besides the signature.
#[derive(Arbitrary, Debug)]
enum Junk {
    V0(Vec<u8>),
    WrongV1([u8; 32]),
    NotHex(String),
    Other(String, String),
    Spaces,
}

impl Junk {
    fn render(&self) -> String {
        match self {
            Junk::V0(mac) => format!("v0={}", hex::encode(mac)),
            Junk::WrongV1(mac) => format!("v1={}", hex::encode(mac)),
            Junk::NotHex(text) => format!("v1={}", text.replace(',', "")),
            Junk::Other(key, value) => {
                let key = key.replace([',', '='], "");
                // A `t` before the real one would be taken instead of it.
                let key = if key.trim() == "t" { "x" } else { &key };
                format!("{key}={}", value.replace(',', ""))
            }
            Junk::Spaces => " ".into(),
        }
    }
}

fuzz_target!(|data: &[u8]| match read::<Signed>(data, 4) {
    // secret, header, now (ms), tolerance (s); then the body.
    Some(Input::Text(lines, body)) => {
        let (Ok(now_ms), Ok(tolerance)) = (lines[2].parse(), lines[3].parse()) else {
            return;
        };
        raw(lines[0], lines[1], body, now_ms, tolerance);
    }
    Some(Input::Structured(signed)) => signed_header(signed),
    None => {}
});

fn signed_header(input: Signed) {
    let Signed {
        secret,
        body,
        timestamp,
        now_ms,
        tolerance,
        junk_before,
        junk_after,
        upper_case,
    } = input;
    let t = timestamp.to_string();
    let mut mac = hex::encode(&stripe_mac(&secret, &t, &body));
    if upper_case {
        mac = mac.to_uppercase();
    }
    let header_at = |t: &str| {
        let mut items: Vec<String> = junk_before.iter().map(Junk::render).collect();
        items.push(format!("t={t}"));
        items.push(format!(" v1={mac} "));
        items.extend(junk_after.iter().map(Junk::render));
        items.join(",")
    };
    let header = header_at(&t);
    let tolerance = u64::from(tolerance);
    let result = check_stripe(&secret, Some(&header), &body, now_ms, tolerance);
    let timestamp_fits = i64::try_from(timestamp).is_ok();
    let skew = (now_ms / 1000).abs_diff(timestamp);
    match result {
        Ok(()) => assert!(timestamp_fits && skew <= tolerance, "{header:?}"),
        Err(Rejected::Expired(_)) => assert!(timestamp_fits && skew > tolerance),
        // Only a timestamp past i64 is unparseable here.
        Err(Rejected::Invalid(why)) => assert!(!timestamp_fits, "{header:?}: {why}"),
    }
    // Another body, secret or timestamp never verifies.
    let mut other_body = body.clone();
    other_body.push(b'x');
    let now = timestamp.saturating_mul(1000);
    let invalid = |r: Result<(), Rejected>| matches!(r, Err(Rejected::Invalid(_)));
    assert!(invalid(check_stripe(
        &secret,
        Some(&header),
        &other_body,
        now,
        tolerance
    )));
    let other_secret = format!("{secret}x");
    assert!(invalid(check_stripe(
        &other_secret,
        Some(&header),
        &body,
        now,
        tolerance
    )));
    let moved = header_at(&format!("{t}0"));
    assert!(invalid(check_stripe(
        &secret,
        Some(&moved),
        &body,
        now,
        tolerance
    )));
    raw(&secret, &header, &body, now_ms, tolerance);
}

fn raw(secret: &str, header: &str, body: &[u8], now_ms: u64, tolerance: u64) {
    let parsed = parse_stripe(header);
    if let Some(parsed) = &parsed {
        assert!(parsed.timestamp >= 0 && !parsed.v1.is_empty());
        assert!(parsed.timestamp_text.bytes().all(|b| b.is_ascii_digit()));
        // Printed back, the header parses to the same parts.
        let mut printed = format!("t={}", parsed.timestamp_text);
        for mac in &parsed.v1 {
            printed.push_str(&format!(",v1={}", hex::encode(mac)));
        }
        assert_eq!(parse_stripe(&printed).as_ref(), Some(parsed));
    }
    let result = check_stripe(secret, Some(header), body, now_ms, tolerance);
    if matches!(result, Ok(()) | Err(Rejected::Expired(_))) {
        // Accepted (or only late): the header parsed and one v1 is the MAC.
        let parsed = parsed.expect("a header that verifies parses");
        let expected = stripe_mac(secret, parsed.timestamp_text, body);
        assert!(
            parsed
                .v1
                .iter()
                .any(|v| v[..] == expected[..])
        );
    } else if parsed.is_none() {
        assert!(matches!(result, Err(Rejected::Invalid(_))));
    }
    assert!(matches!(
        check_stripe(secret, None, body, now_ms, tolerance),
        Err(Rejected::Invalid(_))
    ));
}
