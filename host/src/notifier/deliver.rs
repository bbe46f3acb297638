//! One signed POST to a merchant's callback URL, Standard Webhooks style,
//! with the server-side request forgery guard: unless allowed, a callback
//! that is or resolves to a loopback, private, link-local or otherwise
//! non-public address is refused before any connection is made (the check
//! runs on the resolved addresses, so DNS cannot point around it).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use sha2::Sha256;

use crate::plugins::Secret;
use crate::tls::TrustedCa;

/// The most of a merchant's answer read (and thrown away).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub status_code: Option<u16>,
    pub latency: Duration,
    /// `None` when the merchant answered 2xx.
    pub error: Option<String>,
    /// How long the merchant asked to be left alone: its `Retry-After` on
    /// a 429 or 503, in seconds or as an HTTP date.
    pub retry_after: Option<Duration>,
}

/// Delivers notifications; one per process, its connections reused.
#[derive(Clone, Debug)]
pub struct Deliverer {
    client: reqwest::Client,
    allow_private: bool,
}

impl Deliverer {
    /// A deliverer trusting `ca` besides the system's roots for merchants'
    /// HTTPS endpoints.
    pub fn new(timeout: Duration, allow_private: bool, ca: &TrustedCa) -> Self {
        let mut builder = reqwest::Client::builder();
        for certificate in ca.certificates() {
            builder = builder.add_root_certificate(certificate);
        }
        let client = builder
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the callback's host itself, past the
            // resolver below: `HTTP(S)_PROXY` and `ALL_PROXY` are ignored.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .user_agent(concat!("paygate-notifier/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64)
            .build()
            .expect("static HTTP client settings");
        Self {
            client,
            allow_private,
        }
    }

    /// Posts `body` to `url`, signed with each of `secrets` (the current
    /// webhook secret first, then one a rotation replaced while its grace
    /// period lasts). Never panics: every failure is an [`Outcome`] with
    /// its error. Its span, `notify.deliver`, starts the trace whose
    /// `traceparent` the merchant receives.
    #[tracing::instrument(name = "notify.deliver", skip_all, fields(event_id))]
    pub async fn deliver(
        &self,
        url: &str,
        secrets: &[&Secret],
        event_id: &str,
        body: Vec<u8>,
    ) -> Outcome {
        let started = Instant::now();
        let failed = |error: String| Outcome {
            status_code: None,
            latency: started.elapsed(),
            error: Some(error),
            retry_after: None,
        };
        let url = match self.check_url(url) {
            Ok(url) => url,
            Err(error) => return failed(error),
        };
        let timestamp = chrono::Utc::now().timestamp();
        let signatures: Result<Vec<String>, String> = secrets
            .iter()
            .map(|secret| sign(secret, event_id, timestamp, &body))
            .collect();
        let signature = match signatures {
            // Standard Webhooks: several signatures, space-separated.
            Ok(signatures) => signatures.join(" "),
            Err(error) => return failed(error),
        };
        let mut request = self.client.post(url);
        for (name, value) in crate::telemetry::trace_headers() {
            request = request.header(name, value);
        }
        let sent = request
            .header("content-type", "application/json")
            .header("webhook-id", event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(error) => return failed(describe(&error)),
        };
        let status = response.status();
        let retry_after = match status.as_u16() {
            429 | 503 => (response.headers().get(reqwest::header::RETRY_AFTER))
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, chrono::Utc::now())),
            _ => None,
        };
        // Read a little of the answer so the connection can be reused.
        let mut read = 0;
        while read < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                _ => break,
            }
        }
        Outcome {
            status_code: Some(status.as_u16()),
            latency: started.elapsed(),
            error: (!status.is_success()).then(|| format!("merchant answered {status}")),
            retry_after,
        }
    }

    fn check_url(&self, url: &str) -> Result<reqwest::Url, String> {
        let url = reqwest::Url::parse(url).map_err(|_| "callback URL is not a URL".to_owned())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("callback URL must be http or https".into());
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return Err("callback URL has no host".into()),
        };
        if let Some(ip) = literal
            && !self.allow_private
            && !is_public(ip)
        {
            return Err(format!("callback address {ip} is not public (refused)"));
        }
        Ok(url)
    }
}

/// A `Retry-After` value as a wait from `now`: delay-seconds or an HTTP
/// date (RFC 9110, 10.2.3); a date already past is no wait. `None` when it
/// is neither.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Digits past u64 are a wait longer than any schedule.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (date.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// Standard Webhooks: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`,
/// the key being the base64 after `whsec_`.
pub fn sign(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let key = signing_key(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

fn signing_key(secret: &Secret) -> Result<Vec<u8>, String> {
    let encoded = secret
        .expose()
        .strip_prefix("whsec_")
        .unwrap_or(secret.expose());
    BASE64
        .decode(encoded)
        .map_err(|_| "the merchant's webhook secret is not whsec_ + base64".to_owned())
}

/// Says what failed without the URL (it may hold credentials).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_request() || error.is_body() {
        "request failed"
    } else {
        "failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}

/// Resolves names, then keeps only addresses the policy allows.
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves to no public address (refused)").into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether an address is on the public internet: not loopback, private,
/// link-local (cloud metadata lives there), shared, documentation,
/// multicast, unspecified or broadcast; IPv4 inside IPv6 judged as IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240)
}

/// The ranges that carry or reach an IPv4 address (6to4, Teredo,
/// IPv4-compatible, NAT64) are refused whole: which IPv4 host they end at
/// is up to relays and translators outside paygate's view, and no merchant
/// needs one for a callback.
fn is_public_v6(ip: Ipv6Addr) -> bool {
    let [first, second, ..] = ip.segments();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
        || first == 0x2001 && second == 0x0db8 // documentation
        || first == 0x2001 && second == 0x0000 // Teredo
        || first == 0x2002 // 6to4
        || first == 0x0064 && second == 0xff9b // NAT64, well-known and local-use
        || ip.segments()[..6] == [0; 6]) // IPv4-compatible (::a.b.c.d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            // IPv6 transition ranges that carry or reach an IPv4 address
            // (security review, finding 15): 6to4 (here 127.0.0.1 and
            // 10.0.0.1 inside), Teredo, IPv4-compatible, NAT64 both ways.
            "2002:7f00:1::1",
            "2002:a00:1::",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "::127.0.0.1",
            "::10.0.0.1",
            "::8.8.8.8",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let cases = [
            ("120", Some(Duration::from_secs(120))),
            (" 0 ", Some(Duration::ZERO)),
            (
                "99999999999999999999999",
                Some(Duration::from_secs(u64::MAX)),
            ),
            (
                "Wed, 21 Oct 2015 07:29:30 GMT",
                Some(Duration::from_secs(90)),
            ),
            // Already past: retry when the schedule says.
            ("Wed, 21 Oct 2015 07:00:00 GMT", Some(Duration::ZERO)),
            ("-5", None),
            ("1.5", None),
            ("soon", None),
            ("", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_retry_after(value, now), expected, "{value:?}");
        }
    }

    /// Only a 429 or a 503 asks for a wait; a 500's or a 200's
    /// `Retry-After` is not read.
    #[tokio::test]
    async fn retry_after_is_read_from_429_and_503_only() {
        let deliverer = Deliverer::new(Duration::from_secs(2), true, &TrustedCa::default());
        let secret = Secret::new("whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
        for (status, expected) in [
            ("429 Too Many Requests", Some(Duration::from_secs(7))),
            ("503 Service Unavailable", Some(Duration::from_secs(7))),
            ("500 Internal Server Error", None),
            ("200 OK", None),
        ] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/hook", listener.local_addr().unwrap());
            let answer = format!(
                "HTTP/1.1 {status}\r\nretry-after: 7\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut request = [0u8; 4096];
                let _ = conn.read(&mut request).await;
                let _ = conn.write_all(answer.as_bytes()).await;
            });
            let outcome = deliverer
                .deliver(&url, &[&secret], "evt", b"{}".to_vec())
                .await;
            assert!(outcome.status_code.is_some(), "{status}: {outcome:?}");
            assert_eq!(outcome.retry_after, expected, "{status}");
        }
    }

    #[test]
    fn signature_is_standard_webhooks() {
        // Key bytes "0123456789abcdef0123456789abcdef", base64-encoded.
        let secret = Secret::new("whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
        let signature = sign(&secret, "evt_1", 1_700_000_000, b"{}").unwrap();
        let key = b"0123456789abcdef0123456789abcdef";
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(b"evt_1.1700000000.{}");
        let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
        assert_eq!(signature, expected);
        assert!(sign(&Secret::new("whsec_%%%"), "e", 1, b"").is_err());
    }

    /// Security review, finding 10: a proxy from `HTTP_PROXY` resolves the
    /// callback's host itself, so the guard never sees the address. A
    /// "proxy" on loopback that would answer 200 must never be reached.
    #[tokio::test]
    async fn proxy_variables_do_not_route_around_the_guard() {
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
        let reached = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = reached.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = proxy.accept().await {
                seen.store(true, std::sync::atomic::Ordering::SeqCst);
                use tokio::io::AsyncWriteExt;
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        // SAFETY: reqwest reads the proxy variables when a client is
        // built, here, and no other test of this binary reads them.
        unsafe {
            std::env::set_var("HTTP_PROXY", &proxy_url);
            std::env::set_var("ALL_PROXY", &proxy_url);
        }
        let deliverer = Deliverer::new(Duration::from_secs(2), false, &TrustedCa::default());
        unsafe {
            std::env::remove_var("HTTP_PROXY");
            std::env::remove_var("ALL_PROXY");
        }
        let secret = Secret::new("whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
        let outcome = deliverer
            .deliver("http://localhost:9/hook", &[&secret], "evt", b"{}".to_vec())
            .await;
        assert_eq!(outcome.status_code, None, "{outcome:?}");
        assert!(outcome.error.is_some_and(|e| e.contains("refused")));
        assert!(!reached.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn private_callbacks_are_refused_before_connecting() {
        let deliverer = Deliverer::new(Duration::from_secs(1), false, &TrustedCa::default());
        let secret = Secret::new("whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
        for url in [
            "http://127.0.0.1:9/hook",
            "http://[::1]:9/hook",
            "http://localhost:9/hook",
            "http://169.254.169.254/latest",
        ] {
            let outcome = deliverer
                .deliver(url, &[&secret], "evt", b"{}".to_vec())
                .await;
            assert_eq!(outcome.status_code, None, "{url}");
            let error = outcome.error.expect("refused");
            assert!(error.contains("refused"), "{url}: {error}");
        }
        let outcome = deliverer
            .deliver("ftp://example.com/", &[&secret], "evt", Vec::new())
            .await;
        assert_eq!(
            outcome.error.as_deref(),
            Some("callback URL must be http or https")
        );
    }
}
