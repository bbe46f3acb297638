//! What `paygate serve` refuses to start with (API.md, "Running outside the
//! demo"): exit status 2 and one line naming the setting, before it serves.

use std::process::Output;
use std::time::Duration;

use crate::api::adyen::adyen_plugins;
use crate::api::app::{
    ExtraPlugin, LAX_RATE_LIMIT, cache_dir, databases, stage_plugins, standard_plugins,
};
use crate::faults::services::{free_port, wait_until};

/// The plugins every test here stages: the standard ones, calling no
/// provider.
fn shipped() -> Vec<ExtraPlugin> {
    standard_plugins("127.0.0.1:9", LAX_RATE_LIMIT)
}

/// Runs `paygate serve` with the shipped plugins and only `env` for
/// secrets; a host that starts serving instead is killed after a while.
async fn serve(env: &[(&str, &str)], args: &[&str]) -> Output {
    serve_staged(env, args, shipped()).await
}

/// [`serve`] with `plugins` staged.
async fn serve_staged(env: &[(&str, &str)], args: &[&str], plugins: Vec<ExtraPlugin>) -> Output {
    let (child, _plugins) = spawn_staged(env, args, "127.0.0.1:0", plugins).await;
    match tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await {
        Ok(output) => output.unwrap(),
        Err(_) => panic!("paygate serve {args:?} with {env:?} started instead of refusing"),
    }
}

/// A `paygate serve` process with the standard plugins, its provider
/// adapters calling the provider at `provider`, and the plugin directory
/// it watches.
pub(crate) async fn spawn_with_provider(
    env: &[(&str, &str)],
    args: &[&str],
    listen: &str,
    provider: &str,
) -> (tokio::process::Child, tempfile::TempDir) {
    let plugins = standard_plugins(provider, LAX_RATE_LIMIT);
    spawn_staged(env, args, listen, plugins).await
}

/// A `paygate serve` process watching a directory with `staged` in it.
async fn spawn_staged(
    env: &[(&str, &str)],
    args: &[&str],
    listen: &str,
    staged: Vec<ExtraPlugin>,
) -> (tokio::process::Child, tempfile::TempDir) {
    let databases = databases().await;
    let plugins = tempfile::tempdir().unwrap();
    stage_plugins(plugins.path(), &staged);
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_paygate"));
    command
        .arg("serve")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PAYGATE_LISTEN", listen)
        .env("PAYGATE_PAYMENTS_DATABASE_URL", &databases.payments)
        .env("PAYGATE_MERCHANTS_DATABASE_URL", &databases.merchants)
        .env("PAYGATE_PROVIDERS_DATABASE_URL", &databases.providers)
        .env("PAYGATE_LOGS_DATABASE_URL", &databases.logs)
        .env("PAYGATE_PLUGIN_DIR", plugins.path())
        .env("PAYGATE_PLUGIN_CACHE_DIR", cache_dir())
        .env(
            "PAYGATE_REDIS_PREFIX",
            format!("paygate-test-{}:", uuid::Uuid::new_v4()),
        )
        .env(
            "PAYGATE_AMQP_NAMESPACE",
            format!("paygate_test_{}_startup.", std::process::id()),
        )
        .env("PAYGATE_AMQP_QUEUE_EXPIRES", "600s")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .kill_on_drop(true);
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    (child, plugins)
}

pub(crate) const OWN_SECRETS: [(&str, &str); 4] = [
    (
        "PAYGATE_SECRETS_KEY",
        "b3VyLW93bi1zZWNyZXRzLWtleS0zMi1ieXRlcyEhISE=",
    ),
    (
        "PAYGATE_INTERNAL_WEBHOOK_SECRET",
        "an-internal-secret-of-our-own",
    ),
    ("PAYGATE_STRIPE_SECRET_KEY", "sk_test_of_our_own"),
    ("PAYGATE_STRIPE_WEBHOOK_SECRET", "whsec_of_our_own"),
];

/// Asserts `paygate serve` exited with status 2 and, as its last line,
/// named `setting`, with no secret value anywhere in its output.
fn assert_refused(output: &Output, setting: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("paygate: refusing to start: ") && last.contains(setting),
        "the last line names {setting}: {stderr}"
    );
    for (_, value) in OWN_SECRETS.iter().chain(&paygate::config::DEMO_SECRETS) {
        assert!(!stderr.contains(value), "a secret in the output: {stderr}");
    }
}

/// Security review, finding 2: without `--demo`, an unset secret fell back
/// to the demo's public value, so a deployment that forgot
/// `STRIPE_WEBHOOK_SECRET` accepted webhooks anyone can sign.
#[tokio::test]
async fn a_secret_a_plugin_needs_must_be_set_outside_the_demo() {
    for unset in OWN_SECRETS.map(|(name, _)| name) {
        let env: Vec<_> = OWN_SECRETS
            .into_iter()
            .filter(|(n, _)| *n != unset)
            .collect();
        let output = serve(&env, &[]).await;
        assert_refused(&output, unset);
    }
}

#[tokio::test]
async fn the_demos_public_secrets_are_refused_outside_the_demo() {
    let demo_key = ("PAYGATE_SECRETS_KEY", paygate::sealing::DEMO_SECRETS_KEY);
    for (name, demo_value) in paygate::config::DEMO_SECRETS.into_iter().chain([demo_key]) {
        // A spec's `env:NAME` is given by the setting `PAYGATE_NAME`.
        let setting = paygate::config::setting_of_named_secret(name);
        let mut env: Vec<_> = (OWN_SECRETS.into_iter())
            .map(|(n, own)| (n, if n == setting { demo_value } else { own }))
            .collect();
        // Refused even where no staged spec names it (the Adyen ones).
        if !env.iter().any(|(n, _)| *n == setting) {
            env.push((setting.as_str(), demo_value));
        }
        let output = serve(&env, &[]).await;
        assert_refused(&output, &setting);
    }
}

#[tokio::test]
async fn an_empty_secret_is_refused() {
    let env: Vec<_> = (OWN_SECRETS.into_iter())
        .map(|(n, own)| {
            (
                n,
                if n == "PAYGATE_STRIPE_SECRET_KEY" {
                    " "
                } else {
                    own
                },
            )
        })
        .collect();
    let output = serve(&env, &[]).await;
    // clap refuses it while parsing: status 2 too, naming the flag.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("stripe-secret-key"), "{stderr}");
}

/// `--demo` is the one way to run on the demo's secrets: it starts with
/// none set.
#[tokio::test]
async fn the_demo_flag_runs_on_the_demos_secrets() {
    serves(&[], &["--demo"]).await;
}

/// Runs `paygate serve` until it answers `/health`, then stops it.
async fn serves(env: &[(&str, &str)], args: &[&str]) {
    serves_staged(env, args, shipped()).await;
}

/// [`serves`] with `plugins` staged.
async fn serves_staged(env: &[(&str, &str)], args: &[&str], plugins: Vec<ExtraPlugin>) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (mut child, _plugins) = spawn_staged(env, args, &listen, plugins).await;
    let health = format!("http://127.0.0.1:{port}/health");
    wait_until(
        &format!("paygate serve {args:?} serving"),
        Duration::from_secs(60),
        || {
            let health = health.clone();
            async move {
                reqwest::get(&health)
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        },
    )
    .await;
    child.kill().await.unwrap();
}

/// Security review, finding 18: the Redis URL, password and all, was in
/// the start-up error.
#[tokio::test]
async fn a_services_password_is_not_in_a_start_up_error() {
    let plugins = tempfile::tempdir().unwrap();
    let mut config = paygate::Config::for_tests(
        databases().await,
        plugins.path().to_owned(),
        cache_dir(),
        format!("paygate-test-{}:", uuid::Uuid::new_v4()),
    );
    config.redis_url = "redis://:hunter2-redis-password@127.0.0.1:1/0".into();
    let error = match paygate::App::build(&config).await {
        Ok(_) => panic!("no Redis listens on port 1"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("PAYGATE_REDIS_URL"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
}

/// Issue 14: every secret may be given as `NAME_FILE` (a mounted secret),
/// and is then checked as if `NAME` had been set: the host starts on
/// secrets and a Redis URL read from files, still refuses the demo's public
/// value read from one, and names the `_FILE` setting it cannot read.
#[tokio::test]
async fn secrets_may_come_from_files_and_are_checked_as_if_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, value) in OWN_SECRETS
        .into_iter()
        .chain([("PAYGATE_REDIS_URL", "redis://127.0.0.1:6379")])
    {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        files.push((format!("{name}_FILE"), path.to_str().unwrap().to_owned()));
    }

    serves(&as_refs(&files), &[]).await;

    let demo_file = dir.path().join("demo-webhook-secret");
    std::fs::write(&demo_file, "whsec_demo\n").unwrap();
    let mut demo = files.clone();
    demo.retain(|(k, _)| k != "PAYGATE_STRIPE_WEBHOOK_SECRET_FILE");
    demo.push((
        "PAYGATE_STRIPE_WEBHOOK_SECRET_FILE".into(),
        demo_file.to_str().unwrap().into(),
    ));
    assert_refused(
        &serve(&as_refs(&demo), &[]).await,
        "PAYGATE_STRIPE_WEBHOOK_SECRET",
    );

    let mut missing = files.clone();
    missing.retain(|(k, _)| k != "PAYGATE_STRIPE_SECRET_KEY_FILE");
    missing.push((
        "PAYGATE_STRIPE_SECRET_KEY_FILE".into(),
        dir.path().join("nowhere").to_str().unwrap().into(),
    ));
    assert_refused(
        &serve(&as_refs(&missing), &[]).await,
        "PAYGATE_STRIPE_SECRET_KEY_FILE",
    );

    let mut both = files.clone();
    both.push((
        "PAYGATE_STRIPE_SECRET_KEY".into(),
        "sk_test_of_our_own".into(),
    ));
    assert_refused(
        &serve(&as_refs(&both), &[]).await,
        "PAYGATE_STRIPE_SECRET_KEY_FILE",
    );
}

/// Security: `--help` printed each setting's environment value, so a
/// `REDIS_URL` or database URL with its password showed up in any help
/// output a deployment logged. No secret setting shows its value now.
#[tokio::test]
async fn help_shows_no_secret_and_no_password() {
    for args in [
        &["serve", "--help"][..],
        &["merchants", "--help"],
        &["migrate", "--help"],
    ] {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_paygate"));
        command.args(args).env_clear();
        for name in paygate::secret_files::SECRET_SETTINGS {
            command.env(
                name,
                format!("scheme://user:sentinel-password-{name}@host/x"),
            );
        }
        let output = command.output().await.unwrap();
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{args:?}: {help}");
        assert!(
            help.contains("[env: PAYGATE_PAYMENTS_DATABASE_URL]"),
            "{args:?}: {help}"
        );
        assert!(
            !help.contains("sentinel-password"),
            "{args:?} shows a secret: {help}"
        );
    }
}

/// The Adyen secrets are the `adyen` plugins' alone, as Stripe's are the
/// `stripe` ones': a host whose specs do not name them starts without them
/// (every test above); one that stages the `adyen` alias refuses to start
/// without each, starts with them given as files, and refuses an HMAC key
/// that is not hex, naming the setting and not the value.
#[tokio::test]
async fn the_adyen_secrets_are_required_where_a_spec_names_them() {
    let staged = || {
        let mut plugins = shipped();
        plugins.extend(adyen_plugins("127.0.0.1:9"));
        plugins
    };
    let adyen = [
        ("PAYGATE_ADYEN_API_KEY", "adyen_key_of_our_own"),
        (
            "PAYGATE_ADYEN_HMAC_KEY",
            "4F55524F574E484D41434B45594F55524F574E484D41434B45594F55524F574E",
        ),
    ];
    for unset in adyen.map(|(name, _)| name) {
        let env: Vec<_> = (OWN_SECRETS.into_iter())
            .chain(adyen.into_iter().filter(|(n, _)| *n != unset))
            .collect();
        let output = serve_staged(&env, &[], staged()).await;
        assert_refused(&output, unset);
    }

    let not_hex = "adyen-hmac-key-that-is-not-hex";
    let env: Vec<_> = (OWN_SECRETS.into_iter())
        .chain([adyen[0], ("PAYGATE_ADYEN_HMAC_KEY", not_hex)])
        .collect();
    let output = serve_staged(&env, &[], staged()).await;
    assert_refused(&output, "PAYGATE_ADYEN_HMAC_KEY");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains(not_hex), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<(String, String)> = (OWN_SECRETS.iter())
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    for (name, value) in adyen {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        env.push((format!("{name}_FILE"), path.to_str().unwrap().to_owned()));
    }
    serves_staged(&as_refs(&env), &[], staged()).await;
}

fn as_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Issue 14: `paygate config check` prints every setting as `serve` would
/// take it and where it came from, a secret only as set and a URL without
/// its password, and refuses what `serve` would refuse, connecting to
/// nothing.
#[tokio::test]
async fn config_check_prints_each_setting_without_a_secret_and_refuses_what_serve_would() {
    // Nothing listens at that Redis: the check must not connect.
    let redis = ("PAYGATE_REDIS_URL", "redis://:hunter2@127.0.0.1:9");
    let check = |extra: Vec<(&'static str, &'static str)>| {
        let env: Vec<_> = OWN_SECRETS
            .into_iter()
            .chain([redis])
            .chain(extra)
            .collect();
        async move { config_check(&env).await }
    };
    let output = check(vec![]).await;
    let (stdout, stderr) = assert_prints(
        &output,
        &[
            "PAYGATE_LISTEN = 127.0.0.1:0  (environment)",
            "PAYGATE_REDIS_URL = redis://:***@127.0.0.1:9  (environment)",
            "PAYGATE_STRIPE_SECRET_KEY = [set]  (environment)",
            "PAYGATE_ADMIN_TOKEN = (unset)",
            "PAYGATE_HTTP_REQUEST_TIMEOUT = 60s  (default)",
            "configuration ok",
        ],
    );
    for (_, value) in OWN_SECRETS {
        assert!(
            !stdout.contains(value) && !stderr.contains(value),
            "{stdout}{stderr}"
        );
    }
    assert!(!stdout.contains("hunter2"), "{stdout}");

    let demo = check(vec![("PAYGATE_STRIPE_WEBHOOK_SECRET", "whsec_demo")]).await;
    assert_refused(&demo, "PAYGATE_STRIPE_WEBHOOK_SECRET");
    let bad_url = check(vec![("PAYGATE_LOGS_DATABASE_URL", "mysql://nope")]).await;
    assert_refused(&bad_url, "PAYGATE_LOGS_DATABASE_URL");
}

/// `paygate config check` with only `env` and `PAYGATE_LISTEN` on port 0
/// (a variable set twice in `env` takes its last value).
async fn config_check(env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_paygate"))
        .args(["config", "check"])
        .env_clear()
        .envs(env.iter().copied())
        .env("PAYGATE_LISTEN", "127.0.0.1:0")
        .output()
        .await
        .unwrap()
}

/// The command succeeded and printed each of `lines` as a whole line;
/// answers its stdout and stderr.
fn assert_prints(output: &Output, lines: &[&str]) -> (String, String) {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    for line in lines {
        assert!(
            stdout.lines().any(|l| l == *line),
            "no `{line}` in:\n{stdout}"
        );
    }
    (stdout, stderr)
}

/// Issue 14: every setting is `PAYGATE_*`; the names settings had before
/// are read for one more release, each named on stderr with its new name,
/// and lose to the new name where both are set. Durations read as
/// humantime does.
#[tokio::test]
async fn old_setting_names_are_still_read_and_durations_are_humantime() {
    let mut env = OWN_SECRETS.to_vec();
    env.extend([
        ("REDIS_URL", "redis://127.0.0.1:6379/7"),
        ("NOTIFIER_TIMEOUT", "1m 30s"),
        ("RABBITMQ_URL", "amqp://old@127.0.0.1:5672/%2f"),
        ("PAYGATE_RABBITMQ_URL", "amqp://new@127.0.0.1:5672/%2f"),
        ("PAYGATE_SHUTDOWN_TIMEOUT", "1m 30s"),
    ]);
    let output = config_check(&env).await;
    let (stdout, stderr) = assert_prints(
        &output,
        &[
            "PAYGATE_REDIS_URL = redis://127.0.0.1:6379/7  (environment)",
            "PAYGATE_NOTIFIER_TIMEOUT = 1m 30s  (environment)",
            "PAYGATE_RABBITMQ_URL = amqp://new@127.0.0.1:5672/%2f  (environment)",
            "PAYGATE_SHUTDOWN_TIMEOUT = 1m 30s  (environment)",
        ],
    );
    for notice in [
        "paygate: REDIS_URL is read as PAYGATE_REDIS_URL",
        "paygate: NOTIFIER_TIMEOUT is read as PAYGATE_NOTIFIER_TIMEOUT",
        "paygate: RABBITMQ_URL is ignored: PAYGATE_RABBITMQ_URL is set",
    ] {
        assert!(stderr.contains(notice), "no `{notice}` in:\n{stderr}");
    }
    assert!(!stdout.contains("amqp://old"), "{stdout}");

    env.push(("PAYGATE_SHUTDOWN_TIMEOUT", "5 fortnights"));
    let refused = config_check(&env).await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--shutdown-timeout"), "{stderr}");
}
