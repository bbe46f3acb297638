//! A provider adapter that misbehaves on request, so the host's tests can
//! check that fuel, memory, output and capability limits hold. Never deploy
//! it: every behaviour is picked by the caller through metadata.
//!
//! Metadata `chaos` selects the behaviour: `ok` (default), `loop`, `alloc`,
//! `panic`, `oversize` (`bytes`, default 4 MiB), `http` (`url`), `env`,
//! `file` (`path`, default `/etc/passwd`), `socket`, `log-flood`,
//! `remember` (`secret`: kept in a static and on the heap) and `recall`
//! (`reversed`: the secret backwards; answers what this call finds of it).

mod probes;

wit_bindgen::generate!({
    path: "../../../wit/deps/paygate-plugins-0.1.0",
    world: "provider-adapter",
});

use exports::paygate::plugins::provider::{
    Guest, PaymentRequest, PaymentSession, PaymentState, ProviderError,
};
use paygate::plugins::{http, log};

/// The exported adapter.
struct Chaos;

impl Guest for Chaos {
    fn create_payment(request: PaymentRequest) -> Result<PaymentSession, ProviderError> {
        let meta = |key: &str| {
            request
                .metadata
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let id = request.payment_id;
        match meta("chaos").unwrap_or("ok") {
            "ok" => Ok(session(id, format!("chaos-{id}"))),
            "loop" => probes::spin(),
            "alloc" => probes::exhaust_memory(),
            "panic" => panic!("chaos: deliberate panic for payment {id}"),
            "oversize" => {
                let bytes = meta("bytes")
                    .and_then(|b| b.parse().ok())
                    .unwrap_or(4 << 20);
                Ok(PaymentSession {
                    reference: format!("chaos-{id}"),
                    payment_url: "x".repeat(bytes),
                })
            }
            "http" => {
                let url = meta("url").unwrap_or_default().to_string();
                let request = http::Request {
                    method: http::Method::Get,
                    url,
                    headers: Vec::new(),
                    body: Vec::new(),
                    timeout_ms: None,
                };
                match http::send(&request) {
                    Ok(response) => Ok(session(id, response.status.to_string())),
                    Err(err) => Err(ProviderError::Misconfigured(format!("{err:?}"))),
                }
            }
            "env" => Ok(session(id, probes::environment())),
            "file" => Err(ProviderError::Misconfigured(probes::read_file(
                meta("path").unwrap_or("/etc/passwd"),
            ))),
            "socket" => Err(ProviderError::Misconfigured(probes::connect())),
            "log-flood" => {
                for n in 0..100_000 {
                    log::write(log::Level::Info, &format!("chaos: log line {n}"));
                }
                Ok(session(id, format!("chaos-{id}")))
            }
            "remember" => {
                probes::remember(meta("secret").unwrap_or_default());
                Ok(session(id, "remembered".into()))
            }
            "recall" => Ok(session(
                id,
                probes::recall(meta("reversed").unwrap_or_default()),
            )),
            other => Err(ProviderError::InvalidRequest(format!(
                "unknown chaos mode {other:?}"
            ))),
        }
    }

    fn payment_status(_reference: String) -> Result<PaymentState, ProviderError> {
        Ok(PaymentState::Pending)
    }
}

fn session(id: u64, reference: String) -> PaymentSession {
    PaymentSession {
        reference,
        payment_url: format!("https://chaos.invalid/pay/{id}"),
    }
}

export!(Chaos);
