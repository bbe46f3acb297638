//! The one place the WIT contract becomes Rust.
//!
//! Each world gets its own `bindgen!`; the host interfaces they share (`log`,
//! `config`, `clock`) are generated once, in the provider world, and reused by
//! the others through `with`, so the host implements each capability once.

/// `provider-adapter`: also the home of the shared host interfaces.
pub mod provider {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "provider-adapter",
        imports: {
            "paygate:plugins/http": async,
        },
        exports: { default: async },
    });
}

/// `webhook-verifier`.
pub mod verifier {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "webhook-verifier",
        exports: { default: async },
        with: {
            "paygate:plugins/log": super::provider::paygate::plugins::log,
            "paygate:plugins/config": super::provider::paygate::plugins::config,
            "paygate:plugins/clock": super::provider::paygate::plugins::clock,
        },
    });
}

/// `rate-limit-policy`.
pub mod policy {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "rate-limit-policy",
        imports: {
            "paygate:plugins/counters": async,
        },
        exports: { default: async },
        with: {
            "paygate:plugins/log": super::provider::paygate::plugins::log,
            "paygate:plugins/config": super::provider::paygate::plugins::config,
            "paygate:plugins/clock": super::provider::paygate::plugins::clock,
        },
    });
}

pub use policy::exports::paygate::plugins::policy::{Decision, LimitRequest};
pub use policy::paygate::plugins::counters;
pub use provider::exports::paygate::plugins::provider::{
    PaymentRequest, PaymentSession, PaymentState, ProviderError,
};
pub use provider::paygate::plugins::{clock, config, http, log};
pub use verifier::exports::paygate::plugins::verifier::{
    EventStatus, PaymentRef, VerifyError, WebhookEvent, WebhookRequest,
};
