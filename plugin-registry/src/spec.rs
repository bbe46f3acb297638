use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Digest, PluginKind};

/// Everything the host needs besides the component's bytes: identity,
/// capabilities and limits. Written by operators as TOML.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// Human version, e.g. "1.4.0"; the digest is the real identity.
    #[serde(default = "unversioned")]
    pub version: String,
    /// The world the component must implement; checked at load.
    #[serde(default)]
    pub kind: Option<PluginKind>,
    /// Hosts the plugin may reach through the `http` import: `host`,
    /// `host:port`, or `*.domain` for any subdomain.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Plain settings returned by `config.get`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Secrets returned by `config.secret`, by reference (see [`SecretRef`]).
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretRef>,
}

fn unversioned() -> String {
    "unversioned".to_owned()
}

/// The spec of a component that comes without one: no capabilities, the
/// host's default limits.
impl Default for PluginSpec {
    fn default() -> Self {
        Self {
            version: unversioned(),
            kind: None,
            allowed_hosts: Vec::new(),
            limits: LimitsSpec::default(),
            config: BTreeMap::new(),
            secrets: BTreeMap::new(),
        }
    }
}

/// Resource limits of every call into the plugin; unset fields take the
/// host's defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Linear memory the guest may grow to, in MiB.
    pub memory_mib: Option<u32>,
    /// Wall-clock deadline of one call, in milliseconds.
    pub timeout_ms: Option<u32>,
    /// Wasm fuel (roughly instructions) one call may burn.
    pub fuel: Option<u64>,
    /// Largest input the host passes in, in KiB.
    pub max_input_kib: Option<u32>,
    /// Largest result the host accepts back, in KiB.
    pub max_output_kib: Option<u32>,
    /// Timeout of one outbound HTTP request, in milliseconds.
    pub http_timeout_ms: Option<u32>,
    /// Largest outbound HTTP response body, in KiB.
    pub http_max_response_kib: Option<u32>,
}

/// Where the host finds a secret. Only the reference is ever stored:
/// `env:NAME` reads the environment variable `NAME` of the host process;
/// `file:PATH` reads the file `PATH` under the host's plugin secrets
/// directory (`PAYGATE_PLUGIN_SECRETS_DIR`) each time the plugin is loaded,
/// so a secret written there goes live with the next hot reload.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SecretRef {
    /// `env:NAME`.
    Env(String),
    /// `file:PATH`, relative to the plugin secrets directory.
    File(String),
}

/// The longest `file:` path taken.
const MAX_SECRET_PATH: usize = 255;

/// Why a `file:` path is refused, or `None`: relative, in segments of
/// letters, digits, `.`, `_` and `-`, none of them `.` or `..`, so it can
/// only name a file under the secrets directory.
fn bad_secret_path(path: &str) -> Option<&'static str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if path.is_empty() || path.len() > MAX_SECRET_PATH {
        return Some("must be 1 to 255 characters");
    }
    let bad_segment = path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == ".." || !s.chars().all(plain));
    bad_segment.then_some(
        "must be a relative path of letters, digits, `.`, `_` and `-` (no `..`, no leading `/`)",
    )
}

/// A spec that cannot be used, with the reason.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("invalid plugin spec: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("invalid plugin spec: {0}")]
    Invalid(String),
}

impl PluginSpec {
    /// Parses and checks a spec written in TOML.
    pub fn from_toml(text: &str) -> Result<Self, SpecError> {
        let spec: PluginSpec = toml::from_str(text)?;
        spec.check()?;
        Ok(spec)
    }

    /// This spec as a registry version `version` of a `kind` component
    /// serves it: what a registry signature covers.
    pub fn released(&self, version: &str, kind: PluginKind) -> Self {
        Self {
            version: version.to_owned(),
            kind: Some(kind),
            ..self.clone()
        }
    }

    /// The spec as canonical JSON: every field (an unset one as `null`),
    /// object keys sorted, no spaces. Two specs that parse to the same value
    /// have the same canonical form, however their TOML was written, so a
    /// signature over it does not depend on formatting. A field added later
    /// must be left out while it holds its default, or every older signature
    /// would stop matching.
    pub fn canonical_json(&self) -> String {
        // Infallible: every field is a string, a number, a list or a map
        // keyed by strings.
        let value = serde_json::to_value(self).expect("a plugin spec serializes to JSON");
        let mut out = String::new();
        write_canonical(&value, &mut out);
        out
    }

    /// The SHA-256 of [`PluginSpec::canonical_json`].
    pub fn canonical_digest(&self) -> Digest {
        Digest::of(self.canonical_json().as_bytes())
    }

    /// Checks what the types cannot: a version and well-formed host patterns.
    pub(crate) fn check(&self) -> Result<(), SpecError> {
        if self.version.trim().is_empty() {
            return Err(SpecError::Invalid("version is empty".into()));
        }
        for host in &self.allowed_hosts {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            let valid =
                !bare.is_empty() && !bare.contains(['/', '@', ' ', '*']) && !host.contains("://");
            if !valid {
                return Err(SpecError::Invalid(format!(
                    "allowed_hosts entry {host:?} must be host, host:port or *.domain"
                )));
            }
        }
        Ok(())
    }
}

/// JSON with object keys sorted, whatever order the map kept them in.
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

impl TryFrom<String> for SecretRef {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        match s.split_once(':') {
            Some(("env", name)) if !name.is_empty() => Ok(SecretRef::Env(name.to_owned())),
            Some(("file", path)) => match bad_secret_path(path) {
                None => Ok(SecretRef::File(path.to_owned())),
                Some(why) => Err(format!("secret reference {s:?}: the file path {why}")),
            },
            _ => Err(format!(
                "secret reference {s:?} must be env:NAME or file:PATH"
            )),
        }
    }
}

impl From<SecretRef> for String {
    fn from(r: SecretRef) -> String {
        r.to_string()
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{path}"),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_spec() {
        let spec = PluginSpec::from_toml(
            r#"
            version = "1.2.0"
            kind = "provider-adapter"
            allowed_hosts = ["api.stripe.com", "localhost:8002", "*.example.com"]
            [limits]
            memory_mib = 16
            timeout_ms = 2000
            fuel = 1000000
            [config]
            base-url = "http://localhost:8002"
            [secrets]
            secret-key = "env:STRIPE_SECRET_KEY"
            "#,
        )
        .unwrap();
        assert_eq!(spec.kind, Some(PluginKind::ProviderAdapter));
        assert_eq!(spec.limits.memory_mib, Some(16));
        assert_eq!(
            spec.secrets["secret-key"],
            SecretRef::Env("STRIPE_SECRET_KEY".into())
        );
        assert_eq!(spec.config["base-url"], "http://localhost:8002");
    }

    #[test]
    fn a_file_reference_can_only_name_a_file_under_the_secrets_directory() {
        let parse = |r: &str| SecretRef::try_from(r.to_owned());
        assert_eq!(
            parse("file:acmepay/secret-key").unwrap(),
            SecretRef::File("acmepay/secret-key".into())
        );
        assert_eq!(parse("file:key.txt").unwrap().to_string(), "file:key.txt");
        for bad in [
            "file:",
            "file:/etc/passwd",
            "file:../admin-token",
            "file:acme/../../x",
            "file:./key",
            "file:acme//key",
            "file:acme/key/",
            "file:a\\b",
            "file:a b",
            "file:~/key",
        ] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains("file path"), "{bad}: {error}");
        }
        assert!(parse(&format!("file:{}", "a".repeat(256))).is_err());
        assert!(
            parse("http:x")
                .unwrap_err()
                .contains("env:NAME or file:PATH")
        );
    }

    #[test]
    fn the_canonical_form_ignores_formatting_but_not_content() {
        let one = PluginSpec::from_toml(
            "version = \"1\"\n[config]\nb = \"2\"\na = \"1\"\n[limits]\nfuel = 5\n",
        )
        .unwrap();
        let same = PluginSpec::from_toml(
            "version = '1'\n\n[limits]\nfuel = 5\n[config]\na = \"1\"\nb = \"2\"\n",
        )
        .unwrap();
        assert_eq!(one.canonical_json(), same.canonical_json());
        let text = one.canonical_json();
        assert!(
            text.starts_with(
                r#"{"allowed_hosts":[],"config":{"a":"1","b":"2"},"kind":null,"limits":{"fuel":5,"#
            ) && text.ends_with(r#"},"secrets":{},"version":"1"}"#),
            "{text}"
        );
        let other = PluginSpec {
            allowed_hosts: vec!["evil.example".into()],
            ..one.clone()
        };
        assert_ne!(one.canonical_digest(), other.canonical_digest());
    }

    #[test]
    fn empty_spec_takes_defaults() {
        let spec = PluginSpec::from_toml("").unwrap();
        assert_eq!(spec.version, "unversioned");
        assert!(spec.kind.is_none());
        assert!(spec.allowed_hosts.is_empty());
    }

    #[test]
    fn refuses_bad_specs_with_a_reason() {
        for (text, needle) in [
            ("kind = \"printer\"", "unknown variant"),
            ("allowed_hosts = [\"https://x.com\"]", "allowed_hosts"),
            ("[secrets]\nk = \"vault:x\"", "env:NAME"),
            ("colour = 1", "unknown field"),
            ("version = \"\"", "version is empty"),
        ] {
            let err = PluginSpec::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
