//! `/metrics` as an operator's Prometheus reads it: on a listener of its
//! own without the token (and nothing else there), with the series that
//! answer "how many payments, through which alias, ending how", "are
//! webhooks being refused", "is a circuit open".

use serde_json::json;

use super::app::{LAX_RATE_LIMIT, TestApp, spawn_app_with};
use super::webhooks::{INTERNAL_SECRET, hex_hmac, internal_webhook};

async fn app_with_metrics_listener() -> TestApp {
    spawn_app_with(LAX_RATE_LIMIT, Vec::new(), |mut c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        c
    })
    .await
}

#[tokio::test]
async fn the_metrics_listener_serves_metrics_without_a_token_and_nothing_else() {
    let app = app_with_metrics_listener().await;
    let metrics_url = app.metrics_url.clone().expect("the listener is on");

    // One payment finished by a signed webhook, one forged webhook, one
    // payment read by id, one path that matches no route.
    let mut body = app.body(1);
    body["alias"] = json!("sandbox");
    let created = app.create(&body).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let id = created.body["payment_id"].as_i64().unwrap();
    let event = format!(r#"{{"payment_id": {id}, "status": "finished"}}"#);
    let signed = hex_hmac(INTERNAL_SECRET, event.as_bytes());
    assert_eq!(
        internal_webhook(&app, &event, Some(signed), "m-1")
            .await
            .status,
        200
    );
    let forged = hex_hmac(b"not the secret", event.as_bytes());
    assert_eq!(
        internal_webhook(&app, &event, Some(forged), "m-2")
            .await
            .status,
        403
    );
    let shown = app
        .get(
            &format!("/api/v1/payments/{id}/show"),
            Some(&app.merchant.read_api_key),
        )
        .await;
    assert_eq!(shown.status, 200);
    let junk = app.get("/no/such/path/12345", None).await;
    assert_eq!(junk.status, 404);

    let scraped = app
        .client
        .get(format!("{metrics_url}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200);
    let content_type = scraped.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = scraped.text().await.unwrap();
    for line in [
        "paygate_payments_created_total{provider=\"sandbox\",status=\"PAYMENT_PENDING\"} 1\n",
        "paygate_payments_finished_total{provider=\"sandbox\",status=\"PAYMENT_FINISHED\"} 1\n",
        "paygate_webhooks_total{provider=\"internal\",verdict=\"valid\"} 1\n",
        "paygate_webhooks_total{provider=\"internal\",verdict=\"invalid_signature\"} 1\n",
        "paygate_http_requests_total{method=\"GET\",route=\"/api/v1/payments/{id}/show\",status=\"200\"} 1\n",
        "paygate_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1\n",
        "paygate_circuit_state{provider=\"sandbox\",state=\"closed\"} 1\n",
        "paygate_circuit_state{provider=\"sandbox\",state=\"open\"} 0\n",
        "paygate_plugin_calls_total{plugin=\"sandbox\",version=",
        "paygate_outbox_rows{state=\"pending\"}",
        "paygate_build_info{version=",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    // The id of a payment, or a made-up path, is never a label.
    assert!(!text.contains(&format!("/api/v1/payments/{id}/")), "{text}");
    assert!(!text.contains("/no/such/path"), "{text}");
    assert!(text.ends_with("# EOF\n"));
    dashboard_names_are_exposed(&text);
    // The show's rate-limit take went to Redis in a script call.
    let count = |name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(&format!("{name} ")));
        let line = line.unwrap_or_else(|| panic!("{name} missing from:\n{text}"));
        line[name.len() + 1..].parse().unwrap()
    };
    let (calls, takes) = (
        count("paygate_counter_take_calls_total"),
        count("paygate_counter_takes_total"),
    );
    assert!(calls >= 1 && takes >= calls, "{calls} calls, {takes} takes");
    // So did the create's acquire of its provider's circuit breaker.
    let (calls, acquires) = (
        count("paygate_circuit_acquire_calls_total"),
        count("paygate_circuit_acquires_total"),
    );
    assert!(
        calls >= 1 && acquires >= calls,
        "{calls} calls, {acquires} acquires"
    );
    // And the show read its payment in a statement.
    let (calls, reads) = (
        count("paygate_payment_read_calls_total"),
        count("paygate_payment_reads_total"),
    );
    assert!(calls >= 1 && reads >= calls, "{calls} calls, {reads} reads");

    // Only /metrics is there: not the admin API, not the merchant API.
    for path in [
        "/admin/v1/plugins",
        "/api/v1/payments",
        "/health",
        "/console",
    ] {
        let r = app
            .client
            .get(format!("{metrics_url}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = app
        .client
        .post(format!("{metrics_url}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);

    // The admin listener's /metrics still wants its token.
    let r = app
        .client
        .get(format!("{}/metrics", app.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_metrics_listener_on_the_public_address_is_refused() {
    let mut config = paygate::Config::for_tests(
        super::app::databases().await,
        std::env::temp_dir(),
        std::env::temp_dir(),
        "unused:".into(),
    );
    config.listen = "0.0.0.0:8080".parse().unwrap();
    config.metrics_listen = Some("127.0.0.1:8080".parse().unwrap());
    let refused = paygate::validate(&config).unwrap_err().to_string();
    assert!(refused.contains("PAYGATE_METRICS_LISTEN"), "{refused}");
    config.metrics_listen = Some("127.0.0.1:9091".parse().unwrap());
    paygate::validate(&config).expect("another port is fine");
}

/// Every metric the Grafana dashboard (docs/grafana) queries is one this
/// host exposes, so the dashboard cannot drift from the names.
fn dashboard_names_are_exposed(exposition: &str) {
    let dashboard =
        std::fs::read_to_string(crate::helpers::root().join("docs/grafana/paygate-dashboard.json"))
            .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() > 20, "{} queries", exprs.len());
    let mut names = std::collections::BTreeSet::new();
    for expr in &exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find('p') {
            rest = &rest[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let word = &rest[..end];
            if word.starts_with("paygate_") || word.starts_with("process_") {
                names.insert(word.to_owned());
            }
            rest = &rest[end.max(1)..];
        }
    }
    assert!(names.len() > 15, "{names:?}");
    for name in names {
        let family = ["_bucket", "_sum", "_count", "_total", "_info"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        assert!(
            exposition.contains(&format!("# TYPE {family} ")),
            "the dashboard queries {name}, which /metrics does not expose"
        );
    }
}

fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                match (key.as_str(), item.as_str()) {
                    ("expr", Some(expr)) => out.push(expr.to_owned()),
                    _ => collect_exprs(item, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_exprs(i, out)),
        _ => {}
    }
}
