//! Honest errors: PostgreSQL's own failures, raised for real, reach the
//! client as a 503 to retry only when a retry can help, and as a logged 500
//! that tells nothing otherwise. A status this version does not know is an
//! error, never read as pending.

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use paygate::http::error::ApiError;
use paygate::payments::PaymentStatus;
use sqlx::PgPool;

use super::app::{LAX_RATE_LIMIT, bind, databases, provider_spec, spawn_app_with};

async fn db() -> PgPool {
    PgPool::connect(&databases().await.payments).await.unwrap()
}

/// The error PostgreSQL answers when a statement raises `sqlstate`.
async fn raised(db: &PgPool, sqlstate: &str) -> sqlx::Error {
    let statement = format!(
        "DO $$ BEGIN RAISE EXCEPTION 'secret detail %', 42 USING ERRCODE = '{sqlstate}'; END $$"
    );
    sqlx::query(&statement).execute(db).await.unwrap_err()
}

fn answer(error: sqlx::Error) -> (StatusCode, String, Option<String>, String) {
    let api = ApiError::from(error);
    let body = api.body("req-7").to_string();
    let response = api.into_response();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let code = serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned();
    (response.status(), code, retry_after, body)
}

#[tokio::test]
async fn lost_races_and_a_server_going_away_are_503s_to_retry() {
    let db = db().await;
    // Serialization failure, deadlock, too many connections, cannot connect now.
    for sqlstate in ["40001", "40P01", "53300", "57P03"] {
        let (status, code, retry_after, body) = answer(raised(&db, sqlstate).await);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{sqlstate}");
        assert_eq!(code, "service_unavailable", "{sqlstate}");
        assert_eq!(retry_after.as_deref(), Some("1"), "{sqlstate}");
        assert!(!body.contains("secret detail"), "{body}");
    }
}

#[tokio::test]
async fn a_bug_is_a_500_that_leaks_nothing_and_asks_for_no_retry() {
    let db = db().await;
    let division = sqlx::query("SELECT 1 / 0").execute(&db).await.unwrap_err();
    // Raised by hand: a check violation the code did not expect, and an
    // undefined column (a query that drifted from its table).
    for error in [
        division,
        raised(&db, "23514").await,
        raised(&db, "42703").await,
    ] {
        let (status, code, retry_after, body) = answer(error);
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(code, "internal_error");
        assert_eq!(retry_after, None);
        assert!(!body.contains("secret detail"), "{body}");
        assert!(!body.contains("division"), "{body}");
        assert!(body.contains("req-7"), "{body}");
    }
}

#[tokio::test]
async fn an_unknown_payment_status_is_an_error_not_pending() {
    let db = db().await;
    let known: PaymentStatus = sqlx::query_scalar("SELECT 'PAYMENT_FINISHED'::text")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(known, PaymentStatus::Finished);
    let unknown = sqlx::query_scalar::<_, PaymentStatus>("SELECT 'PAYMENT_REFUNDED'::text")
        .fetch_one(&db)
        .await
        .unwrap_err();
    assert!(
        unknown.to_string().contains("PAYMENT_REFUNDED"),
        "{unknown}"
    );
    let (status, code, _, _) = answer(unknown);
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(code, "internal_error");
}

/// Security review, finding 13: a provider's transport error (the URL of
/// the operator's provider endpoint, the resolver's words) reached the
/// merchant in the 502's message and in the payment's timeline.
#[tokio::test]
async fn a_providers_transport_error_does_not_reach_the_merchant() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let adapter = ("unreachable", "sandbox_adapter", provider_spec(&closed));
    let app = spawn_app_with(LAX_RATE_LIMIT, vec![adapter], |c| c).await;
    bind(&app.providers, "unreachable", "unreachable").await;
    let mut body = app.body(13);
    body["alias"] = "unreachable".into();
    let created = app.create(&body).await;
    assert_eq!(created.status, 502, "{}", created.body);
    let id = created.body["payment_id"].as_i64().unwrap();
    let read = app.merchant.read_api_key.clone();
    let tracked = app
        .get(&format!("/api/v1/payments/{id}/tracking"), Some(&read))
        .await;
    for seen in [created.body.to_string(), tracked.body.to_string()] {
        for leak in [closed.as_str(), "127.0.0.1", "http://", "tcp connect"] {
            assert!(
                !seen.contains(leak),
                "{leak:?} reached the merchant: {seen}"
            );
        }
    }
}
