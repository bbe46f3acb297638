//! OpenTelemetry (issue 14; API.md, "Running outside the demo"): with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, `paygate serve` exports its spans over
//! OTLP/HTTP to a receiver on loopback. One payment's spans arrive as one
//! trace continuing the caller's `traceparent`, the plugin call inside the
//! request, and the provider the plugin calls receives the same trace.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Value, json};

use super::app::{bind_verified, databases};
use super::startup::{OWN_SECRETS, spawn_with_provider};
use crate::faults::services::{free_port, wait_until};
use crate::helpers::FakeServer;

/// An OTLP/HTTP trace receiver: every span it was sent.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Span>>>);

impl Receiver {
    async fn start(self) -> String {
        let app = axum::Router::new()
            .route("/v1/traces", post(receive))
            .with_state(self);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn spans_of(&self, trace_id: &[u8]) -> Vec<Span> {
        let spans = self.0.lock().unwrap();
        spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

async fn receive(State(receiver): State<Receiver>, body: Bytes) -> &'static str {
    if let Ok(request) = ExportTraceServiceRequest::decode(body) {
        let spans = (request.resource_spans.into_iter())
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        receiver.0.lock().unwrap().extend(spans);
    }
    ""
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span
        .attributes
        .iter()
        .find(|a| a.key == key)?
        .value
        .as_ref()?;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    match value.value.as_ref()? {
        V::StringValue(s) => Some(s.clone()),
        V::IntValue(i) => Some(i.to_string()),
        V::BoolValue(b) => Some(b.to_string()),
        V::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

#[tokio::test]
async fn one_payments_spans_arrive_as_one_trace_with_the_plugin_call_inside_the_request() {
    let receiver = Receiver::default();
    let endpoint = receiver.clone().start().await;
    // The provider the sandbox adapter calls: it answers nothing useful,
    // but it shows what the plugin's request carried.
    let provider = FakeServer::start(
        axum::Router::new()
            .fallback(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down") }),
    )
    .await;
    let dbs =
        paygate::db::Databases::connect_and_migrate(&databases().await, 2, &Default::default())
            .await
            .unwrap();
    let providers = paygate::providers::ProviderStore::new(dbs.providers.clone());
    bind_verified(&providers, "sandbox", "sandbox", "internal-webhook").await;

    let (port, admin_port) = (free_port(), free_port());
    let admin_listen = format!("127.0.0.1:{admin_port}");
    let mut env = OWN_SECRETS.to_vec();
    env.extend([
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        // Counter calls are spans at debug (a policy makes several per
        // request); a provider's HTTP call is one at info.
        ("RUST_LOG", "info,paygate_runtime::imports=debug"),
        ("PAYGATE_ADMIN_TOKEN", "traces-admin-token"),
        ("PAYGATE_ADMIN_LISTEN", admin_listen.as_str()),
    ]);
    let provider_addr = provider.addr.to_string();
    let (mut child, _plugins) =
        spawn_with_provider(&env, &[], &format!("127.0.0.1:{port}"), &provider_addr).await;
    let client = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{port}/livez");
    wait_until("paygate serve serving", Duration::from_secs(60), || {
        let (client, health) = (client.clone(), health.clone());
        async move { client.get(&health).send().await.is_ok() }
    })
    .await;
    let created = client
        .post(format!("http://{admin_listen}/admin/v1/merchants"))
        .bearer_auth("traces-admin-token")
        .json(&json!({"name": "traced", "tokens": 10}));
    let merchant: Value = created.send().await.unwrap().json().await.unwrap();

    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let caller_span = "00f067aa0ba902b7";
    let created = client
        .post(format!("http://127.0.0.1:{port}/api/v1/payments"))
        .header("x-api-key", merchant["api_key"].as_str().unwrap())
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(
            &json!({"order_id": 1, "amount": 1, "price": "10.00", "alias": "sandbox",
                      "subscription_id": merchant["subscription_id"]}),
        )
        .send()
        .await
        .unwrap();
    let status = created.status();

    let trace = hex::decode(&trace_id).unwrap();
    wait_until(
        "the request's spans exported",
        Duration::from_secs(30),
        || {
            let spans = receiver.spans_of(&trace);
            async move { spans.iter().any(|s| s.name == "request") }
        },
    )
    .await;
    child.kill().await.unwrap();
    let spans = receiver.spans_of(&trace);
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span (status {status}) among {spans:#?}"))
    };
    let request = named("request");
    assert_eq!(
        request.parent_span_id,
        hex::decode(caller_span).unwrap(),
        "the request continues the caller's trace"
    );
    assert_eq!(
        attribute(request, "route").as_deref(),
        Some("/api/v1/payments")
    );
    let call = spans
        .iter()
        .find(|s| s.name == "plugin_call" && attribute(s, "plugin").as_deref() == Some("sandbox"))
        .unwrap_or_else(|| panic!("no sandbox plugin call among {spans:#?}"));
    assert_eq!(attribute(call, "plugin").as_deref(), Some("sandbox"));
    assert_eq!(
        attribute(call, "world").as_deref(),
        Some("provider-adapter")
    );
    // The plugin call's ancestors lead to the request span.
    let mut parent = call.parent_span_id.clone();
    let mut chain = Vec::new();
    while let Some(span) = spans.iter().find(|s| s.span_id == parent) {
        chain.push(span.name.clone());
        parent = span.parent_span_id.clone();
    }
    assert_eq!(
        chain.last().map(String::as_str),
        Some("request"),
        "{chain:?}"
    );
    assert!(chain.iter().any(|n| n == "handler"), "{chain:?}");
    assert!(attribute(call, "fuel").is_some(), "{call:#?}");
    assert!(attribute(call, "version").is_some(), "{call:#?}");

    // Host imports are spans inside the plugin call that made them: the
    // adapter's HTTP call to its provider, the policy's counter calls.
    let import_in = |import: &str, world: &str| {
        spans.iter().any(|s| {
            s.name == "host_import"
                && attribute(s, "import").is_some_and(|i| i.starts_with(import))
                && spans.iter().any(|p| {
                    p.span_id == s.parent_span_id
                        && p.name == "plugin_call"
                        && attribute(p, "world").as_deref() == Some(world)
                })
        })
    };
    assert!(import_in("http.send", "provider-adapter"), "{spans:#?}");
    assert!(import_in("counters.", "rate-limit-policy"), "{spans:#?}");

    // The provider's request carried the trace on.
    let sent = provider.received.lock().unwrap().clone();
    let carried = sent
        .iter()
        .filter_map(|r| r.headers.get("traceparent"))
        .collect::<Vec<_>>();
    assert!(
        !carried.is_empty() && carried.iter().all(|t| t.contains(&trace_id)),
        "traceparent to the provider: {carried:?}"
    );
}
