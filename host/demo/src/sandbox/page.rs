//! The buyer's side: `GET /pay/{id}` and the two buttons,
//! `POST /pay/{id}/pay` and `POST /pay/{id}/decline`. Either takes
//! `?webhook=skip`: the payment settles and no webhook is sent, as when a
//! provider's webhook is lost (API.md, "Reconciliation and expiry").

use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::html::{self, View};
use super::store::{Order, Outcome, Payment, Sandbox};
use super::webhook;
use crate::html::page;

/// How long a click waits for the gateway's first answer before
/// redirecting, so the merchant's return page usually sees the new status.
const FIRST_ATTEMPT_WAIT: Duration = Duration::from_secs(3);

/// `GET /pay/{id}`.
pub(crate) async fn show(
    State(sandbox): State<Sandbox>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let id = id.map(|Path(id)| id).unwrap_or_default();
    match sandbox.get(&id) {
        Some(payment) => page(StatusCode::OK, html::payment(&view(&payment))),
        None => page(StatusCode::NOT_FOUND, html::not_found(&id)),
    }
}

/// A button's query: `webhook=skip` loses the webhook on purpose.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Click {
    webhook: Option<String>,
}

impl Click {
    fn sends_webhook(&self) -> bool {
        self.webhook.as_deref() != Some("skip")
    }
}

/// `POST /pay/{id}/pay`.
pub(crate) async fn pay(
    State(sandbox): State<Sandbox>,
    id: Result<Path<String>, PathRejection>,
    click: Result<Query<Click>, QueryRejection>,
) -> Response {
    let click = click.map(|Query(c)| c).unwrap_or_default();
    settle(sandbox, id, Outcome::Finished, click.sends_webhook()).await
}

/// `POST /pay/{id}/decline`.
pub(crate) async fn decline(
    State(sandbox): State<Sandbox>,
    id: Result<Path<String>, PathRejection>,
    click: Result<Query<Click>, QueryRejection>,
) -> Response {
    let click = click.map(|Query(c)| c).unwrap_or_default();
    settle(sandbox, id, Outcome::Failed, click.sends_webhook()).await
}

/// Settles the payment once; only the click that settles it sends a
/// webhook, unless `send_webhook` is false. Every click then goes where the
/// payment's outcome leads.
async fn settle(
    sandbox: Sandbox,
    id: Result<Path<String>, PathRejection>,
    outcome: Outcome,
    send_webhook: bool,
) -> Response {
    let id = id.map(|Path(id)| id).unwrap_or_default();
    let Some((mut payment, changed)) = sandbox.settle(&id, outcome) else {
        return page(StatusCode::NOT_FOUND, html::not_found(&id));
    };
    if changed {
        tracing::info!(payment = %payment.id, outcome = ?payment.outcome, send_webhook, "sandbox payment settled");
        let hook = send_webhook
            .then(|| webhook::for_payment(&sandbox, &payment))
            .flatten();
        if let Some(hook) = hook {
            let first_answer = webhook::spawn(sandbox.clone(), hook);
            let _ = tokio::time::timeout(FIRST_ATTEMPT_WAIT, first_answer).await;
            // Read again for the delivery result the first attempt left.
            payment = sandbox.get(&id).unwrap_or(payment);
        }
    }
    match return_url(&payment) {
        Some(url) => Redirect::to(&url).into_response(),
        None => page(StatusCode::OK, html::payment(&view(&payment))),
    }
}

/// Where the buyer goes after a click: the link's return URL (its cancel
/// URL after a decline, when it has one), the session's success or cancel
/// URL with Stripe's `{CHECKOUT_SESSION_ID}` placeholder filled in, or the
/// Adyen payment's one return URL.
fn return_url(payment: &Payment) -> Option<String> {
    match (&payment.order, payment.outcome) {
        (_, Outcome::Pending) => None,
        (Order::Link(link), Outcome::Failed) => {
            link.cancel_url.clone().or_else(|| link.return_url.clone())
        }
        (Order::Link(link), _) => link.return_url.clone(),
        (Order::Session(session), outcome) => {
            let url = if outcome == Outcome::Finished {
                session.success_url.as_ref()
            } else {
                session.cancel_url.as_ref()
            };
            url.map(|url| url.replace("{CHECKOUT_SESSION_ID}", &payment.id))
        }
        (Order::Adyen(adyen), _) => Some(adyen.return_url.clone()),
    }
}

fn view(payment: &Payment) -> View<'_> {
    let (total, details) = match &payment.order {
        Order::Link(link) => (
            format!("{} {}", link.price, link.currency),
            vec![
                ("Order", link.order_id.to_string()),
                ("Quantity", link.amount.clone()),
                ("Merchant", link.merchant_id.to_string()),
            ],
        ),
        Order::Session(session) => {
            let mut details = Vec::new();
            let order = session
                .metadata
                .get("order_id")
                .cloned()
                .or_else(|| session.product_name.clone());
            if let Some(order) = order {
                details.push(("Order", order));
            }
            if let Some(reference) = &session.client_reference_id {
                details.push(("Reference", reference.clone()));
            }
            let total = major_units(session.amount_total, &session.currency);
            (total, details)
        }
        Order::Adyen(adyen) => {
            let mut details = Vec::new();
            if let Some(order) = &adyen.order_reference {
                details.push(("Order", order.clone()));
            }
            details.push(("Reference", adyen.reference.clone()));
            details.push(("Method", adyen.method.clone()));
            if let Some(account) = &payment.account {
                details.push(("Merchant account", account.clone()));
            }
            // In Adyen's own minor units, which differ from Stripe's for four currencies.
            let total = super::store::adyen_amount(adyen.value, &adyen.currency);
            (format!("{total} {}", adyen.currency), details)
        }
    };
    let mut details = details;
    details.push(("Provider id", payment.id.clone()));
    View {
        id: &payment.id,
        total,
        details,
        outcome: payment.outcome,
        delivery: payment.delivery.as_deref(),
    }
}

/// Minor units written in major units with the currency code, using
/// Stripe's list of currencies without or with three decimals.
fn major_units(minor: u64, currency: &str) -> String {
    let code = currency.to_ascii_uppercase();
    let exponent = super::store::exponent(&code);
    if exponent == 0 {
        return format!("{minor} {code}");
    }
    let scale = 10u64.pow(exponent);
    let width = exponent as usize;
    format!("{}.{:0width$} {code}", minor / scale, minor % scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_major_units() {
        assert_eq!(major_units(1050, "eur"), "10.50 EUR");
        assert_eq!(major_units(5, "usd"), "0.05 USD");
        assert_eq!(major_units(1500, "jpy"), "1500 JPY");
        assert_eq!(major_units(1500, "kwd"), "1.500 KWD");
    }
}
