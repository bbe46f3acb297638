//! The one place the WIT contract becomes Rust.
//!
//! `wit/` is `paygate:plugins@0.2.0`; `wit/deps/` keeps 0.1.0, whose
//! interfaces 0.2.0 reuses where they did not change. Each world gets its
//! own `bindgen!`; the host interfaces they share (`log`, `config`,
//! `clock`) are generated once, in the provider world, and reused by the
//! others through `with`, so the host implements each capability once.
//!
//! Three interfaces differ between the versions served: 0.2.0's verifier
//! adds an event's `amount` and refund events, its provider a
//! `cancel-url` and refunds, and 0.3.0's `counters` adds `take`.
//! A 0.1.0 component's answers are turned into 0.2.0's types
//! ([`verifier_v0_1`], [`provider_v0_1`]), so the rest of the host knows
//! one set.

/// `provider-adapter` of 0.2.0: also the home of the shared host interfaces.
pub mod provider {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "provider-adapter",
        imports: {
            "paygate:plugins/http@0.1.0": async,
        },
        exports: { default: async },
    });
}

/// `webhook-verifier` of 0.2.0.
pub mod verifier {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "webhook-verifier",
        exports: { default: async },
        with: {
            "paygate:plugins/log@0.1.0": super::provider::paygate::plugins0_1_0::log,
            "paygate:plugins/config@0.1.0": super::provider::paygate::plugins0_1_0::config,
            "paygate:plugins/clock@0.1.0": super::provider::paygate::plugins0_1_0::clock,
        },
    });
}

/// `webhook-verifier` of 0.1.0, served beside 0.2.0's.
pub mod verifier_v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "paygate:plugins/webhook-verifier@0.1.0",
        exports: { default: async },
        with: {
            "paygate:plugins/log@0.1.0": super::provider::paygate::plugins0_1_0::log,
            "paygate:plugins/config@0.1.0": super::provider::paygate::plugins0_1_0::config,
            "paygate:plugins/clock@0.1.0": super::provider::paygate::plugins0_1_0::clock,
        },
    });

    use super::verifier::exports::paygate::plugins0_2_0::verifier as v2;
    use exports::paygate::plugins0_1_0::verifier as v1;

    /// A 0.2.0 request as 0.1.0 spells it (the same fields).
    pub fn request(r: &v2::WebhookRequest) -> v1::WebhookRequest {
        v1::WebhookRequest {
            path: r.path.clone(),
            headers: r.headers.clone(),
            body: r.body.clone(),
        }
    }

    /// A 0.1.0 answer in 0.2.0's types: its events are about payments and
    /// say no amount.
    pub fn answer(
        a: Result<Vec<v1::WebhookEvent>, v1::VerifyError>,
    ) -> Result<Vec<v2::Event>, v2::VerifyError> {
        match a {
            Ok(events) => Ok(events
                .into_iter()
                .map(|e| v2::Event::Payment(event(e)))
                .collect()),
            Err(v1::VerifyError::InvalidSignature(m)) => Err(v2::VerifyError::InvalidSignature(m)),
            Err(v1::VerifyError::SignatureExpired(m)) => Err(v2::VerifyError::SignatureExpired(m)),
            Err(v1::VerifyError::Malformed(m)) => Err(v2::VerifyError::Malformed(m)),
            Err(v1::VerifyError::Misconfigured(m)) => Err(v2::VerifyError::Misconfigured(m)),
        }
    }

    fn event(e: v1::WebhookEvent) -> v2::WebhookEvent {
        v2::WebhookEvent {
            event_id: e.event_id,
            payment: match e.payment {
                v1::PaymentRef::PaymentId(id) => v2::PaymentRef::PaymentId(id),
                v1::PaymentRef::ProviderReference(r) => v2::PaymentRef::ProviderReference(r),
            },
            status: match e.status {
                v1::EventStatus::Pending => v2::EventStatus::Pending,
                v1::EventStatus::Finished => v2::EventStatus::Finished,
                v1::EventStatus::Failed => v2::EventStatus::Failed,
            },
            provider_type: e.provider_type,
            amount: None,
        }
    }
}

/// `provider-adapter` of 0.1.0, served beside 0.2.0's: it opens and looks
/// up payments, and has no refunds.
pub mod provider_v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "paygate:plugins/provider-adapter@0.1.0",
        exports: { default: async },
        with: {
            "paygate:plugins/log@0.1.0": super::provider::paygate::plugins0_1_0::log,
            "paygate:plugins/http@0.1.0": super::provider::paygate::plugins0_1_0::http,
            "paygate:plugins/config@0.1.0": super::provider::paygate::plugins0_1_0::config,
            "paygate:plugins/clock@0.1.0": super::provider::paygate::plugins0_1_0::clock,
        },
    });

    use super::provider::exports::paygate::plugins0_2_0::provider as v2;
    use exports::paygate::plugins0_1_0::provider as v1;

    /// A 0.2.0 request as 0.1.0 spells it: without the cancel URL, which
    /// a 0.1.0 adapter has no field for (it uses its own setting).
    pub fn request(r: &v2::PaymentRequest) -> v1::PaymentRequest {
        v1::PaymentRequest {
            payment_id: r.payment_id,
            merchant_id: r.merchant_id,
            order_id: r.order_id,
            amount: r.amount.clone(),
            price: r.price.clone(),
            currency: r.currency.clone(),
            idempotency_key: r.idempotency_key.clone(),
            return_url: r.return_url.clone(),
            metadata: r.metadata.clone(),
        }
    }

    /// A 0.1.0 `create-payment` answer in 0.2.0's types.
    pub fn session(
        a: Result<v1::PaymentSession, v1::ProviderError>,
    ) -> Result<v2::PaymentSession, v2::ProviderError> {
        a.map(|s| v2::PaymentSession {
            reference: s.reference,
            payment_url: s.payment_url,
        })
        .map_err(error)
    }

    /// A 0.1.0 `payment-status` answer in 0.2.0's types.
    pub fn state(
        a: Result<v1::PaymentState, v1::ProviderError>,
    ) -> Result<v2::PaymentState, v2::ProviderError> {
        a.map(|s| match s {
            v1::PaymentState::Pending => v2::PaymentState::Pending,
            v1::PaymentState::Finished => v2::PaymentState::Finished,
            v1::PaymentState::Failed => v2::PaymentState::Failed,
        })
        .map_err(error)
    }

    fn error(e: v1::ProviderError) -> v2::ProviderError {
        match e {
            v1::ProviderError::Declined(m) => v2::ProviderError::Declined(m),
            v1::ProviderError::InvalidRequest(m) => v2::ProviderError::InvalidRequest(m),
            v1::ProviderError::Unavailable(m) => v2::ProviderError::Unavailable(m),
            v1::ProviderError::Misconfigured(m) => v2::ProviderError::Misconfigured(m),
        }
    }
}

/// `rate-limit-policy` of 0.3.0: counters with `take`.
pub mod policy {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "rate-limit-policy",
        imports: {
            "paygate:plugins/counters@0.3.0": async,
        },
        exports: { default: async },
        with: {
            "paygate:plugins/log@0.1.0": super::provider::paygate::plugins0_1_0::log,
            "paygate:plugins/config@0.1.0": super::provider::paygate::plugins0_1_0::config,
            "paygate:plugins/clock@0.1.0": super::provider::paygate::plugins0_1_0::clock,
        },
    });
}

/// `rate-limit-policy` of 0.1.0 and 0.2.0 (the same world), served beside
/// 0.3.0's: only its `counters` import differs, and the policy it exports
/// is the same interface, so [`policy`]'s bindings call it; this module
/// gives the linker 0.1.0's `counters`.
pub mod policy_v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "paygate:plugins/rate-limit-policy@0.2.0",
        imports: {
            "paygate:plugins/counters@0.1.0": async,
        },
        exports: { default: async },
        with: {
            "paygate:plugins/log@0.1.0": super::provider::paygate::plugins0_1_0::log,
            "paygate:plugins/config@0.1.0": super::provider::paygate::plugins0_1_0::config,
            "paygate:plugins/clock@0.1.0": super::provider::paygate::plugins0_1_0::clock,
        },
    });
}

pub use policy::exports::paygate::plugins0_1_0::policy::{Decision, LimitRequest};
pub use policy::paygate::plugins0_3_0::counters;
pub use policy_v0_1::paygate::plugins0_1_0::counters as counters_v0_1;
pub use provider::exports::paygate::plugins0_2_0::provider::{
    PaymentRequest, PaymentSession, PaymentState, ProviderError, RefundReason, RefundRequest,
    RefundSession, RefundState,
};
pub use provider::paygate::plugins0_1_0::{clock, config, http, log};
pub use verifier::exports::paygate::plugins0_2_0::verifier::{
    Event, EventStatus, Money, PaymentRef, RefundEvent, RefundStatus, VerifyError, WebhookEvent,
    WebhookRequest,
};
