//! `paygate plugin run`: one call described in JSON, its result printed as
//! JSON, in the same mock host as the suites.
//!
//! ```json
//! {
//!   "call": "create-payment",
//!   "input": { "payment_id": 7, "price": "25.00", "currency": "EUR" },
//!   "config": { "success-url": "https://shop.example/ok" },
//!   "secrets": { "secret-key": "sk_test_123" },
//!   "provider_response": { "status": 200, "body": { "id": "cs_1", "url": "https://pay.example/cs_1" } },
//!   "now_ms": 1800000000000
//! }
//! ```
//!
//! `call` defaults to the world's main export (`create-payment`, `verify`,
//! `decide`); `input` is that call's argument with the WIT field names in
//! snake case, and omitted fields take the harness's sample values
//! (`verify` needs at least a body). `payment-status` takes
//! `{"reference": "..."}`. `provider_response` is what the mock provider
//! answers; `base-url` points at it unless `config` says otherwise.

use std::collections::BTreeMap;
use std::path::PathBuf;

use paygate_plugin_registry::PluginKind;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::case::Meter;
use crate::fixtures::{FixtureResponse, WebhookFixture};
use crate::host::{MockHost, Settings};
use crate::outcome::Outcome;
use crate::{HarnessError, Options, policy, provider};
use paygate_runtime::LoadedPlugin;
use paygate_runtime::bindings::{LimitRequest, PaymentRequest};

/// A call to make, as read from `--input`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    /// The export to call; the world's main one unless given.
    #[serde(default)]
    pub call: Option<String>,
    /// The call's argument; fields left out take the sample values.
    #[serde(default)]
    pub input: Value,
    /// Settings, as `--config` gives them to `plugin test`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Secrets, over the harness's test secrets.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// What the mock provider answers; a 500 naming the missing fixture if absent.
    #[serde(default)]
    pub provider_response: Option<FixtureResponse>,
    /// The clock the plugin sees, in Unix milliseconds.
    #[serde(default)]
    pub now_ms: Option<u64>,
}

/// The printed result, and whether the plugin answered at all.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// `{"component", "world", "call", "result", "http", "stats"}`.
    pub json: Value,
    /// False when the component did not load or the host stopped the call
    /// (trap, deadline, fuel, memory, capability): `plugin run` exits 1.
    pub completed: bool,
}

/// The HTTP timeout of a call to a real provider: the host's default.
const PROVIDER_HTTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);

/// Loads the component and makes the one call `input` describes.
pub async fn run_once(
    name: &str,
    bytes: &[u8],
    input: RunInput,
    cache_dir: Option<PathBuf>,
) -> Result<RunOutput, HarnessError> {
    run_once_with(name, bytes, input, cache_dir, Vec::new()).await
}

/// [`run_once`], letting the plugin reach `allowed_hosts` too, with a
/// provider's timeout instead of the suites' short one: pointed there by
/// its settings (`"config": {"base-url": ...}`), it calls a real or local
/// provider, and `http` lists only what reached the mock.
pub async fn run_once_with(
    name: &str,
    bytes: &[u8],
    input: RunInput,
    cache_dir: Option<PathBuf>,
    allowed_hosts: Vec<String>,
) -> Result<RunOutput, HarnessError> {
    let http_timeout = if allowed_hosts.is_empty() {
        crate::DEFAULT_HTTP_TIMEOUT
    } else {
        PROVIDER_HTTP_TIMEOUT
    };
    let options = Options {
        config: input.config.clone(),
        secrets: input.secrets.clone(),
        cache_dir,
        allowed_hosts,
        http_timeout,
        ..Options::default()
    };
    let host = MockHost::start(&options).await?;
    let loaded = host
        .loader
        .compile(name, bytes)
        .and_then(|(compiled, _)| host.bind(name, &compiled, Settings::Full));
    let plugin = match loaded {
        Ok(plugin) => plugin,
        Err(e) => {
            let json = json!({ "component": name, "load-error": e.to_string() });
            return Ok(RunOutput {
                json,
                completed: false,
            });
        }
    };
    if let Some(now) = input.now_ms {
        host.services.clock.set_ms(now);
    }
    host.provider.answer_with(input.provider_response.clone());
    let kind = plugin.ctx.kind;
    let call = input
        .call
        .clone()
        .unwrap_or_else(|| default_call(kind).into());

    let meter = Meter::start(&plugin);
    let outcome = call_once(&plugin, &call, input.input).await?;
    let (stats, _) = meter.stop();
    let http: Vec<Value> = host
        .provider
        .received()
        .iter()
        .map(crate::mock::Received::to_json)
        .collect();
    let completed = outcome.name != "host-error";
    let json = json!({
        "component": name,
        "world": kind.world(),
        "call": call,
        "result": outcome.value,
        "http": http,
        "stats": {
            "latency_us": stats.micros,
            "fuel": stats.fuel,
            "peak_memory_bytes": stats.peak_memory_bytes,
            "component_bytes": bytes.len(),
        },
    });
    Ok(RunOutput { json, completed })
}

fn default_call(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::ProviderAdapter => "create-payment",
        PluginKind::WebhookVerifier => "verify",
        PluginKind::RateLimitPolicy => "decide",
    }
}

async fn call_once(
    plugin: &LoadedPlugin,
    call: &str,
    input: Value,
) -> Result<Outcome, HarnessError> {
    let outcome = match (plugin.ctx.kind, call) {
        (PluginKind::ProviderAdapter, "create-payment") => {
            let request: PaymentInput = parse(call, input)?;
            Outcome::session(plugin.create_payment("harness", &request.into()).await)
        }
        (PluginKind::ProviderAdapter, "payment-status") => {
            let StatusInput { reference } = parse(call, input)?;
            Outcome::state(plugin.payment_status("harness", &reference).await)
        }
        (PluginKind::WebhookVerifier, "verify") => {
            let webhook: WebhookFixture = parse(call, input)?;
            Outcome::events(plugin.verify("harness", &webhook.request()).await)
        }
        (PluginKind::RateLimitPolicy, "decide") => {
            let request: LimitInput = parse(call, input)?;
            Outcome::decision(&plugin.decide("harness", &request.into()).await)
        }
        (kind, other) => {
            return Err(HarnessError::Input(format!(
                "a {kind} has no call {other:?}; it has {}",
                match kind {
                    PluginKind::ProviderAdapter => "create-payment and payment-status",
                    PluginKind::WebhookVerifier => "verify",
                    PluginKind::RateLimitPolicy => "decide",
                }
            )));
        }
    };
    Ok(outcome)
}

/// Parses a call's `input`; an absent input takes every default.
fn parse<T: DeserializeOwned>(call: &str, input: Value) -> Result<T, HarnessError> {
    let input = if input.is_null() { json!({}) } else { input };
    serde_json::from_value(input).map_err(|e| HarnessError::Input(format!("{call} input: {e}")))
}

/// `create-payment`'s argument; missing fields take the sample payment's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentInput {
    payment_id: Option<u64>,
    merchant_id: Option<u64>,
    order_id: Option<u64>,
    amount: Option<String>,
    price: Option<String>,
    currency: Option<String>,
    idempotency_key: Option<String>,
    return_url: Option<String>,
    cancel_url: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

impl From<PaymentInput> for PaymentRequest {
    fn from(i: PaymentInput) -> Self {
        let d = provider::sample_payment();
        PaymentRequest {
            payment_id: i.payment_id.unwrap_or(d.payment_id),
            merchant_id: i.merchant_id.unwrap_or(d.merchant_id),
            order_id: i.order_id.unwrap_or(d.order_id),
            amount: i.amount.unwrap_or(d.amount),
            price: i.price.unwrap_or(d.price),
            currency: i.currency.unwrap_or(d.currency),
            idempotency_key: i.idempotency_key.unwrap_or(d.idempotency_key),
            return_url: i.return_url.or(d.return_url),
            cancel_url: i.cancel_url.or(d.cancel_url),
            metadata: i.metadata.into_iter().collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusInput {
    reference: String,
}

/// `decide`'s argument; missing fields take the sample request's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitInput {
    route: Option<String>,
    method: Option<String>,
    client_ip: Option<String>,
    merchant_id: Option<u64>,
    key_id: Option<String>,
}

impl From<LimitInput> for LimitRequest {
    fn from(i: LimitInput) -> Self {
        let d = policy::sample_request("203.0.113.1");
        LimitRequest {
            route: i.route.unwrap_or(d.route),
            method: i.method.unwrap_or(d.method),
            client_ip: i.client_ip.unwrap_or(d.client_ip),
            merchant_id: i.merchant_id,
            key_id: i.key_id,
        }
    }
}
