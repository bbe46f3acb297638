//! Steady merchant and provider traffic while a service fails: payments
//! created, then finished by the provider's webhook, each request's answer
//! kept for the test to check.

use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::api::app::{TestApp, reply};
use crate::api::notifications::provider_webhook;

/// What the traffic met.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Payments created (200), in order.
    pub created: Vec<i64>,
    /// Of those, the ones whose provider webhook was applied (200).
    pub finished: Vec<i64>,
    /// Created payments whose webhook was refused: the provider retries them.
    pub unfinished: Vec<i64>,
    /// Every refusal: (what, status, error code).
    pub refused: Vec<(&'static str, u16, String)>,
}

/// Until `stop`, in each of `workers` loops: create a payment (its own
/// idempotency key), finish it as the provider would, wait `pace`.
pub fn generate(
    app: &TestApp,
    workers: i64,
    pace: Duration,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<Outcomes> {
    let loops: Vec<_> = (0..workers)
        .map(|worker| tokio::spawn(one_loop(app, worker * 1_000_000, pace, stop.clone())))
        .collect();
    tokio::spawn(async move {
        let mut all = Outcomes::default();
        for outcomes in futures_util::future::join_all(loops).await {
            let outcomes = outcomes.expect("a traffic loop");
            all.created.extend(outcomes.created);
            all.finished.extend(outcomes.finished);
            all.unfinished.extend(outcomes.unfinished);
            all.refused.extend(outcomes.refused);
        }
        all
    })
}

fn one_loop(
    app: &TestApp,
    first_order: i64,
    pace: Duration,
    stop: CancellationToken,
) -> impl Future<Output = Outcomes> + use<> {
    let (url, client) = (app.url.clone(), app.client.clone());
    let (key, subscription) = (app.merchant.api_key.clone(), app.merchant.subscription_id);
    async move {
        let mut outcomes = Outcomes::default();
        let mut order = first_order;
        while !stop.is_cancelled() {
            order += 1;
            let body = json!({"order_id": order, "amount": 1, "price": "10.00",
                              "alias": "sandbox", "subscription_id": subscription});
            let created = client
                .post(format!("{url}/api/v1/payments"))
                .header("x-api-key", &key)
                .header("idempotency-key", format!("load-{order}"))
                .json(&body)
                .send()
                .await
                .expect("the host answers");
            let created = reply(created).await;
            if created.status != 200 {
                let code = created.code().to_owned();
                outcomes.refused.push(("create", created.status, code));
                tokio::time::sleep(pace).await;
                continue;
            }
            let id = created.body["payment_id"].as_i64().expect("a payment id");
            outcomes.created.push(id);
            match provider_webhook(&url, &client, id, "finished").await {
                200 => outcomes.finished.push(id),
                status => {
                    outcomes.unfinished.push(id);
                    outcomes.refused.push(("webhook", status, String::new()));
                }
            }
            tokio::time::sleep(pace).await;
        }
        outcomes
    }
}
