//! A stand-in payment provider for paygate's tests and demo.
//!
//! It speaks the three dialects paygate's adapter plugins send: the
//! original system's payment-link API (the `sandbox` adapter), the part of
//! Stripe Checkout the `stripe` adapter uses, and the part of Adyen's
//! Checkout API the `adyen` adapter uses. Each payment gets a hosted page
//! with Pay and Decline buttons; the first click settles the payment and
//! sends the gateway the webhook the real provider would, signed the way
//! paygate's `internal_hmac`, `stripe_verifier` and `adyen_verifier` plugins
//! check. Refunds follow the same test prices in every dialect. State lives
//! in memory only.

mod adyen;
mod adyen_refunds;
mod adyen_webhook;
mod checkout;
mod html;
mod ids;
mod links;
mod page;
mod refunds;
mod reply;
mod store;
mod stripe_form;
mod stripe_refunds;
mod webhook;

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use paygate::http::server::ServerTimeouts;
use paygate::plugins::Secret;
use store::Sandbox;

/// Settings of the sandbox provider, from flags or environment variables.
/// The defaults match `paygate-demo serve` on one machine.
#[derive(Clone, Debug, clap::Args)]
pub struct SandboxArgs {
    /// Address the sandbox provider listens on.
    #[arg(long, env = "SANDBOX_LISTEN", default_value = "127.0.0.1:8002")]
    pub listen: SocketAddr,

    /// Base URL buyers' browsers reach the sandbox at; payment pages live
    /// under it.
    #[arg(
        long,
        env = "SANDBOX_PUBLIC_URL",
        default_value = "http://localhost:8002"
    )]
    pub public_url: String,

    /// paygate's base URL; webhooks go to its `/api/v1/payments/webhook…`.
    #[arg(
        long,
        env = "PAYGATE_GATEWAY_URL",
        default_value = "http://localhost:8080"
    )]
    pub gateway_url: String,

    /// Key of the internal scheme's `x-internal-signature` HMAC.
    #[arg(
        long,
        env = "PAYGATE_INTERNAL_WEBHOOK_SECRET",
        default_value = "demo-internal-webhook-secret",
        hide_env_values = true
    )]
    pub internal_webhook_secret: Secret,

    /// Key of the `Stripe-Signature` HMAC (the whole `whsec_…` string).
    #[arg(
        long,
        env = "PAYGATE_STRIPE_WEBHOOK_SECRET",
        default_value = "whsec_demo",
        hide_env_values = true
    )]
    pub stripe_webhook_secret: Secret,

    /// The API key Adyen's API takes in `X-API-Key`.
    #[arg(
        long,
        env = "PAYGATE_ADYEN_API_KEY",
        default_value = "adyen_test_demo_key",
        hide_env_values = true
    )]
    pub adyen_api_key: Secret,

    /// Key of Adyen's notification HMAC, in hex as Adyen shows it (the
    /// decoded bytes are the key).
    #[arg(
        long,
        env = "PAYGATE_ADYEN_HMAC_KEY",
        default_value = "706179676174652D64656D6F2D616479656E2D686D61632D6B65792D70756221",
        hide_env_values = true
    )]
    pub adyen_hmac_key: Secret,

    /// Payments (and, apart, refunds) the sandbox holds before it answers
    /// 503: it keeps them all in memory until it restarts.
    #[arg(long, env = "SANDBOX_MAX_PAYMENTS", default_value_t = DEFAULT_MAX_PAYMENTS)]
    pub max_payments: usize,
}

/// More payments than any test or demo opens; the cap keeps a sandbox left
/// running (or hammered) from growing without bound.
pub const DEFAULT_MAX_PAYMENTS: usize = 100_000;

impl SandboxArgs {
    /// A sandbox provider on `listen` that signs its webhooks with the
    /// secrets the gateway of `config` verifies them with (the demo's where
    /// it has none).
    pub fn signing_as(
        config: &paygate::Config,
        listen: SocketAddr,
        public_url: String,
        gateway_url: String,
    ) -> Self {
        let secret = |name: &str| {
            config.named_secret(name).unwrap_or_else(|| {
                let demo = (paygate::config::DEMO_SECRETS.iter()).find(|(n, _)| *n == name);
                Secret::new(demo.map_or("", |(_, value)| *value))
            })
        };
        Self {
            listen,
            public_url,
            gateway_url,
            internal_webhook_secret: secret("INTERNAL_WEBHOOK_SECRET"),
            stripe_webhook_secret: secret("STRIPE_WEBHOOK_SECRET"),
            adyen_api_key: secret("ADYEN_API_KEY"),
            adyen_hmac_key: secret("ADYEN_HMAC_KEY"),
            max_payments: DEFAULT_MAX_PAYMENTS,
        }
    }
}

/// Every route of the sandbox provider, plus `GET /health` for scripts that
/// wait for it to come up, over a fresh, empty memory.
pub fn router(args: &SandboxArgs) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/payment-links", post(links::create))
        .route("/payment-links/{id}", get(links::show))
        .route("/payment-links/{id}/refunds", post(refunds::create))
        .route("/refunds/{id}", get(refunds::show))
        .route("/v1/checkout/sessions", post(checkout::create))
        .route("/v1/checkout/sessions/{id}", get(checkout::show))
        .route("/v1/refunds", post(stripe_refunds::create))
        .route("/v1/refunds/{id}", get(stripe_refunds::show))
        .route("/v71/payments", post(adyen::create))
        .route("/v71/payments/{psp}/refunds", post(adyen_refunds::create))
        .route("/pay/{id}", get(page::show))
        .route("/pay/{id}/pay", post(page::pay))
        .route("/pay/{id}/decline", post(page::decline))
        .with_state(Sandbox::new(args))
}

/// Serves the sandbox on `listener` until `shutdown` is cancelled, then
/// finishes the requests in flight. Webhook deliveries still retrying are
/// left to the runtime.
pub async fn serve(
    listener: TcpListener,
    args: SandboxArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener
        .local_addr()
        .context("reading the sandbox's address")?;
    // Checked here, not at each notification: a key that cannot sign
    // should stop the sandbox at start, naming the setting.
    if hex::decode(args.adyen_hmac_key.expose()).is_err() {
        anyhow::bail!("PAYGATE_ADYEN_HMAC_KEY (--adyen-hmac-key) is not hex");
    }
    tracing::info!(
        %addr,
        public_url = %args.public_url,
        gateway_url = %args.gateway_url,
        "sandbox provider serving"
    );
    // The same header, body, idle and request deadlines as paygate's own
    // listeners, at their defaults.
    paygate::http::server::serve(listener, router(&args), ServerTimeouts::default(), shutdown)
        .await;
    tracing::info!("sandbox provider stopped");
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::SandboxArgs;
    use paygate::plugins::Secret;

    /// Settings for a sandbox built in a unit test, which sends nothing
    /// anywhere reachable.
    pub(crate) fn args() -> SandboxArgs {
        SandboxArgs {
            listen: "127.0.0.1:0".parse().expect("static address"),
            public_url: "http://sandbox.test".into(),
            gateway_url: "http://127.0.0.1:9".into(),
            internal_webhook_secret: Secret::new("internal"),
            stripe_webhook_secret: Secret::new("whsec_unit"),
            adyen_api_key: Secret::new("adyen_unit_key"),
            adyen_hmac_key: Secret::new("00FF10"),
            max_payments: super::DEFAULT_MAX_PAYMENTS,
        }
    }
}
