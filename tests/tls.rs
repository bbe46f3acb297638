//! TLS to every service (issue 14; API.md, "Running outside the demo"):
//! private PostgreSQL, Redis and RabbitMQ that speak only TLS, with a
//! certificate of a CA made for the test. The host trusts that CA through
//! `PAYGATE_TLS_CA_FILE` and a payment lives its whole life over TLS; with
//! another CA it refuses to start, and says which service and why.

use std::time::Duration;

use crate::api::app::databases;
use crate::api::notifications::{MerchantEndpoint, app_notifying, settle_payment, wait_for_status};
use crate::faults::services::{PrivatePostgres, PrivateRabbit, PrivateRedis, TestPki};

#[tokio::test]
async fn a_payment_lives_its_whole_life_over_tls_to_every_service() {
    let pki = TestPki::generate().await;
    let (postgres, redis, rabbit) = tokio::join!(
        PrivatePostgres::start_tls(&pki),
        PrivateRedis::start_tls(&pki),
        PrivateRabbit::start_tls(&pki),
    );
    let endpoint = MerchantEndpoint::start(&[]).await;
    let (urls, redis_url, amqp_url) = (postgres.urls(), redis.url(), rabbit.url());
    assert!(urls.payments.ends_with("sslmode=verify-full"), "{urls:?}");
    assert!(redis_url.starts_with("rediss://") && amqp_url.starts_with("amqps://"));
    let ca_file = pki.ca_file();
    let app = app_notifying(&endpoint, move |mut c| {
        c.databases = urls;
        c.redis_url = redis_url;
        c.rabbitmq_url = amqp_url;
        c.tls.ca_file = Some(ca_file);
        c.outbox.namespace = format!("paygate_test_{}_tls.", std::process::id());
        c
    })
    .await;

    // Created (the quota in PostgreSQL, the circuit in Redis), finished by
    // the provider's webhook, published through RabbitMQ, delivered.
    let id = settle_payment(&app, 1, "finished").await;
    wait_for_status(&app, id, "LOG_SUCCESS").await;
    assert_eq!(endpoint.received().len(), 1);

    // Every session the host holds is encrypted: the server says so.
    let plain: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
          WHERE datname LIKE 'paygate_%' AND NOT ssl",
    )
    .fetch_one(&app.dbs.payments)
    .await
    .unwrap();
    assert_eq!(plain, 0, "sessions without TLS");
    let health = app.get("/readyz", None).await;
    assert_eq!(health.status, 200, "{:?}", health.body);
}

#[tokio::test]
async fn a_service_whose_certificate_is_not_trusted_stops_the_start_with_one_line() {
    let (pki, other) = tokio::join!(TestPki::generate(), TestPki::generate());
    let (postgres, redis, rabbit) = tokio::join!(
        PrivatePostgres::start_tls(&pki),
        PrivateRedis::start_tls(&pki),
        PrivateRabbit::start_tls(&pki),
    );
    // Each service in turn over TLS with the wrong CA, the others as usual.
    let plain = databases().await;
    let cases = [
        ("PAYGATE_PAYMENTS_DATABASE_URL", postgres.urls(), None, None),
        ("PAYGATE_REDIS_URL", plain.clone(), Some(redis.url()), None),
        (
            "PAYGATE_RABBITMQ_URL",
            plain.clone(),
            None,
            Some(rabbit.url()),
        ),
    ];
    for (setting, urls, redis_url, amqp_url) in cases {
        let (config, _plugins) = start_config(urls, redis_url, amqp_url, other.ca_file()).await;
        let error =
            match tokio::time::timeout(Duration::from_secs(60), paygate::App::build(&config))
                .await
                .expect("a refusal, not a wait")
            {
                Ok(_) => panic!("started although {setting}'s certificate is not trusted"),
                Err(error) => format!("{error:#}"),
            };
        assert!(!error.contains('\n'), "one line: {error}");
        assert!(error.contains(setting), "names {setting}: {error}");
        assert!(error.contains("certificate"), "says why: {error}");
    }

    // The CA file itself is checked first: one that holds no certificate.
    let not_a_ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_a_ca.path(), "not a certificate\n").unwrap();
    let (config, _plugins) = start_config(plain, None, None, not_a_ca.path().to_owned()).await;
    let error = paygate::App::build(&config).await.err().expect("refused");
    let refused = error
        .downcast_ref::<paygate::RefusedSetting>()
        .expect("a refused setting: status 2");
    assert_eq!(refused.setting, "PAYGATE_TLS_CA_FILE", "{refused}");
}

/// The settings of a test host with these services and CA file, and the
/// defaults for the rest; and its (empty) plugin directory.
async fn start_config(
    urls: paygate::config::DatabaseUrls,
    redis_url: Option<String>,
    amqp_url: Option<String>,
    ca_file: std::path::PathBuf,
) -> (paygate::Config, tempfile::TempDir) {
    let plugins = tempfile::tempdir().unwrap();
    let mut config = paygate::Config::for_tests(
        urls,
        plugins.path().to_owned(),
        crate::api::app::cache_dir(),
        format!("paygate-test-{}:", uuid::Uuid::new_v4()),
    );
    if let Some(url) = redis_url {
        config.redis_url = url;
    }
    if let Some(url) = amqp_url {
        config.rabbitmq_url = url;
    }
    config.tls.ca_file = Some(ca_file);
    (config, plugins)
}

#[tokio::test]
async fn postgres_on_this_machine_is_spoken_to_in_the_clear_unless_the_url_asks_for_tls() {
    use sqlx::Connection;
    // The local server offers TLS: a session that asks for it gets it.
    let urls = databases().await;
    let asked = format!("{}?sslmode=require", urls.payments);
    let mut tls = sqlx::PgConnection::connect(&asked).await.unwrap();
    let encrypted = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let on: bool = sqlx::query_scalar(encrypted)
        .fetch_one(&mut tls)
        .await
        .unwrap();
    assert!(on, "the local PostgreSQL offers TLS (Debian's default)");
    // The host's own sessions, from URLs naming no sslmode, do not pay for
    // unchecked TLS over loopback (libpq's `prefer` would take it).
    let dbs = paygate::db::Databases::connect_and_migrate(&urls, 2, &Default::default())
        .await
        .unwrap();
    for pool in [&dbs.payments, &dbs.merchants, &dbs.providers, &dbs.logs] {
        let on: bool = sqlx::query_scalar(encrypted).fetch_one(pool).await.unwrap();
        assert!(!on, "a host session over loopback used TLS");
    }
}
