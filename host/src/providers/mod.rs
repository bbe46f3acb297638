//! Provider aliases (the providers database) and the per-alias circuit
//! breaker (Redis).

mod circuit;
mod store;

pub use circuit::{CircuitBreaker, CircuitState, CircuitView};
pub use store::{AliasBinding, ProviderStore};
