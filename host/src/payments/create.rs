//! Creating a payment: the order of checks API.md fixes, a payment row
//! before the provider call, and an exact quota.

use serde_json::{Value, json};

use super::domain::{Alias, Currency, IdempotencyKey, Money};
use super::idempotency::Claim;
use super::store::{Inserted, NewPayment};
use crate::gateway::Gateway;
use crate::http::error::ApiError;
use crate::merchants::{Merchant, QuotaError, Take};
use crate::plugins::PluginError;
use crate::plugins::bindings::{PaymentRequest, ProviderError};
use crate::providers::CircuitState;
use crate::quota::CHARGE_LEASE;

/// How long a compensating write that met a database outage is retried
/// (less than an idempotency claim's lease).
const COMPENSATE_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

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
        // 200 and 502 are final for the key. Anything else frees it for a
        // corrected retry (one after a 503 that left a payment stored finds
        // it: 409 order_exists).
        let (payments, merchant_id, key) = (gw.payments.clone(), merchant.id, key.clone());
        let settled = outcome.as_ref().ok().map(|c| (c.status, c.body.clone()));
        let record = move || {
            let (payments, key, settled) = (payments.clone(), key.clone(), settled.clone());
            async move {
                match settled {
                    Some((status, body)) => {
                        let done = payments.complete_idempotency(merchant_id, &key, status, &body);
                        done.await
                    }
                    None => payments.release_idempotency(merchant_id, &key).await,
                }
            }
        };
        if let Err(e) = record().await {
            // Within the claim's lease, so a retry never frees a key that
            // another request has taken over since.
            tracing::warn!(error = %e, "could not record the idempotency outcome; retrying");
            crate::db::retry_in_background("idempotency outcome", COMPENSATE_WITHIN, record);
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
    match gw
        .merchants
        .take_token(merchant.id, request.subscription_id, request.order_id)
        .await?
    {
        Take::Taken => {}
        Take::Held { age } => {
            // The order is charged already: by its payment, by a request for
            // it that is still running, or by one that died before creating
            // the payment (then, after the lease, this request carries on
            // with that charge).
            order_free(gw, merchant, request).await?;
            let dead = age >= CHARGE_LEASE
                && gw
                    .merchants
                    .take_over_charge(merchant.id, request.order_id, CHARGE_LEASE)
                    .await?;
            if !dead {
                return Err(ApiError::RequestInProgress);
            }
        }
        Take::Refused(refused) => {
            // order_exists is checked before the quota: a spent quota does
            // not hide an existing order.
            order_free(gw, merchant, request).await?;
            return Err(match refused {
                QuotaError::InvalidSubscription => ApiError::InvalidSubscription,
                QuotaError::Exhausted => ApiError::QuotaExceeded,
            });
        }
    }
    // From here on the order's token is held: every path that creates no
    // payment, or one whose creation failed, gives it back. A crash in
    // between leaves that to the quota reconciler.
    let mut stored = false;
    let result = with_token(
        gw,
        merchant,
        request,
        key,
        request_id,
        &binding.provider_plugin,
        &mut stored,
    )
    .await;
    // An error after the payment row was stored means its outcome could not
    // be recorded: it exists, pending, and keeps its token.
    let keep_token = matches!(&result, Ok(c) if c.status == 200) || (stored && result.is_err());
    if !keep_token {
        let (merchants, merchant_id, order_id) =
            (gw.merchants.clone(), merchant.id, request.order_id);
        let give_back = move || {
            let merchants = merchants.clone();
            async move {
                merchants
                    .refund_token(merchant_id, order_id)
                    .await
                    .map(drop)
            }
        };
        // Giving back is idempotent (the charge row goes with the token), so
        // retrying it is safe; the reconciler is the last resort.
        if let Err(e) = give_back().await {
            tracing::warn!(error = %e, order_id, "could not give back a quota token; retrying");
            crate::db::retry_in_background("quota token return", COMPENSATE_WITHIN, give_back);
        }
    }
    result
}

/// `order_exists` when the merchant already has a payment for the order.
async fn order_free(
    gw: &Gateway,
    merchant: &Merchant,
    request: &CreatePayment,
) -> Result<(), ApiError> {
    match gw
        .payments
        .payment_for_order(merchant.id, request.order_id)
        .await?
    {
        Some(payment_id) => Err(ApiError::OrderExists { payment_id }),
        None => Ok(()),
    }
}

async fn with_token(
    gw: &Gateway,
    merchant: &Merchant,
    request: &CreatePayment,
    key: Option<&IdempotencyKey>,
    request_id: &str,
    plugin_name: &str,
    stored: &mut bool,
) -> Result<Created, ApiError> {
    let alias = request.alias.as_str();
    let probe = match gw.circuit.acquire(alias).await {
        CircuitState::Open { retry_after } => {
            return Err(ApiError::ProviderUnavailable {
                retry_after_secs: retry_after.as_secs_f64().ceil() as u64,
            });
        }
        CircuitState::Unknown => {
            return Err(ApiError::ServiceUnavailable(
                "circuit breaker state (Redis) unavailable".into(),
            ));
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
    *stored = true;

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
