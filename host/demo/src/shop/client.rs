//! The shop's side of paygate's public API: `POST /api/v1/payments` with the
//! shop's own key, as any merchant would call it.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::order::{CURRENCY, NewOrder};
use paygate::plugins::Secret;
use paygate::{OrderId, PaymentId};

/// paygate waits up to ten seconds for a provider; leave it room to answer.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A merchant client of one paygate.
#[derive(Clone, Debug)]
pub struct PaygateClient {
    http: reqwest::Client,
    payments_url: String,
    api_key: Secret,
    subscription_id: i64,
}

/// The payment paygate opened for an order.
#[derive(Clone, Debug, Deserialize)]
pub struct CreatedPayment {
    pub payment_id: PaymentId,
    pub payment_url: String,
}

/// Why no payment was created: paygate's error code, or one of ours when
/// paygate could not be reached (`gateway_unreachable`) or answered
/// something that is not its API (`invalid_response`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub message: String,
}

impl PaygateClient {
    pub fn new(api_url: &str, api_key: Secret, subscription_id: i64) -> Self {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .expect("a client with a timeout builds");
        Self {
            http,
            payments_url: format!("{}/api/v1/payments", api_url.trim_end_matches('/')),
            api_key,
            subscription_id,
        }
    }

    /// Asks paygate to give back all of the order's payment. The
    /// idempotency key is the order's, so a second click refunds nothing
    /// more; answers paygate's refund id.
    pub async fn refund_payment(
        &self,
        order_id: OrderId,
        payment_id: PaymentId,
    ) -> Result<i64, Refusal> {
        let url = format!("{}/{payment_id}/refunds", self.payments_url);
        let answer = self
            .http
            .post(url)
            .header("x-api-key", self.api_key.expose())
            .header("idempotency-key", format!("order-{order_id}-refund"))
            .json(&json!({"reason": "requested_by_customer"}))
            .send()
            .await;
        let refund = answer_json(answer).await?;
        refund["refund_id"].as_i64().ok_or_else(|| Refusal {
            code: "invalid_response".into(),
            message: "paygate answered without a refund".into(),
        })
    }

    /// Asks paygate for the order's payment, the buyer to come back to
    /// `return_url` after paying or cancelling. The idempotency key is the
    /// order's, so a retried request can never open a second payment.
    pub async fn create_payment(
        &self,
        order_id: OrderId,
        order: &NewOrder,
        return_url: &str,
    ) -> Result<CreatedPayment, Refusal> {
        let body = json!({
            "order_id": order_id,
            "amount": order.quantity(),
            "price": order.price().to_string(),
            "currency": CURRENCY,
            "alias": order.alias(),
            "subscription_id": self.subscription_id,
            "return_url": return_url,
            "cancel_url": return_url,
            "metadata": {"shop_order": order_id.to_string()},
        });
        let answer = self
            .http
            .post(&self.payments_url)
            .header("x-api-key", self.api_key.expose())
            .header("idempotency-key", format!("order-{order_id}"))
            .json(&body)
            .send()
            .await;
        let created = answer_json(answer).await?;
        serde_json::from_value(created).map_err(|_| Refusal {
            code: "invalid_response".into(),
            message: "paygate answered without a payment".into(),
        })
    }
}

/// The JSON of a 2xx answer, or paygate's refusal: its error code, or
/// `gateway_unreachable` / `invalid_response`.
async fn answer_json(answer: reqwest::Result<reqwest::Response>) -> Result<Value, Refusal> {
    let answer = answer.map_err(|error| Refusal {
        code: "gateway_unreachable".into(),
        message: format!("paygate could not be reached: {error}"),
    })?;
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or_default();
    if status.is_success() {
        return Ok(body);
    }
    Err(Refusal {
        code: body["error"]
            .as_str()
            .unwrap_or("invalid_response")
            .to_owned(),
        message: body["message"]
            .as_str()
            .map_or_else(|| format!("paygate answered HTTP {status}"), str::to_owned),
    })
}
