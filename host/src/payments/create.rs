//! Creating a payment: the order of checks API.md fixes, a payment row
//! before the provider call, and an exact quota.

use serde_json::{Value, json};

use super::domain::{Alias, Currency, IdempotencyKey, Money};
use super::idempotency::Claim;
use super::store::{Inserted, NewPayment};
use crate::gateway::Gateway;
use crate::http::error::ApiError;
use crate::merchants::{Merchant, QuotaError};
use crate::plugins::PluginError;
use crate::plugins::bindings::{PaymentRequest, ProviderError};
use crate::providers::CircuitState;

/// A validated `POST /api/v1/payments` body.
#[derive(Clone, Debug, PartialEq)]
pub struct CreatePayment {
    pub order_id: i64,
    pub amount: Money,
    pub price: Money,
    pub alias: Alias,
    pub subscription_id: i64,
    pub event_id: Option<IdempotencyKey>,
    pub currency: Option<Currency>,
}

/// The answer to a create request: replayed as is for its idempotency key.
#[derive(Clone, Debug)]
pub struct Created {
    pub status: u16,
    pub body: Value,
    pub replayed: bool,
}

/// Runs the whole creation. `key` is the idempotency key (header, else
/// `event_id`), `fingerprint` the hash of the canonical body.
pub async fn create_payment(
    gw: &Gateway,
    merchant: &Merchant,
    request: &CreatePayment,
    key: Option<&IdempotencyKey>,
    fingerprint: &[u8],
    request_id: &str,
) -> Result<Created, ApiError> {
    if let Some(key) = key {
        match gw
            .payments
            .claim_idempotency(merchant.id, key, fingerprint)
            .await?
        {
            Claim::Fresh => {}
            Claim::Replay { status, body } => {
                return Ok(Created {
                    status,
                    body,
                    replayed: true,
                });
            }
            Claim::Conflict => return Err(ApiError::IdempotencyConflict),
            Claim::InProgress => return Err(ApiError::RequestInProgress),
        }
    }
    let outcome = run(gw, merchant, request, key, request_id).await;
    if let Some(key) = key {
        // A payment exists only for 200 and 502: those answers are final for
        // the key. Anything else frees it for a corrected retry.
        let stored = match &outcome {
            Ok(created) => {
                gw.payments
                    .complete_idempotency(merchant.id, key, created.status, &created.body)
                    .await
            }
            Err(_) => gw.payments.release_idempotency(merchant.id, key).await,
        };
        if let Err(e) = stored {
            tracing::error!(error = %e, "could not record the idempotency outcome");
        }
    }
    outcome
}

async fn run(
    gw: &Gateway,
    merchant: &Merchant,
    request: &CreatePayment,
    key: Option<&IdempotencyKey>,
    request_id: &str,
) -> Result<Created, ApiError> {
    let binding = gw
        .providers
        .get(request.alias.as_str())
        .await?
        .filter(|b| b.available)
        .ok_or_else(|| ApiError::UnknownAlias(request.alias.to_string()))?;
    if let Some(existing) = gw
        .payments
        .payment_for_order(merchant.id, request.order_id)
        .await?
    {
        return Err(ApiError::OrderExists {
            payment_id: existing,
        });
    }
    match gw
        .merchants
        .take_token(merchant.id, request.subscription_id)
        .await?
    {
        Ok(()) => {}
        Err(QuotaError::InvalidSubscription) => return Err(ApiError::InvalidSubscription),
        Err(QuotaError::Exhausted) => return Err(ApiError::QuotaExceeded),
    }
    // From here on the token is held: every path that creates no payment
    // gives it back.
    let result = with_token(
        gw,
        merchant,
        request,
        key,
        request_id,
        &binding.provider_plugin,
    )
    .await;
    let keep_token = matches!(&result, Ok(c) if c.status == 200);
    if !keep_token && let Err(e) = gw.merchants.return_token(request.subscription_id).await {
        tracing::error!(error = %e, subscription_id = request.subscription_id, "could not return a quota token");
    }
    result
}

async fn with_token(
    gw: &Gateway,
    merchant: &Merchant,
    request: &CreatePayment,
    key: Option<&IdempotencyKey>,
    request_id: &str,
    plugin_name: &str,
) -> Result<Created, ApiError> {
    let alias = request.alias.as_str();
    let probe = match gw.circuit.acquire(alias).await {
        CircuitState::Open { retry_after } => {
            return Err(ApiError::ProviderUnavailable {
                retry_after_secs: retry_after.as_secs_f64().ceil() as u64,
            });
        }
        state => state == CircuitState::Probe,
    };
    let currency = request
        .currency
        .map_or_else(|| merchant.default_currency.clone(), |c| c.to_string());
    let payment_id = match gw
        .payments
        .insert(&NewPayment {
            merchant_id: merchant.id,
            order_id: request.order_id,
            subscription_id: request.subscription_id,
            alias,
            amount: request.amount.value(),
            price: request.price.value(),
            currency: &currency,
        })
        .await?
    {
        Inserted::Created(id) => id,
        Inserted::OrderExists(id) => return Err(ApiError::OrderExists { payment_id: id }),
    };

    let provider_request = provider_request(payment_id, merchant.id, request, &currency, key);
    let outcome = match gw.plugins.require(plugin_name) {
        Ok(plugin) => plugin.create_payment(request_id, &provider_request).await,
        Err(e) => Err(e),
    };
    let unhealthy = match &outcome {
        Ok(Ok(_)) => false,
        Ok(Err(ProviderError::Unavailable(_))) => true,
        Ok(Err(_)) => false,
        Err(PluginError::NotLoaded(_)) => false,
        Err(_) => true,
    };
    if unhealthy {
        gw.circuit.failure(alias).await;
    } else if outcome.as_ref().is_ok_and(|r| r.is_ok()) || probe {
        gw.circuit.success(alias).await;
    }

    match outcome {
        Ok(Ok(session)) => {
            gw.payments
                .record_provider_outcome(
                    payment_id,
                    Ok((&session.reference, &session.payment_url)),
                    json!({"plugin": plugin_name, "reference": session.reference}),
                )
                .await?;
            let body = json!({"payment_id": payment_id, "status": "PAYMENT_PENDING", "payment_url": session.payment_url});
            Ok(Created {
                status: 200,
                body,
                replayed: false,
            })
        }
        failed => {
            let message = match &failed {
                Ok(Err(e)) => provider_message(e),
                Err(e) => format!("the provider plugin failed ({})", e.kind()),
                Ok(Ok(_)) => unreachable!("handled above"),
            };
            if let Err(e) = &failed {
                tracing::error!(error = %e, payment_id, "provider plugin call failed");
            }
            gw.payments
                .record_provider_outcome(payment_id, Err(&message), json!({"plugin": plugin_name}))
                .await?;
            let error = ApiError::ProviderError(message);
            let mut body = error.body(request_id);
            body["payment_id"] = json!(payment_id);
            body["status"] = json!("PAYMENT_FAILED");
            Ok(Created {
                status: 502,
                body,
                replayed: false,
            })
        }
    }
}

/// The WIT `payment-request` for payment `payment_id` (ids are positive,
/// so they fit the WIT's `u64`). The provider-side idempotency key is the
/// merchant's own key behind its merchant id, so two merchants using the
/// same key never share a provider charge; without one it is derived from
/// the payment, and never starts with a digit as a merchant's does.
pub fn provider_request(
    payment_id: i64,
    merchant_id: i64,
    request: &CreatePayment,
    currency: &str,
    key: Option<&IdempotencyKey>,
) -> PaymentRequest {
    PaymentRequest {
        payment_id: payment_id as u64,
        merchant_id: merchant_id as u64,
        order_id: request.order_id as u64,
        amount: request.amount.to_string(),
        price: request.price.to_string(),
        currency: currency.to_owned(),
        idempotency_key: key.map_or_else(
            || format!("paygate-payment-{payment_id}"),
            |k| format!("{merchant_id}-{}", k.as_str()),
        ),
        return_url: None,
        metadata: Vec::new(),
    }
}

/// The message a merchant sees for a provider's refusal. A misconfigured
/// provider's own text stays in the logs: it may name the operator's setup.
pub fn provider_message(e: &ProviderError) -> String {
    match e {
        ProviderError::Declined(m) => format!("declined: {m}"),
        ProviderError::InvalidRequest(m) => format!("invalid request: {m}"),
        ProviderError::Unavailable(m) => format!("unavailable: {m}"),
        ProviderError::Misconfigured(_) => "the provider integration is misconfigured".into(),
    }
}
