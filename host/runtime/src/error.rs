//! What can go wrong when the host calls a plugin, one variant per cause.

use paygate_plugin_registry::PluginKind;

/// A failed plugin load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{name}: not a WebAssembly component: {reason}")]
    NotAComponent { name: String, reason: String },
    #[error("{name}: component does not implement the {expected} world: {reason}")]
    WrongWorld {
        name: String,
        expected: PluginKind,
        reason: String,
    },
    #[error("{name}: {reason}")]
    Spec { name: String, reason: String },
    #[error(
        "{name}: secret {key} names the process variable {variable}, which plugins may not \
         read: name a variable starting with PAYGATE_PLUGIN_SECRET_, or one of the secrets \
         the host hands to plugins ({named})"
    )]
    SecretNotAllowed {
        name: String,
        key: String,
        variable: String,
        named: String,
    },
    #[error("{name}: {source}")]
    Signature {
        name: String,
        /// Boxed: a registry error is large, and every `Result` would carry its size.
        #[source]
        source: Box<paygate_plugin_registry::RegistryError>,
    },
    #[error("{name}: cannot read {path}: {source}")]
    Io {
        name: String,
        path: String,
        source: std::io::Error,
    },
}

/// A failed call into a plugin. Each limit breach has its own variant so
/// operators and metrics can tell them apart.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {plugin}: deadline of {timeout_ms} ms exceeded")]
    DeadlineExceeded { plugin: String, timeout_ms: u128 },
    #[error("plugin {plugin}: out of fuel")]
    OutOfFuel { plugin: String },
    #[error("plugin {plugin}: memory limit of {limit_bytes} bytes exceeded")]
    MemoryLimit { plugin: String, limit_bytes: usize },
    #[error("plugin {plugin}: input of {size} bytes exceeds the limit of {limit} bytes")]
    InputTooLarge {
        plugin: String,
        size: usize,
        limit: usize,
    },
    #[error("plugin {plugin}: output of {size} bytes exceeds the limit of {limit} bytes")]
    OutputTooLarge {
        plugin: String,
        size: usize,
        limit: usize,
    },
    #[error("plugin {plugin}: capability denied: {detail}")]
    CapabilityDenied { plugin: String, detail: String },
    #[error("plugin {plugin} panicked: {message}")]
    Panic { plugin: String, message: String },
    #[error("plugin {plugin} trapped: {message}")]
    Trap { plugin: String, message: String },
    #[error("plugin {plugin}: too many calls in flight")]
    Busy { plugin: String },
    #[error("no plugin named {0:?} is loaded")]
    NotLoaded(String),
    #[error("plugin {plugin} is a {kind} of WIT {wit}, which has no `{function}`")]
    NotExported {
        plugin: String,
        function: &'static str,
        kind: PluginKind,
        wit: &'static str,
    },
    #[error("plugin {plugin} is a {actual}, not a {expected}")]
    WrongKind {
        plugin: String,
        expected: PluginKind,
        actual: PluginKind,
    },
}

impl PluginError {
    /// A stable, short name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::DeadlineExceeded { .. } => "deadline",
            PluginError::OutOfFuel { .. } => "fuel",
            PluginError::MemoryLimit { .. } => "memory",
            PluginError::InputTooLarge { .. } => "input_too_large",
            PluginError::OutputTooLarge { .. } => "output_too_large",
            PluginError::CapabilityDenied { .. } => "capability_denied",
            PluginError::Panic { .. } => "panic",
            PluginError::Trap { .. } => "trap",
            PluginError::Busy { .. } => "busy",
            PluginError::NotLoaded(_) => "not_loaded",
            PluginError::NotExported { .. } => "not_exported",
            PluginError::WrongKind { .. } => "wrong_kind",
        }
    }
}
