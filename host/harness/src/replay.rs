//! Webhooks paygate received, as harness fixtures: `paygate plugin replay
//! --from-logs` reads them from the logs database and writes one fixture
//! each, so a verifier change is tested against real traffic before it is
//! activated.
//!
//! The log keeps every webhook's raw body, its headers and the verdict its
//! verifier gave, but never a signature (paygate redacts them, with every
//! credential). A fixture is therefore signed again, with the harness's
//! test secret and one of the schemes it can sign ([`Scheme`]), at the time
//! the webhook arrived: what the verifier said of the original is kept, so
//! a webhook whose signature was wrong is signed with another secret, and
//! an expired one a day before it arrived.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::verifier::Scheme;

/// How long before its arrival an expired webhook is signed again: past
/// any sane tolerance.
const EXPIRED_BY_MS: u64 = 24 * 3600 * 1000;

/// One row of the webhook log.
#[derive(Clone, Debug)]
pub struct LoggedWebhook {
    pub id: i64,
    pub path: String,
    /// `None`: the internal route.
    pub alias: Option<String>,
    /// As logged: credentials and signatures read `[redacted]`.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// What paygate recorded (`valid`, `invalid_signature`, ...).
    pub verdict: String,
    pub received_at_ms: u64,
}

/// What a replayed fixture must get, from the logged verdict; `None` for
/// verdicts that say nothing of the webhook itself (the verifier was
/// misconfigured or failed).
fn expect(verdict: &str) -> Option<&'static str> {
    match verdict {
        // Verified; what came after (an amount that did not match, a
        // payment not found) was the host's business.
        "valid" | "amount_mismatch" | "unmatched" => Some("ok"),
        "invalid_signature" => Some("invalid-signature"),
        "signature_expired" => Some("signature-expired"),
        "malformed" => Some("malformed"),
        _ => None,
    }
}

/// The fixture of `logged`, signed with `secret` in `scheme`, or why the
/// webhook cannot be one.
pub fn fixture(logged: &LoggedWebhook, scheme: Scheme, secret: &str) -> Result<Value, String> {
    let expect = expect(&logged.verdict).ok_or_else(|| {
        format!(
            "verdict {}: the verifier gave no answer about the webhook",
            logged.verdict
        )
    })?;
    let body = std::str::from_utf8(&logged.body)
        .map_err(|_| "the body is not UTF-8, which a fixture cannot hold".to_owned())?;
    let (signing_secret, signed_at_ms) = match expect {
        "invalid-signature" => (format!("not-{secret}"), logged.received_at_ms),
        "signature-expired" => (
            secret.to_owned(),
            logged.received_at_ms.saturating_sub(EXPIRED_BY_MS),
        ),
        _ => (secret.to_owned(), logged.received_at_ms),
    };
    let (signature, body) = scheme.sign(&signing_secret, body.as_bytes(), signed_at_ms / 1000);
    let body = String::from_utf8_lossy(&body);
    let mut headers: BTreeMap<String, String> = (logged.headers.iter())
        .filter(|(_, value)| value.as_str() != "[redacted]")
        .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
        .collect();
    headers.extend(signature);
    let route = logged.alias.as_deref().unwrap_or("internal");
    Ok(json!({
        "name": format!("logged webhook {} ({route}, {})", logged.id, logged.verdict),
        "webhook": { "path": logged.path, "headers": headers, "body": body },
        "now_ms": logged.received_at_ms,
        "expect": expect,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(verdict: &str, body: &[u8]) -> LoggedWebhook {
        LoggedWebhook {
            id: 7,
            path: "/api/v1/payments/webhook".into(),
            alias: None,
            headers: [
                ("x-internal-signature".to_owned(), "[redacted]".to_owned()),
                ("content-type".to_owned(), "application/json".to_owned()),
                ("authorization".to_owned(), "[redacted]".to_owned()),
            ]
            .into(),
            body: body.to_vec(),
            verdict: verdict.into(),
            received_at_ms: 1_800_000_000_000,
        }
    }

    #[test]
    fn a_fixture_keeps_the_verdict_and_carries_no_logged_credential() {
        let body = br#"{"payment_id": 1, "status": "finished"}"#;
        let valid = fixture(&logged("valid", body), Scheme::InternalHmac, "s").unwrap();
        assert_eq!(valid["expect"], "ok");
        assert_eq!(valid["now_ms"], 1_800_000_000_000u64);
        assert_eq!(valid["webhook"]["body"], std::str::from_utf8(body).unwrap());
        let headers = &valid["webhook"]["headers"];
        assert_eq!(headers["content-type"], "application/json");
        assert!(headers.get("authorization").is_none(), "{headers}");
        let signature = headers["x-internal-signature"].as_str().unwrap();
        assert_eq!(signature.len(), 64);

        let wrong = fixture(
            &logged("invalid_signature", body),
            Scheme::InternalHmac,
            "s",
        )
        .unwrap();
        assert_eq!(wrong["expect"], "invalid-signature");
        assert_ne!(
            wrong["webhook"]["headers"]["x-internal-signature"],
            signature
        );

        let expired = fixture(&logged("signature_expired", body), Scheme::Stripe, "s").unwrap();
        assert_eq!(expired["expect"], "signature-expired");
        let stamp = expired["webhook"]["headers"]["stripe-signature"]
            .as_str()
            .unwrap();
        assert!(stamp.starts_with("t=1799913600,"), "{stamp}");

        assert!(fixture(&logged("verifier_failed", body), Scheme::Stripe, "s").is_err());
        assert!(fixture(&logged("valid", &[0xff, 0xfe]), Scheme::Stripe, "s").is_err());
    }
}
