use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The WIT world a plugin implements; it decides what the host may ask of it
/// and which host capabilities it is granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// `provider-adapter`: opens payments with a provider.
    ProviderAdapter,
    /// `webhook-verifier`: checks a provider's webhook signature.
    WebhookVerifier,
    /// `rate-limit-policy`: allows or denies an incoming request.
    RateLimitPolicy,
}

/// A kind name that is not one of the three worlds.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown plugin kind {0:?}: expected provider-adapter, webhook-verifier or rate-limit-policy"
)]
pub struct UnknownKind(pub String);

impl PluginKind {
    /// Every kind, in a stable order.
    pub const ALL: [PluginKind; 3] = [
        PluginKind::ProviderAdapter,
        PluginKind::WebhookVerifier,
        PluginKind::RateLimitPolicy,
    ];

    /// The world's name in `wit/worlds.wit`.
    pub fn world(self) -> &'static str {
        match self {
            PluginKind::ProviderAdapter => "provider-adapter",
            PluginKind::WebhookVerifier => "webhook-verifier",
            PluginKind::RateLimitPolicy => "rate-limit-policy",
        }
    }

    /// The fully qualified name of the interface the world exports, in the
    /// newest WIT version the host serves.
    pub fn export(self) -> &'static str {
        self.exports()[0]
    }

    /// The fully qualified names of the interface the world exports, one
    /// for each WIT version the host serves, newest first: a component
    /// exporting any of them is this kind.
    pub fn exports(self) -> &'static [&'static str] {
        match self {
            PluginKind::ProviderAdapter => &[
                "paygate:plugins/provider@0.2.0",
                "paygate:plugins/provider@0.1.0",
            ],
            PluginKind::WebhookVerifier => &[
                "paygate:plugins/verifier@0.2.0",
                "paygate:plugins/verifier@0.1.0",
            ],
            PluginKind::RateLimitPolicy => &["paygate:plugins/policy@0.1.0"],
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world())
    }
}

impl FromStr for PluginKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.world() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}
