//! Calling into a loaded plugin: a fresh sandbox per call, limits on every
//! store, and each way a call can fail mapped to its own [`PluginError`].

use std::sync::Arc;
use std::time::Instant;

use paygate_plugin_registry::PluginKind;
use tracing::Instrument;
use wasmtime::{Store, Trap, UpdateDeadline};

use super::bindings::{
    Decision, Event, LimitRequest, PaymentRequest, PaymentSession, PaymentState, ProviderError,
    RefundRequest, RefundSession, RefundState, VerifyError, WebhookRequest,
};
use super::bindings::{policy, provider, provider_v0_1, verifier, verifier_v0_1};
use super::engine::EPOCH_TICK;
use super::error::PluginError;
use super::loaded::{LoadedPlugin, WorldPre};
use super::state::{Account, CallState};
use super::stdio::panic_message;

/// A world's typed pre-instantiation: one fresh instance per call.
trait Instantiate {
    type World;
    async fn instantiate(&self, store: &mut Store<CallState>) -> wasmtime::Result<Self::World>;
}

macro_rules! instantiate {
    ($($pre:ty => $world:ty),+ $(,)?) => {$(
        impl Instantiate for $pre {
            type World = $world;
            async fn instantiate(
                &self,
                store: &mut Store<CallState>,
            ) -> wasmtime::Result<Self::World> {
                self.instantiate_async(store).await
            }
        }
    )+};
}

instantiate! {
    provider::ProviderAdapterPre<CallState> => provider::ProviderAdapter,
    provider_v0_1::ProviderAdapterPre<CallState> => provider_v0_1::ProviderAdapter,
    verifier::WebhookVerifierPre<CallState> => verifier::WebhookVerifier,
    verifier_v0_1::WebhookVerifierPre<CallState> => verifier_v0_1::WebhookVerifier,
    policy::RateLimitPolicyPre<CallState> => policy::RateLimitPolicy,
}

/// Bytes a value carries across the sandbox boundary, for the size caps.
pub trait WireSize {
    fn wire_size(&self) -> usize;
}

/// Who a provider call is for: the request it serves, and the merchant's
/// own account at the provider when it has one (see [`Account`]). A bare
/// request id is a call on the plugin's own settings.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    pub request_id: &'a str,
    pub account: Option<&'a Arc<Account>>,
}

impl<'a> From<&'a str> for Caller<'a> {
    fn from(request_id: &'a str) -> Self {
        Self {
            request_id,
            account: None,
        }
    }
}

/// A rate-limit policy's decision and what the host saw while it was taken.
#[derive(Clone, Debug)]
pub struct Decided {
    pub decision: Decision,
    /// A counter operation found the store (Redis) unreachable.
    pub counters_unavailable: bool,
}

/// What one call cost, for benchmarks, metrics and the harness.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallStats {
    pub fuel_used: u64,
    pub micros: u64,
    /// The most linear memory the call's instance held at once.
    pub peak_memory_bytes: u64,
}

impl LoadedPlugin {
    /// `create-payment` of a provider adapter.
    pub async fn create_payment(
        &self,
        caller: impl Into<Caller<'_>>,
        request: &PaymentRequest,
    ) -> Result<Result<PaymentSession, ProviderError>, PluginError> {
        let caller = caller.into();
        let size = request.wire_size();
        match &self.pre {
            WorldPre::Provider(pre) => {
                self.call(pre, caller, size, async |world, store| {
                    let provider = world.paygate_plugins0_2_0_provider();
                    provider.call_create_payment(store, request).await
                })
                .await
            }
            WorldPre::ProviderV0_1(pre) => {
                let old = provider_v0_1::request(request);
                self.call(pre, caller, size, async |world, store| {
                    let provider = world.paygate_plugins0_1_0_provider();
                    let answer = provider.call_create_payment(store, &old).await?;
                    Ok(provider_v0_1::session(answer))
                })
                .await
            }
            _ => Err(self.wrong_kind(PluginKind::ProviderAdapter)),
        }
    }

    /// `payment-status` of a provider adapter.
    pub async fn payment_status(
        &self,
        caller: impl Into<Caller<'_>>,
        reference: &str,
    ) -> Result<Result<PaymentState, ProviderError>, PluginError> {
        let caller = caller.into();
        let size = reference.len();
        match &self.pre {
            WorldPre::Provider(pre) => {
                self.call(pre, caller, size, async |world, store| {
                    let provider = world.paygate_plugins0_2_0_provider();
                    provider.call_payment_status(store, reference).await
                })
                .await
            }
            WorldPre::ProviderV0_1(pre) => {
                self.call(pre, caller, size, async |world, store| {
                    let provider = world.paygate_plugins0_1_0_provider();
                    let answer = provider.call_payment_status(store, reference).await?;
                    Ok(provider_v0_1::state(answer))
                })
                .await
            }
            _ => Err(self.wrong_kind(PluginKind::ProviderAdapter)),
        }
    }

    /// `refund` of a provider adapter; a 0.1.0 adapter has none.
    pub async fn refund(
        &self,
        caller: impl Into<Caller<'_>>,
        request: &RefundRequest,
    ) -> Result<Result<RefundSession, ProviderError>, PluginError> {
        let caller = caller.into();
        match &self.pre {
            WorldPre::Provider(pre) => {
                self.call(pre, caller, request.wire_size(), async |world, store| {
                    let provider = world.paygate_plugins0_2_0_provider();
                    provider.call_refund(store, request).await
                })
                .await
            }
            _ => Err(self.not_exported(PluginKind::ProviderAdapter, "refund")),
        }
    }

    /// `refund-status` of a provider adapter; a 0.1.0 adapter has none.
    pub async fn refund_status(
        &self,
        caller: impl Into<Caller<'_>>,
        reference: &str,
    ) -> Result<Result<RefundState, ProviderError>, PluginError> {
        let caller = caller.into();
        match &self.pre {
            WorldPre::Provider(pre) => {
                self.call(pre, caller, reference.len(), async |world, store| {
                    let provider = world.paygate_plugins0_2_0_provider();
                    provider.call_refund_status(store, reference).await
                })
                .await
            }
            _ => Err(self.not_exported(PluginKind::ProviderAdapter, "refund-status")),
        }
    }

    /// `verify` of a webhook verifier.
    pub async fn verify(
        &self,
        request_id: &str,
        request: &WebhookRequest,
    ) -> Result<Result<Vec<Event>, VerifyError>, PluginError> {
        let size = request.wire_size();
        match &self.pre {
            WorldPre::Verifier(pre) => {
                self.call(pre, request_id.into(), size, async |world, store| {
                    let verifier = world.paygate_plugins0_2_0_verifier();
                    verifier.call_verify(store, request).await
                })
                .await
            }
            WorldPre::VerifierV0_1(pre) => {
                let old = verifier_v0_1::request(request);
                self.call(pre, request_id.into(), size, async |world, store| {
                    let verifier = world.paygate_plugins0_1_0_verifier();
                    let answer = verifier.call_verify(store, &old).await?;
                    Ok(verifier_v0_1::answer(answer))
                })
                .await
            }
            _ => Err(self.wrong_kind(PluginKind::WebhookVerifier)),
        }
    }

    /// `decide` of a rate-limit policy.
    pub async fn decide(
        &self,
        request_id: &str,
        request: &LimitRequest,
    ) -> Result<Decision, PluginError> {
        Ok(self.decide_observed(request_id, request).await?.decision)
    }

    /// `decide` of a rate-limit policy, and whether the counter store
    /// failed while the policy took it: then the decision is the guest's
    /// guess and the host's own setting should rule.
    pub async fn decide_observed(
        &self,
        request_id: &str,
        request: &LimitRequest,
    ) -> Result<Decided, PluginError> {
        let WorldPre::Policy(pre, _) = &self.pre else {
            return Err(self.wrong_kind(PluginKind::RateLimitPolicy));
        };
        self.call(
            pre,
            request_id.into(),
            request.wire_size(),
            async |world, store| {
                let policy = world.paygate_plugins0_1_0_policy();
                let decision = policy.call_decide(&mut *store, request).await?;
                Ok(Decided {
                    decision,
                    counters_unavailable: store.data().counters_unavailable,
                })
            },
        )
        .await
    }

    /// Instantiates the world `pre` in a fresh store and runs `call` on it.
    async fn call<P: Instantiate, R: WireSize>(
        &self,
        pre: &P,
        caller: Caller<'_>,
        input_size: usize,
        call: impl AsyncFnOnce(P::World, &mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        self.run(caller, input_size, async |store: &mut Store<CallState>| {
            let world = pre.instantiate(&mut *store).await?;
            call(world, store).await
        })
        .await
    }

    /// Runs `call` in a fresh store and turns every failure into its named error.
    async fn run<R: WireSize>(
        &self,
        caller: Caller<'_>,
        input_size: usize,
        call: impl AsyncFnOnce(&mut Store<CallState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let ctx = &self.ctx;
        let limits = &ctx.limits;
        let plugin = || ctx.name.clone();
        if input_size > limits.max_input_bytes {
            return Err(PluginError::InputTooLarge {
                plugin: plugin(),
                size: input_size,
                limit: limits.max_input_bytes,
            });
        }

        let started = Instant::now();
        let mut store = Store::new(
            &self.engine.engine,
            CallState::new(ctx.clone(), caller.request_id.into())
                .with_account(caller.account.cloned()),
        );
        store.limiter(|s| &mut s.limiter);
        // Guest code yields to the executor every epoch tick, so a busy
        // plugin cannot hog a worker thread; once its budget of ticks is
        // spent, it is interrupted.
        let mut ticks_left = limits.timeout.as_micros().div_ceil(EPOCH_TICK.as_micros()) as u64 + 1;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            ticks_left = ticks_left.saturating_sub(1);
            if ticks_left == 0 {
                return Err(Trap::Interrupt.into());
            }
            Ok(UpdateDeadline::Yield(1))
        });
        let fuel_budget = limits.fuel.unwrap_or(u64::MAX);
        if self.engine.fuel {
            store
                .set_fuel(fuel_budget)
                .map_err(|e| self.trap(e.to_string()))?;
        }

        // Host imports the guest makes (HTTP, counters, its own log lines)
        // run inside this span, so they carry the plugin's identity.
        let span = tracing::info_span!(
            "plugin_call",
            plugin = %ctx.name,
            version = %ctx.version,
            world = %ctx.kind,
            fuel = tracing::field::Empty,
        );
        // The epoch stops guest code; this also bounds time spent waiting on
        // host imports such as HTTP.
        let outcome = tokio::time::timeout(limits.timeout, call(&mut store))
            .instrument(span.clone())
            .await;
        let fuel_used = if self.engine.fuel {
            fuel_budget - store.get_fuel().unwrap_or(0)
        } else {
            0
        };
        span.record("fuel", fuel_used);
        let stats = CallStats {
            fuel_used,
            micros: started.elapsed().as_micros() as u64,
            peak_memory_bytes: store.data().limiter.peak_bytes as u64,
        };
        let result = self.outcome(&mut store, outcome);
        span.in_scope(|| {
            tracing::debug!(
                micros = stats.micros,
                peak_memory_bytes = stats.peak_memory_bytes,
                error = result.as_ref().err().map(PluginError::kind),
                "plugin call finished"
            )
        });
        self.stats.record(stats, result.as_ref().err());
        result
    }

    fn outcome<R: WireSize>(
        &self,
        store: &mut Store<CallState>,
        outcome: Result<wasmtime::Result<R>, tokio::time::error::Elapsed>,
    ) -> Result<R, PluginError> {
        let limits = &self.ctx.limits;
        let plugin = || self.ctx.name.clone();
        let value = match outcome {
            Err(_elapsed) => {
                return Err(PluginError::DeadlineExceeded {
                    plugin: plugin(),
                    timeout_ms: limits.timeout.as_millis(),
                });
            }
            Ok(Err(e)) => return Err(self.classify(store, e)),
            Ok(Ok(value)) => value,
        };
        if let Some(detail) = store.data_mut().denied.take() {
            return Err(PluginError::CapabilityDenied {
                plugin: plugin(),
                detail,
            });
        }
        let size = value.wire_size();
        if size > limits.max_output_bytes {
            return Err(PluginError::OutputTooLarge {
                plugin: plugin(),
                size,
                limit: limits.max_output_bytes,
            });
        }
        Ok(value)
    }

    fn classify(&self, store: &Store<CallState>, e: wasmtime::Error) -> PluginError {
        let plugin = self.ctx.name.clone();
        let state = store.data();
        if state.limiter.hit {
            return PluginError::MemoryLimit {
                plugin,
                limit_bytes: self.ctx.limits.memory_bytes,
            };
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => {
                return PluginError::DeadlineExceeded {
                    plugin,
                    timeout_ms: self.ctx.limits.timeout.as_millis(),
                };
            }
            Some(Trap::OutOfFuel) => return PluginError::OutOfFuel { plugin },
            _ => {}
        }
        if let Some(detail) = state.denied.clone() {
            return PluginError::CapabilityDenied { plugin, detail };
        }
        if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
        {
            return PluginError::Busy { plugin };
        }
        if let Some(message) = panic_message(&state.stderr.text()) {
            return PluginError::Panic { plugin, message };
        }
        let message = match e.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => e.root_cause().to_string(),
        };
        self.trap(message)
    }

    fn trap(&self, message: String) -> PluginError {
        PluginError::Trap {
            plugin: self.ctx.name.clone(),
            message,
        }
    }

    fn not_exported(&self, kind: PluginKind, function: &'static str) -> PluginError {
        PluginError::NotExported {
            plugin: self.ctx.name.clone(),
            function,
            kind,
            wit: self.wit_version(),
        }
    }

    fn wrong_kind(&self, expected: PluginKind) -> PluginError {
        PluginError::WrongKind {
            plugin: self.ctx.name.clone(),
            expected,
            actual: self.ctx.kind,
        }
    }
}

fn pairs_size(pairs: &[(String, String)]) -> usize {
    pairs.iter().map(|(k, v)| k.len() + v.len()).sum()
}

impl WireSize for PaymentRequest {
    fn wire_size(&self) -> usize {
        self.amount.len()
            + self.price.len()
            + self.currency.len()
            + self.idempotency_key.len()
            + self.return_url.as_ref().map_or(0, String::len)
            + self.cancel_url.as_ref().map_or(0, String::len)
            + pairs_size(&self.metadata)
            + 24
    }
}

impl WireSize for RefundRequest {
    fn wire_size(&self) -> usize {
        self.payment_reference.len()
            + self.price.len()
            + self.currency.len()
            + self.idempotency_key.len()
            + pairs_size(&self.metadata)
            + 32
    }
}

impl WireSize for RefundSession {
    fn wire_size(&self) -> usize {
        self.reference.len() + 1
    }
}

impl WireSize for RefundState {
    fn wire_size(&self) -> usize {
        1
    }
}

impl WireSize for WebhookRequest {
    fn wire_size(&self) -> usize {
        self.path.len() + pairs_size(&self.headers) + self.body.len()
    }
}

impl WireSize for LimitRequest {
    fn wire_size(&self) -> usize {
        self.route.len()
            + self.method.len()
            + self.client_ip.len()
            + self.key_id.as_ref().map_or(0, String::len)
            + 8
    }
}

impl WireSize for Decision {
    fn wire_size(&self) -> usize {
        32
    }
}

impl WireSize for Decided {
    fn wire_size(&self) -> usize {
        self.decision.wire_size()
    }
}

impl WireSize for PaymentSession {
    fn wire_size(&self) -> usize {
        self.reference.len() + self.payment_url.len()
    }
}

impl WireSize for PaymentState {
    fn wire_size(&self) -> usize {
        1
    }
}

impl WireSize for ProviderError {
    fn wire_size(&self) -> usize {
        match self {
            ProviderError::Declined(m)
            | ProviderError::InvalidRequest(m)
            | ProviderError::Unavailable(m)
            | ProviderError::Misconfigured(m) => m.len(),
        }
    }
}

impl WireSize for VerifyError {
    fn wire_size(&self) -> usize {
        match self {
            VerifyError::InvalidSignature(m)
            | VerifyError::SignatureExpired(m)
            | VerifyError::Malformed(m)
            | VerifyError::Misconfigured(m) => m.len(),
        }
    }
}

impl WireSize for Vec<Event> {
    fn wire_size(&self) -> usize {
        use super::bindings::PaymentRef;
        let money = |m: &Option<super::bindings::Money>| {
            m.as_ref().map_or(0, |m| m.value.len() + m.currency.len())
        };
        self.iter()
            .map(|e| match e {
                Event::Payment(e) => {
                    e.event_id.len()
                        + e.provider_type.len()
                        + match &e.payment {
                            PaymentRef::PaymentId(_) => 8,
                            PaymentRef::ProviderReference(r) => r.len(),
                        }
                        + money(&e.amount)
                }
                Event::Refund(e) => {
                    e.event_id.len()
                        + e.provider_type.len()
                        + e.reference.as_ref().map_or(0, String::len)
                        + 8
                        + money(&e.amount)
                }
            })
            .sum()
    }
}

impl<T: WireSize, E: WireSize> WireSize for Result<T, E> {
    fn wire_size(&self) -> usize {
        match self {
            Ok(v) => v.wire_size(),
            Err(e) => e.wire_size(),
        }
    }
}

impl LoadedPlugin {
    /// Benchmark floor: `n` `decide` calls on ONE instance, reused, which
    /// production never does (each call gets a fresh sandbox). Returns each
    /// call's duration.
    #[doc(hidden)]
    pub async fn bench_decide_reusing_instance(
        &self,
        request: &LimitRequest,
        n: usize,
    ) -> wasmtime::Result<Vec<std::time::Duration>> {
        let WorldPre::Policy(pre, _) = &self.pre else {
            wasmtime::bail!("not a policy")
        };
        let mut store = Store::new(
            &self.engine.engine,
            CallState::new(self.ctx.clone(), "bench".into()),
        );
        store.set_epoch_deadline(u64::MAX / 2);
        if self.engine.fuel {
            store.set_fuel(u64::MAX)?;
        }
        let instance = pre.instantiate_async(&mut store).await?;
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let started = Instant::now();
            instance
                .paygate_plugins0_1_0_policy()
                .call_decide(&mut store, request)
                .await?;
            times.push(started.elapsed());
        }
        Ok(times)
    }
}
