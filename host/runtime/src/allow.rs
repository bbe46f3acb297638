//! The outbound-HTTP allow-list of a plugin.

/// Hosts a plugin may reach: `host` (any port), `host:port`, or `*.domain`
/// (any subdomain of `domain`, not `domain` itself). Matching ignores case.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    entries: Vec<Entry>,
}

#[derive(Clone, Debug)]
struct Entry {
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

impl AllowList {
    /// Builds the list from spec entries (already checked by the spec).
    pub fn new(entries: &[String]) -> Self {
        let entries = entries
            .iter()
            .map(|raw| {
                let raw = raw.to_ascii_lowercase();
                let (wildcard, rest) = match raw.strip_prefix("*.") {
                    Some(rest) => (true, rest.to_owned()),
                    None => (false, raw.clone()),
                };
                // `[::1]:8080` and `host:8080` carry a port; a bare IPv6 does not.
                let (host, port) = match rest.rsplit_once(':') {
                    Some((h, p)) if !h.is_empty() && (!h.contains(':') || h.ends_with(']')) => {
                        match p.parse() {
                            Ok(port) => (h.to_owned(), Some(port)),
                            Err(_) => (rest.clone(), None),
                        }
                    }
                    _ => (rest.clone(), None),
                };
                Entry {
                    host: host.trim_matches(['[', ']']).to_owned(),
                    wildcard,
                    port,
                }
            })
            .collect();
        Self { entries }
    }

    /// Whether `host:port` may be called.
    pub fn permits(&self, host: &str, port: u16) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        self.entries.iter().any(|e| {
            let host_ok = if e.wildcard {
                host.len() > e.host.len() + 1
                    && host.ends_with(&e.host)
                    && host.as_bytes()[host.len() - e.host.len() - 1] == b'.'
            } else {
                host == e.host
            };
            host_ok && e.port.is_none_or(|p| p == port)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::new(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn exact_hosts_and_ports() {
        let l = list(&["api.stripe.com", "localhost:8002", "[::1]:9000"]);
        assert!(l.permits("api.stripe.com", 443));
        assert!(l.permits("API.Stripe.com", 80));
        assert!(l.permits("localhost", 8002));
        assert!(!l.permits("localhost", 8003));
        assert!(l.permits("::1", 9000));
        assert!(!l.permits("stripe.com", 443));
        assert!(!l.permits("api.stripe.com.evil.net", 443));
    }

    #[test]
    fn wildcards_cover_subdomains_only() {
        let l = list(&["*.example.com"]);
        assert!(l.permits("a.example.com", 443));
        assert!(l.permits("a.b.example.com", 443));
        assert!(!l.permits("example.com", 443));
        assert!(!l.permits("badexample.com", 443));
    }

    #[test]
    fn empty_list_denies_everything() {
        assert!(!AllowList::default().permits("localhost", 80));
    }
}
