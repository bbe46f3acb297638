//! `GET /health`: every backing service and the plugin runtime.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

/// 200 when every check is ok, else 503 naming the failing ones.
#[utoipa::path(
    get, path = "/health",
    responses(
        (status = 200, description = "Every check ok: `{\"status\": \"ok\", \"checks\": {...}}`"),
        (status = 503, description = "A check failed; `checks` names it"),
    )
)]
#[tracing::instrument(name = "handler", skip_all, fields(route = "health"))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let gw = &state.gateway;
    // Concurrently and each within a bound: a server that is down makes a
    // pool wait out its whole acquire timeout, four times over if in turn.
    let postgres = async {
        let pools = [
            ("payments", &gw.dbs.payments),
            ("merchants", &gw.dbs.merchants),
            ("providers", &gw.dbs.providers),
            ("logs", &gw.dbs.logs),
        ];
        let pings = pools.map(|(name, pool)| {
            bounded(async move {
                // A ping reads no table: a checked query would check nothing.
                sqlx::query("SELECT 1")
                    .execute(pool)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{name} database: {e}"))
            })
        });
        futures_util::future::join_all(pings)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, String>>()
            .map(|_| ())
    };
    let redis = bounded(async {
        let mut conn = gw.redis.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let rabbitmq = reachable(&gw.rabbitmq_url);
    let (postgres, redis, rabbitmq) = tokio::join!(postgres, redis, rabbitmq);
    let plugins = if gw.plugins.list().iter().any(|p| p.version.is_some()) {
        Ok(())
    } else {
        Err("no plugins loaded".to_owned())
    };
    let checks = [
        ("postgres", postgres),
        ("redis", redis),
        ("rabbitmq", rabbitmq),
        ("plugins", plugins),
    ];
    let healthy = checks.iter().all(|(_, r)| r.is_ok());
    let body: serde_json::Map<String, Value> = checks
        .iter()
        .map(|(name, r)| {
            if let Err(e) = r {
                tracing::warn!(check = name, error = %e, "health check failed");
            }
            (
                name.to_string(),
                json!(if r.is_ok() { "ok" } else { "failing" }),
            )
        })
        .collect();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"status": if healthy { "ok" } else { "degraded" }, "checks": body})),
    )
}

/// How long one check may take before it counts as failing.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

async fn bounded(check: impl Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {CHECK_TIMEOUT:?}")))
}

/// Whether the broker in an `amqp://` URL accepts a TCP connection within a
/// second. (The outbox, which talks AMQP to it, reports its own state.)
async fn reachable(url: &str) -> Result<(), String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let addr = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5672")
    };
    match tokio::time::timeout(
        std::time::Duration::from_secs(1),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{addr}: {e}")),
        Err(_) => Err(format!("{addr}: no answer within 1 s")),
    }
}
