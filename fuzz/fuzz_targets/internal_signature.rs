//! The internal scheme's `x-internal-signature` (internal-hmac, through
//! `guest_common::signature`), with the header lookup and hex codec it
//! relies on.
//!
//! Hex: decoding what was encoded gives the bytes back, in either case, and
//! decoding accepts exactly the even-length strings of hex digits. Headers:
//! `find` answers the first header of that name in any case. Signatures: a
//! hex HMAC of the body verifies under either header name in any case and
//! with surrounding whitespace, wherever it stands among other headers, and
//! stops verifying for another body or secret; a header list that verifies
//! carries that HMAC.
#![no_main]

use arbitrary::Arbitrary;
use guest_common::signature::{INTERNAL_HEADERS, Rejected, check_internal};
use guest_common::{crypto, headers, hex};
use libfuzzer_sys::fuzz_target;
use paygate_fuzz::{Input, read};

#[derive(Arbitrary, Debug)]
struct Case {
    secret: String,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
    sign: Option<Signed>,
}

#[derive(Arbitrary, Debug)]
struct Signed {
    /// The second of [`INTERNAL_HEADERS`] instead of the first.
    second_name: bool,
    upper_case_name: bool,
    upper_case_hex: bool,
    padding: u8,
    position: u8,
}

fuzz_target!(|data: &[u8]| match read::<Case>(data, 3) {
    // secret, header name, header value; then the body.
    Some(Input::Text(lines, body)) => check(Case {
        secret: lines[0].into(),
        body: body.to_vec(),
        headers: vec![(lines[1].into(), lines[2].into())],
        sign: None,
    }),
    Some(Input::Structured(case)) => check(case),
    None => {}
});

fn check(case: Case) {
    let Case {
        secret,
        body,
        mut headers,
        sign,
    } = case;
    for (name, value) in &headers {
        hex_round_trip(name.as_bytes());
        hex_decoding(value);
        let found = headers::find(&headers, &name.to_ascii_uppercase());
        let first = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
        assert_eq!(found, first.map(|(_, v)| v.as_str()));
    }
    let expected = crypto::hmac_sha256(secret.as_bytes(), &body);
    if let Some(sign) = sign {
        // Our header must be the one the lookup picks, so none may precede it.
        headers.retain(|(name, _)| {
            !INTERNAL_HEADERS
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
        });
        let mut name = INTERNAL_HEADERS[usize::from(sign.second_name)].to_owned();
        if sign.upper_case_name {
            name = name.to_ascii_uppercase();
        }
        let mut value = hex::encode(&expected);
        if sign.upper_case_hex {
            value = value.to_ascii_uppercase();
        }
        let pad = " ".repeat(usize::from(sign.padding % 4));
        let at = usize::from(sign.position) % (headers.len() + 1);
        headers.insert(at, (name, format!("{pad}{value}{pad}")));
        assert_eq!(check_internal(&secret, &headers, &body), Ok(()));
        let mut other_body = body.clone();
        other_body.push(0);
        assert!(matches!(
            check_internal(&secret, &headers, &other_body),
            Err(Rejected::Invalid(_))
        ));
        assert!(matches!(
            check_internal(&format!("{secret}x"), &headers, &body),
            Err(Rejected::Invalid(_))
        ));
    }
    match check_internal(&secret, &headers, &body) {
        Ok(()) => {
            let given = INTERNAL_HEADERS
                .iter()
                .find_map(|n| headers::find(&headers, n))
                .expect("a verified list has the header");
            assert_eq!(hex::decode(given.trim()).as_deref(), Some(&expected[..]));
        }
        Err(Rejected::Invalid(_)) => {}
        Err(Rejected::Expired(why)) => panic!("the internal scheme has no clock: {why}"),
    }
}

fn hex_round_trip(bytes: &[u8]) {
    let encoded = hex::encode(bytes);
    assert_eq!(encoded.len(), bytes.len() * 2);
    assert_eq!(hex::decode(&encoded).as_deref(), Some(bytes));
    assert_eq!(hex::decode(&encoded.to_uppercase()).as_deref(), Some(bytes));
}

fn hex_decoding(text: &str) {
    let valid = text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit());
    match hex::decode(text) {
        Some(bytes) => {
            assert!(valid, "{text:?} decoded");
            assert_eq!(hex::encode(&bytes), text.to_ascii_lowercase());
        }
        None => assert!(!valid, "{text:?} refused"),
    }
}
