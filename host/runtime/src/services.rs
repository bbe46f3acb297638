//! Host services shared by every plugin call: the outbound HTTP client, the
//! counter store and the clock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;

use super::counters::Counters;
use crate::outbound::HttpClient;
use crate::secret::Secret;

/// What host imports reach outside the sandbox through.
pub struct HostServices {
    pub http: HttpClient,
    pub counters: Counters,
    pub clock: Clock,
    /// Secrets the host was given by flag or setting, by the name an
    /// `env:NAME` reference uses; they win over the process environment.
    pub named_secrets: BTreeMap<String, Secret>,
    /// Headers the host adds to each outbound request a plugin makes
    /// (unless the plugin set them): the W3C `traceparent` of the call.
    pub outgoing_headers: fn() -> Vec<(&'static str, String)>,
    /// Where `file:PATH` secret references are read from, each time a
    /// plugin is loaded; `None` refuses them.
    pub secrets_dir: Option<std::path::PathBuf>,
}

/// No headers: for hosts that trace nothing.
pub fn no_outgoing_headers() -> Vec<(&'static str, String)> {
    Vec::new()
}

impl HostServices {
    /// Services for production: a real HTTP client, the given counter store
    /// and the system clock.
    pub fn new(counters: Counters, named_secrets: BTreeMap<String, Secret>) -> Arc<Self> {
        Arc::new(Self {
            http: http_client(),
            counters,
            clock: Clock::System,
            named_secrets,
            outgoing_headers: no_outgoing_headers,
            secrets_dir: None,
        })
    }
}

/// An HTTP client for plugins: no redirects (a redirect could lead past
/// the allow-list), no proxy from the environment, no cookies.
pub fn http_client() -> HttpClient {
    http_client_trusting(Vec::new())
}

/// [`http_client`], trusting `roots` besides the system's: the operator's
/// CA, for providers behind a private PKI.
pub fn http_client_trusting(roots: Vec<CertificateDer<'static>>) -> HttpClient {
    HttpClient::new(roots)
}

/// The time plugins see. Tests and the harness fix it to test expiry rules.
/// A clone of a fixed clock is the same clock: moving one moves both.
#[derive(Clone)]
pub enum Clock {
    System,
    /// A settable time in Unix milliseconds.
    Fixed(Arc<AtomicU64>),
}

impl Clock {
    /// A clock standing at `ms` (Unix milliseconds) until it is set.
    pub fn fixed(ms: u64) -> Self {
        Clock::Fixed(Arc::new(AtomicU64::new(ms)))
    }

    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            Clock::Fixed(ms) => ms.load(Ordering::Relaxed),
        }
    }

    /// Moves a fixed clock; a no-op on the system clock.
    pub fn set_ms(&self, value: u64) {
        if let Clock::Fixed(ms) = self {
            ms.store(value, Ordering::Relaxed);
        }
    }
}
