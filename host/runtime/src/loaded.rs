//! A plugin ready to be called: its context and its pre-instantiated,
//! type-checked component.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::bindings::policy::RateLimitPolicyPre;
use super::bindings::provider::ProviderAdapterPre;
use super::bindings::provider_v0_1::ProviderAdapterPre as ProviderAdapterV0_1Pre;
use super::bindings::verifier::WebhookVerifierPre;
use super::bindings::verifier_v0_1::WebhookVerifierPre as WebhookVerifierV0_1Pre;
use super::call::CallStats;
use super::engine::PluginEngine;
use super::error::PluginError;
use super::state::{CallState, PluginContext};
use crate::stats::Histogram;

/// The typed `InstancePre` of the world the component implements.
pub enum WorldPre {
    Provider(ProviderAdapterPre<CallState>),
    /// An adapter built against WIT 0.1.0 (no cancel URL, no refunds).
    ProviderV0_1(ProviderAdapterV0_1Pre<CallState>),
    Verifier(WebhookVerifierPre<CallState>),
    /// A verifier built against WIT 0.1.0 (its events carry no amount).
    VerifierV0_1(WebhookVerifierV0_1Pre<CallState>),
    /// A policy, with the WIT version of the `counters` it imports (0.1.0,
    /// or 0.3.0's with `take`; the policy interface itself is 0.1.0's).
    Policy(RateLimitPolicyPre<CallState>, &'static str),
}

impl WorldPre {
    /// The newest version of `paygate:plugins` the component was built
    /// against: that of its export, or of a policy's `counters`.
    pub fn wit_version(&self) -> &'static str {
        match self {
            WorldPre::VerifierV0_1(_) | WorldPre::ProviderV0_1(_) => "0.1.0",
            WorldPre::Verifier(_) | WorldPre::Provider(_) => "0.2.0",
            WorldPre::Policy(_, wit) => wit,
        }
    }
}

/// One version of one plugin. Calls hold an `Arc` to it, so a call in flight
/// keeps its version alive after a swap.
pub struct LoadedPlugin {
    pub ctx: Arc<PluginContext>,
    pub(crate) pre: WorldPre,
    pub(crate) engine: Arc<PluginEngine>,
    /// Size of the component's bytes.
    pub size_bytes: usize,
    pub stats: PluginStats,
}

impl LoadedPlugin {
    /// The `paygate:plugins` version of the world the component implements.
    pub fn wit_version(&self) -> &'static str {
        self.pre.wit_version()
    }

    /// Whether the plugin is a provider adapter that gives money back
    /// (`refund`, WIT 0.2.0 and later).
    pub fn refunds(&self) -> bool {
        matches!(self.pre, WorldPre::Provider(_))
    }
}

/// Running totals of a plugin version's calls.
#[derive(Default)]
pub struct PluginStats {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    pub fuel_used: AtomicU64,
    pub micros: AtomicU64,
    pub latency: Histogram,
    /// Failed calls by [`PluginError::kind`] (failures are rare: a lock is fine).
    errors_by_kind: Mutex<BTreeMap<&'static str, u64>>,
    /// The most linear memory one call held, since the last
    /// [`PluginStats::take_peak_memory`].
    pub peak_memory_bytes: AtomicU64,
}

impl PluginStats {
    /// Failed calls so far, by kind.
    pub fn errors_by_kind(&self) -> Vec<(&'static str, u64)> {
        let counts = self.errors_by_kind.lock().expect("stats lock");
        counts.iter().map(|(k, n)| (*k, *n)).collect()
    }

    pub(crate) fn record(&self, stats: CallStats, error: Option<&PluginError>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.fuel_used.fetch_add(stats.fuel_used, Ordering::Relaxed);
        self.micros.fetch_add(stats.micros, Ordering::Relaxed);
        self.latency
            .observe(std::time::Duration::from_micros(stats.micros));
        self.peak_memory_bytes
            .fetch_max(stats.peak_memory_bytes, Ordering::Relaxed);
        if let Some(e) = error {
            self.errors.fetch_add(1, Ordering::Relaxed);
            *self
                .errors_by_kind
                .lock()
                .expect("stats lock")
                .entry(e.kind())
                .or_default() += 1;
            tracing::warn!(plugin = %e, kind = e.kind(), "plugin call failed");
        }
    }

    /// The peak since the previous take, starting a new period; a reader
    /// that wants the peak of some calls takes it before and after them.
    pub fn take_peak_memory(&self) -> u64 {
        self.peak_memory_bytes.swap(0, Ordering::Relaxed)
    }
}
