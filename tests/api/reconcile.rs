//! Reconciliation (API.md, "Reconciliation and expiry"): a payment whose
//! webhook was lost is settled by asking its provider, and notified as a
//! webhook would have it; replicas ask about each payment once per round.
//! The sandbox loses webhooks on request (`?webhook=skip`). Each test has
//! databases of its own: a round asks about every pending payment in them.

use std::time::{Duration, Instant};

use paygate::payments::reconcile::reconcile;
use serde_json::{Value, json};

use super::app::{TestApp, clicker, isolated_app, provider_spec};
use super::notifications::{MerchantEndpoint, app_notifying_alone};

/// Creates a payment through `alias` and clicks `button` on the sandbox's
/// page with its webhook lost.
async fn settled_without_webhook(app: &TestApp, order: i64, alias: &str, button: &str) -> i64 {
    let mut body = app.body(order);
    body["alias"] = json!(alias);
    let created = app.create(&body).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let url = created.body["payment_url"].as_str().unwrap();
    let clicked = clicker()
        .post(format!("{url}/{button}?webhook=skip"))
        .send()
        .await
        .unwrap();
    assert!(clicked.status().is_redirection() || clicked.status().is_success());
    created.body["payment_id"].as_i64().unwrap()
}

async fn shown(app: &TestApp, id: i64) -> Value {
    let read = app.merchant.read_api_key.clone();
    app.get(&format!("/api/v1/payments/{id}/show"), Some(&read))
        .await
        .body
}

#[tokio::test]
async fn a_lost_webhook_is_made_good_by_asking_the_provider() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = app_notifying_alone(&endpoint, "reconcile_lost", |mut c| {
        c.reconcile_after = Duration::from_secs(1);
        c
    })
    .await;
    let paid = settled_without_webhook(&app, 1, "sandbox", "pay").await;
    let declined = settled_without_webhook(&app, 2, "sandbox", "decline").await;
    let stripe = settled_without_webhook(&app, 3, "stripe", "pay").await;
    assert_eq!(shown(&app, paid).await["status"], "PAYMENT_PENDING");

    let want = [
        (paid, "PAYMENT_FINISHED"),
        (declined, "PAYMENT_FAILED"),
        (stripe, "PAYMENT_FINISHED"),
    ];
    let started = Instant::now();
    for (id, status) in want {
        while shown(&app, id).await["status"] != status {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "payment {id} never became {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let kinds = app.timeline_types(id).await;
        let asked = kinds
            .iter()
            .filter(|k| *k == "EVENT_PROVIDER_STATUS")
            .count();
        assert_eq!(asked, 1, "{kinds:?}");
        assert!(
            !kinds.iter().any(|k| k == "EVENT_PROVIDER_WEBHOOK"),
            "{kinds:?}"
        );
    }

    // Notified as a webhook would have it, once each.
    let started = Instant::now();
    loop {
        let mut got: Vec<(i64, String)> = endpoint
            .received()
            .iter()
            .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
            .map(|b| {
                (
                    b["payment_id"].as_i64().unwrap(),
                    b["event_type"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        got.sort();
        let expected = vec![
            (paid, "payment.finished".to_owned()),
            (declined, "payment.failed".to_owned()),
            (stripe, "payment.finished".to_owned()),
        ];
        if got == expected {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two hosts on the same databases run a round at the same moment: every
/// payment is asked about once, by one of them, and settled once.
#[tokio::test]
async fn two_replicas_ask_about_each_payment_once_per_round() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    // The default delay (10 minutes): only the rounds this test runs ask.
    let tag = "reconcile_replicas";
    let first = app_notifying_alone(&endpoint, tag, |c| c).await;
    let second = replica(&first, tag).await;

    let mut ids = Vec::new();
    for order in 1..=30 {
        ids.push(settled_without_webhook(&first, order, "sandbox", "pay").await);
    }
    // Due once they are `after` old; a claimed payment's next question is
    // `after` later, far longer than this round's questions take.
    let after = Duration::from_secs(2);
    tokio::time::sleep(after + Duration::from_millis(200)).await;
    let (a, b) = tokio::join!(
        reconcile(&first.payments, after),
        reconcile(&second.payments, after),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.settled + b.settled, ids.len(), "{a:?} {b:?}");
    assert_eq!(a.asked + b.asked, ids.len(), "{a:?} {b:?}");

    let asked: Vec<i32> = sqlx::query_scalar(
        "SELECT reconcile_attempts FROM payments WHERE id = ANY($1) ORDER BY id",
    )
    .bind(&ids)
    .fetch_all(&first.dbs.payments)
    .await
    .unwrap();
    assert_eq!(asked, vec![1; ids.len()]);
    for id in ids {
        assert_eq!(shown(&first, id).await["status"], "PAYMENT_FINISHED");
        let outbox = super::webhooks::outbox_of(&first, id).await;
        assert_eq!(outbox.len(), 1, "{outbox:?}");
    }

    // Settled payments are not asked about again.
    let again = reconcile(&first.payments, Duration::ZERO).await.unwrap();
    assert_eq!(again.asked, 0, "{again:?}");
}

/// A payment still pending `PAYGATE_PAYMENT_EXPIRY` after creation
/// expires: `PAYMENT_EXPIRED` on its timeline, `payment.expired` notified,
/// its quota token given back. The provider's webhook afterwards changes
/// nothing ("already processed") and is counted for an operator to look.
#[tokio::test]
async fn a_payment_pending_past_its_expiry_expires_and_gives_its_token_back() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = app_notifying_alone(&endpoint, "expiry", |mut c| {
        c.payment_expiry = Duration::from_secs(1);
        c
    })
    .await;
    let mut body = app.body(1);
    body["metadata"] = json!({"cart": "c-1"});
    let created = app.create(&body).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let id = created.body["payment_id"].as_i64().unwrap();
    assert_eq!(app.tokens_used().await, 1);
    // Fixed at creation: a second after it.
    let payment = shown(&app, id).await;
    let at = |field: &str| {
        chrono::DateTime::parse_from_rfc3339(payment[field].as_str().unwrap()).unwrap()
    };
    let expires_in = at("expires_at") - at("created_at");
    assert!(
        (1..=2).contains(&expires_in.num_seconds()),
        "{expires_in}: {payment}"
    );

    let started = Instant::now();
    while shown(&app, id).await["status"] != "PAYMENT_EXPIRED" {
        assert!(started.elapsed() < Duration::from_secs(20), "never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.tokens_used().await, 0);
    let kinds = app.timeline_types(id).await;
    assert!(
        kinds.contains(&"EVENT_PAYMENT_EXPIRED".to_owned()),
        "{kinds:?}"
    );
    let started = Instant::now();
    let notified = loop {
        let got: Vec<Value> = endpoint
            .received()
            .iter()
            .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
            .collect();
        if let [one] = got.as_slice() {
            break one.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(notified["event_type"], "payment.expired");
    assert_eq!(notified["status"], "PAYMENT_EXPIRED");
    assert_eq!(notified["payment_id"], id);
    assert_eq!(notified["metadata"], json!({"cart": "c-1"}));

    // The buyer pays after all: the signed webhook finds it expired.
    let before = app
        .metric("paygate_provider_events_after_expiry_total")
        .await
        .unwrap();
    let url = created.body["payment_url"].as_str().unwrap();
    clicker().post(format!("{url}/pay")).send().await.unwrap();
    assert_eq!(shown(&app, id).await["status"], "PAYMENT_EXPIRED");
    let after = app
        .metric("paygate_provider_events_after_expiry_total")
        .await
        .unwrap();
    assert_eq!(after, before + 1);
    let listed = app
        .get(
            "/api/v1/payments?status=PAYMENT_EXPIRED",
            Some(&app.merchant.read_api_key.clone()),
        )
        .await;
    assert_eq!(listed.body["total"], 1, "{:?}", listed.body);
}

/// Payments that come due together expire in one batch, which gives their
/// tokens back in one statement: forty over the subscription's sixteen
/// quota slots, so several share a slot, and every token comes back
/// exactly once.
#[tokio::test]
async fn payments_expiring_together_give_back_every_token_once() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = app_notifying_alone(&endpoint, "expiry_batch", |mut c| {
        // None expires on its own; the rounds come every quarter second.
        c.payment_expiry = Duration::from_secs(3600);
        c.reconcile_after = Duration::from_secs(1);
        c
    })
    .await;
    let count = 40;
    for order in 1..=count {
        let created = app.create(&app.body(order)).await;
        assert_eq!(created.status, 200, "{:?}", created.body);
    }
    assert_eq!(app.tokens_used().await, count);
    // All due at once: the next round's batch (up to 200) takes them all.
    sqlx::query("UPDATE payments SET expires_at = now() WHERE status = 'PAYMENT_PENDING'")
        .execute(&app.dbs.payments)
        .await
        .unwrap();
    let expired = || async {
        app.get(
            "/api/v1/payments?status=PAYMENT_EXPIRED",
            Some(&app.merchant.read_api_key.clone()),
        )
        .await
        .body["total"]
            .as_i64()
            .unwrap()
    };
    let started = Instant::now();
    while expired().await < count {
        assert!(started.elapsed() < Duration::from_secs(20), "never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.tokens_used().await, 0);
    let (lowest, charges): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT min(used) FROM quota_slots WHERE subscription_id = $1),
                (SELECT count(*) FROM quota_charges WHERE subscription_id = $1)",
    )
    .bind(app.merchant.subscription_id)
    .fetch_one(&app.dbs.merchants)
    .await
    .unwrap();
    assert_eq!((lowest, charges), (0, 0), "no slot given back twice");
}

/// Refunds left pending are asked about too: one whose confirmation was
/// lost (sandbox test price ending in 43: no webhook) through
/// `refund-status`, one whose request died before the provider's answer
/// was stored (no reference) through `refund` again under its own
/// provider-side key, which refunds nothing twice. Both succeed, add to the
/// payment's refunded total and are notified.
#[tokio::test]
async fn refunds_left_pending_are_asked_about_and_settled() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = app_notifying_alone(&endpoint, "reconcile_refunds", |c| c).await;
    let id = settled_with_webhook(&app, 1).await;
    let mut refunds = Vec::new();
    for _ in 0..2 {
        refunds.push(silent_refund(&app, id).await);
    }
    // The second's answer was never stored: the host died first.
    let reference: String =
        sqlx::query_scalar("SELECT provider_reference FROM refunds WHERE id = $1")
            .bind(refunds[1])
            .fetch_one(&app.dbs.payments)
            .await
            .unwrap();
    sqlx::query("UPDATE refunds SET provider_reference = NULL WHERE id = $1")
        .bind(refunds[1])
        .execute(&app.dbs.payments)
        .await
        .unwrap();
    // Both succeed at the provider a second later, and nothing says so.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(shown(&app, id).await["refunded"], "0");

    let round = reconcile(&app.payments, Duration::ZERO).await.unwrap();
    assert_eq!(
        (round.refunds_asked, round.refunds_settled),
        (2, 2),
        "{round:?}"
    );
    let read = app.merchant.read_api_key.clone();
    for refund_id in &refunds {
        let r = app
            .get(&format!("/api/v1/refunds/{refund_id}"), Some(&read))
            .await;
        assert_eq!(r.body["status"], "REFUND_SUCCEEDED", "{:?}", r.body);
    }
    let restored: Option<String> =
        sqlx::query_scalar("SELECT provider_reference FROM refunds WHERE id = $1")
            .bind(refunds[1])
            .fetch_one(&app.dbs.payments)
            .await
            .unwrap();
    assert_eq!(restored.as_deref(), Some(reference.as_str()));
    assert_eq!(shown(&app, id).await["refunded"], "0.86");
    let outbox = super::webhooks::outbox_of(&app, id).await;
    let succeeded = outbox
        .iter()
        .filter(|(t, _)| t == "refund.succeeded")
        .count();
    assert_eq!(succeeded, 2, "{outbox:?}");
    let again = reconcile(&app.payments, Duration::ZERO).await.unwrap();
    assert_eq!(again.refunds_asked, 0, "{again:?}");
}

/// Refunds 0.43 of payment `id`: pending, and (a test price ending in 43)
/// settled by the sandbox a second later without a word. Its id.
async fn silent_refund(app: &TestApp, id: i64) -> i64 {
    let r = super::refunds::refund(app, id, json!({"price": "0.43"})).await;
    assert_eq!(r.body["status"], "REFUND_PENDING", "{:?}", r.body);
    r.body["refund_id"].as_i64().unwrap()
}

/// A second host on `first`'s isolated databases `tag`, its provider
/// adapters calling `first`'s sandbox, where the payments are.
async fn replica(first: &TestApp, tag: &str) -> TestApp {
    let sandbox = provider_spec(first.sandbox_url.trim_start_matches("http://"));
    let adapters = vec![
        ("sandbox", "sandbox_adapter", sandbox.clone()),
        ("stripe", "stripe_adapter", sandbox),
    ];
    isolated_app(tag, adapters).await
}

/// A sandbox payment paid with its webhook delivered.
async fn settled_with_webhook(app: &TestApp, order: i64) -> i64 {
    let created = app.create(&app.body(order)).await;
    let url = created.body["payment_url"].as_str().unwrap();
    clicker().post(format!("{url}/pay")).send().await.unwrap();
    let id = created.body["payment_id"].as_i64().unwrap();
    let started = Instant::now();
    while shown(app, id).await["status"] != "PAYMENT_FINISHED" {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never finished"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    id
}

/// A provider that cannot be reached only delays reconciliation: the
/// payment stays pending (nothing is failed for it), its next question is
/// put off, and a later round, with the provider back, settles it.
#[tokio::test]
async fn a_provider_that_is_down_delays_reconciliation_without_failing_payments() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let tag = "reconcile_down";
    let up = app_notifying_alone(&endpoint, tag, |c| c).await;
    let id = settled_without_webhook(&up, 1, "sandbox", "pay").await;
    // A host of the same databases whose `sandbox` adapter reaches nothing
    // (a closed port), as when the provider is down.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap().to_string();
    drop(closed);
    let unreachable = ("sandbox", "sandbox_adapter", provider_spec(&dead));
    let down = isolated_app(tag, vec![unreachable]).await;

    let after = Duration::from_secs(1);
    tokio::time::sleep(after).await;
    let round = reconcile(&down.payments, after).await.unwrap();
    assert_eq!((round.asked, round.unanswered), (0, 1), "{round:?}");
    assert_eq!(shown(&up, id).await["status"], "PAYMENT_PENDING");
    // Put off by the delay: asked again only once it has passed.
    let soon = reconcile(&up.payments, after).await.unwrap();
    assert_eq!(soon.asked + soon.unanswered, 0, "{soon:?}");
    tokio::time::sleep(after * 2).await;
    let later = reconcile(&up.payments, after).await.unwrap();
    assert_eq!(later.settled, 1, "{later:?}");
    assert_eq!(shown(&up, id).await["status"], "PAYMENT_FINISHED");
}

/// A question that fails on the host's side (here: the merchant's own
/// `stripe` account holds a secret that does not open, as after a sealing
/// key was lost) leaves that payment or refund unanswered, to be asked
/// again later; the round still applies every other answer it got and
/// goes on to the refunds. One broken account must not hold back every
/// other merchant's reconciliation.
#[tokio::test]
async fn a_question_that_fails_on_the_host_leaves_the_rest_of_the_round_alone() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let tag = "reconcile_broken";
    let app = app_notifying_alone(&endpoint, tag, |c| c).await;
    // A refund left pending on each alias (price ending in 43: the
    // provider settles it a second later and says nothing).
    let mut refunds = Vec::new();
    for (order, alias) in [(1, "sandbox"), (2, "stripe")] {
        let id = super::refunds::paid_through(&app, order, alias).await;
        refunds.push(silent_refund(&app, id).await);
    }
    // Payments whose webhooks were lost, on each alias.
    let paid = [
        settled_without_webhook(&app, 3, "sandbox", "pay").await,
        settled_without_webhook(&app, 4, "sandbox", "pay").await,
    ];
    let on_stripe = settled_without_webhook(&app, 5, "stripe", "pay").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The merchant's `stripe` account, its secret not sealed.
    let merchant = app.merchant.merchant_id.get();
    sqlx::query(
        "INSERT INTO merchant_provider_accounts (merchant_id, alias, secrets)
         VALUES ($1, 'stripe', '{\"secret-key\": \"sk_plain\"}')",
    )
    .bind(merchant)
    .execute(&app.dbs.merchants)
    .await
    .unwrap();
    // Asked by a replica that has not read the account before.
    let replica = replica(&app, tag).await;
    let round = reconcile(&replica.payments, Duration::ZERO)
        .await
        .expect("the round goes on past a failed question");
    let counts = (round.asked, round.settled, round.unanswered);
    assert_eq!(counts, (2, 2, 1), "{round:?}");
    let refunded = (round.refunds_asked, round.refunds_settled);
    assert_eq!(refunded, (1, 1), "{round:?}");
    for id in paid {
        assert_eq!(shown(&app, id).await["status"], "PAYMENT_FINISHED");
    }
    assert_eq!(shown(&app, on_stripe).await["status"], "PAYMENT_PENDING");
    let read = app.merchant.read_api_key.clone();
    let refund_status = |id: i64| {
        let (app, read) = (&app, &read);
        async move {
            let r = app.get(&format!("/api/v1/refunds/{id}"), Some(read)).await;
            r.body["status"].as_str().unwrap_or_default().to_owned()
        }
    };
    assert_eq!(refund_status(refunds[0]).await, "REFUND_SUCCEEDED");
    assert_eq!(refund_status(refunds[1]).await, "REFUND_PENDING");

    // The account mended, the next round settles what was left.
    sqlx::query("DELETE FROM merchant_provider_accounts WHERE merchant_id = $1")
        .bind(merchant)
        .execute(&app.dbs.merchants)
        .await
        .unwrap();
    let round = reconcile(&replica.payments, Duration::ZERO).await.unwrap();
    let counts = (round.settled, round.unanswered, round.refunds_settled);
    assert_eq!(counts, (1, 0, 1), "{round:?}");
    assert_eq!(shown(&app, on_stripe).await["status"], "PAYMENT_FINISHED");
    assert_eq!(refund_status(refunds[1]).await, "REFUND_SUCCEEDED");
}

/// While the host is serving a merchant's request, a round asks at most
/// `PAYGATE_RECONCILE_BUSY_RATE` questions a second; with none in flight
/// it asks as fast as it can.
#[tokio::test]
async fn a_round_gives_way_to_requests_in_flight() {
    let n = 5;
    let (_endpoint, app, _) = paced_app("reconcile_paced", 2, n).await;
    let held = request_in_flight(&app).await;

    let started = Instant::now();
    let round = reconcile(&app.payments, Duration::ZERO).await.unwrap();
    assert_eq!(round.settled, n as usize, "{round:?}");
    // Five questions at two a second: the last one 2 s after the first.
    let paced = started.elapsed();
    assert!(paced >= Duration::from_secs(2), "{paced:?}");

    // The request ends; the next round is not held back (its length is
    // not asserted: this machine is shared).
    drop(held);
    for order in n + 1..=2 * n {
        settled_without_webhook(&app, order, "sandbox", "pay").await;
    }
    let round = reconcile(&app.payments, Duration::ZERO).await.unwrap();
    assert_eq!(round.settled, n as usize, "{round:?}");
}

/// A round applies its providers' final answers in batches of
/// `APPLY_BATCH` (32), one transaction each: with more payments than one
/// batch, paid and declined, each moves once, with one
/// `EVENT_PROVIDER_STATUS` entry naming its question and one notification
/// that describes it.
#[tokio::test]
async fn a_round_applies_its_answers_in_batches_each_as_a_webhook_would() {
    let endpoint = MerchantEndpoint::start(&[]).await;
    // The default delay (10 minutes): only the round this test runs asks.
    let app = app_notifying_alone(&endpoint, "reconcile_batches", |c| c).await;
    let mut want = Vec::new();
    for order in 1..=40 {
        let (button, status, event) = match order % 3 {
            0 => ("decline", "PAYMENT_FAILED", "payment.failed"),
            _ => ("pay", "PAYMENT_FINISHED", "payment.finished"),
        };
        let id = settled_without_webhook(&app, order, "sandbox", button).await;
        want.push((id, order, status, event));
    }
    let round = reconcile(&app.payments, Duration::ZERO).await.unwrap();
    let counts = (round.asked, round.settled, round.pending, round.unanswered);
    assert_eq!(counts, (40, 40, 0, 0), "{round:?}");

    for (id, order, status, event) in want {
        let payment = shown(&app, id).await;
        assert_eq!(payment["status"], status);
        let logged: Vec<(String, String, Value)> = sqlx::query_as(
            "SELECT status, message, payload FROM payment_logs
             WHERE payment_id = $1 AND event_type = 'EVENT_PROVIDER_STATUS'",
        )
        .bind(id)
        .fetch_all(&app.dbs.payments)
        .await
        .unwrap();
        let question = json!({
            "provider_event_id": format!("reconcile-{id}-1"),
            "provider_type": "payment-status",
        });
        let entry = (status.to_owned(), "payment-status".to_owned(), question);
        assert_eq!(logged, vec![entry]);

        let queued: Vec<(uuid::Uuid, String, Value)> = sqlx::query_as(
            "SELECT event_id, event_type, payload FROM outbox WHERE payment_id = $1",
        )
        .bind(id)
        .fetch_all(&app.dbs.payments)
        .await
        .unwrap();
        let [(event_id, kind, body)] = &queued[..] else {
            panic!("payment {id}: {queued:?}");
        };
        assert_eq!(kind, event);
        assert_eq!(body["event_id"], event_id.to_string());
        assert_eq!(body["event_type"], event);
        assert_eq!(body["payment_id"], id);
        assert_eq!(body["order_id"], order);
        assert_eq!(body["merchant_id"], app.merchant.merchant_id.get());
        assert_eq!(body["status"], status);
        assert_eq!(body["currency"], payment["currency"]);
    }
}

/// A final answer is not held for a batch that fills slowly: at one
/// question a second, the first answer is applied (settled, notified)
/// while the round still has payments to ask about, not with the last.
#[tokio::test]
async fn a_slow_round_applies_its_first_answers_before_its_last_question() {
    let n = 4;
    let (_endpoint, app, _) = paced_app("reconcile_slow_batch", 1, n).await;
    let _held = request_in_flight(&app).await;

    let payments = app.payments.clone();
    let round = tokio::spawn(async move { reconcile(&payments, Duration::ZERO).await });
    // Both counts in one statement, one snapshot: a batch commits its
    // payments and their outbox rows together.
    let counts = |db: sqlx::PgPool| async move {
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT (SELECT count(*) FROM payments WHERE status = 'PAYMENT_PENDING'),
                    (SELECT count(*) FROM outbox)",
        )
        .fetch_one(&db)
        .await
        .unwrap()
    };
    wait_for(&app, "a first payment settled", |db| async move {
        counts(db).await.0 < n
    })
    .await;
    // Asked one a second, the last is asked three seconds after the first.
    let (left, outboxed) = counts(app.dbs.payments.clone()).await;
    assert!(left > 0, "all {n} settled at once");
    assert_eq!(
        outboxed,
        n - left,
        "each settled payment is notified with it"
    );

    let round = round.await.unwrap().unwrap();
    assert_eq!(round.settled, n as usize, "{round:?}");
}

/// A payment whose webhook is applied while a round's batch waits for its
/// row is left as the webhook made it: the round neither moves it again
/// nor notifies it, and counts it as settled by someone else.
#[tokio::test]
async fn a_batch_leaves_a_payment_a_webhook_settled_while_it_waited() {
    // One question a second while a request is in flight: the answers of
    // three payments are applied a second or more after the round claims
    // them.
    let (_endpoint, app, ids) = paced_app("reconcile_raced", 1, 3).await;
    let (raced, others) = (ids[0], &ids[1..]);
    let _held = request_in_flight(&app).await;

    let payments = app.payments.clone();
    let round = tokio::spawn(async move { reconcile(&payments, Duration::ZERO).await });
    // Claimed by the round (asked about once) and not yet answered, the
    // webhook's transaction takes the row...
    wait_for(&app, "the round's claim", |db| async move {
        sqlx::query_scalar::<_, i32>("SELECT reconcile_attempts FROM payments WHERE id = $1")
            .bind(raced)
            .fetch_one(&db)
            .await
            .unwrap()
            == 1
    })
    .await;
    let mut webhook = app.dbs.payments.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM payments WHERE id = $1 FOR UPDATE")
        .bind(raced)
        .execute(&mut *webhook)
        .await
        .unwrap();
    // ...the round's batch comes to wait for it...
    wait_for(&app, "the batch to wait for the row", |db| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'
               AND query LIKE 'UPDATE payments p SET status = a.status%'",
        )
        .fetch_one(&db)
        .await
        .unwrap()
            > 0
    })
    .await;
    // ...and the webhook settles it first.
    sqlx::query("UPDATE payments SET status = 'PAYMENT_FAILED' WHERE id = $1")
        .bind(raced)
        .execute(&mut *webhook)
        .await
        .unwrap();
    webhook.commit().await.unwrap();

    let round = round.await.unwrap().unwrap();
    assert_eq!((round.settled, round.pending), (2, 1), "{round:?}");
    assert_eq!(shown(&app, raced).await["status"], "PAYMENT_FAILED");
    let kinds = app.timeline_types(raced).await;
    assert!(
        !kinds.iter().any(|k| k == "EVENT_PROVIDER_STATUS"),
        "{kinds:?}"
    );
    assert!(super::webhooks::outbox_of(&app, raced).await.is_empty());
    for &id in others {
        assert_eq!(shown(&app, id).await["status"], "PAYMENT_FINISHED");
        assert_eq!(super::webhooks::outbox_of(&app, id).await.len(), 1);
    }
}

/// An app of its own whose rounds ask `rate` questions a second while a
/// request is in flight, notifying a merchant endpoint kept with it, and
/// the ids of `n` payments (orders 1 to `n`) paid with their webhooks lost.
async fn paced_app(tag: &str, rate: u32, n: i64) -> (MerchantEndpoint, TestApp, Vec<i64>) {
    let endpoint = MerchantEndpoint::start(&[]).await;
    let app = app_notifying_alone(&endpoint, tag, |mut c| {
        c.reconcile_busy_rate = rate;
        c
    })
    .await;
    let mut ids = Vec::new();
    for order in 1..=n {
        ids.push(settled_without_webhook(&app, order, "sandbox", "pay").await);
    }
    (endpoint, app, ids)
}

/// Polls `done` on the payments database until it holds (at most 20 s).
async fn wait_for<F, Fut>(app: &TestApp, what: &str, done: F)
where
    F: Fn(sqlx::PgPool) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !done(app.dbs.payments.clone()).await {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "waited in vain for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A request in flight until the stream is dropped: its head sent, its
/// body still to come.
async fn request_in_flight(app: &TestApp) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut held = tokio::net::TcpStream::connect(app.url.trim_start_matches("http://"))
        .await
        .unwrap();
    held.write_all(
        b"POST /api/v1/payments/webhook HTTP/1.1\r\nhost: paygate\r\n\
          content-type: application/json\r\ncontent-length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    held
}
