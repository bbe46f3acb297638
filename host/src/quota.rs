//! The quota reconciler. A token is charged in the merchants database before
//! the payment is written to the payments database; the two cannot commit
//! together, so a host that dies in between leaves a charge without a
//! payment. The reconciler gives those back, and the tokens of payments
//! whose creation failed when the request could not, and confirms the
//! charges whose payments exist so they are never looked at again.

use std::collections::HashSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::ids::{MerchantId, OrderId};
use crate::merchants::{Charge, MerchantStore};
use crate::payments::PaymentStore;

/// How often a host looks for charges left behind.
const INTERVAL: Duration = Duration::from_secs(30);

/// Charges examined per round trip.
const BATCH: i64 = 500;

/// What one reconciliation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Charges confirmed: their payments exist.
    pub confirmed: usize,
    /// Tokens given back.
    pub returned: usize,
}

/// Examines every unconfirmed charge older than `grace`. Safe on several
/// hosts at once: a return deletes its charge in the statement that gives
/// the token back, so it happens once.
pub async fn reconcile(
    merchants: &MerchantStore,
    payments: &PaymentStore,
    grace: Duration,
) -> Result<Reconciled, sqlx::Error> {
    let mut done = Reconciled::default();
    loop {
        let charges = merchants.unconfirmed_charges(grace, BATCH).await?;
        let round = reconcile_charges(merchants, payments, &charges).await?;
        done.confirmed += round.confirmed;
        done.returned += round.returned;
        if charges.len() < BATCH as usize {
            return Ok(done);
        }
    }
}

/// Confirms the `charges` whose payments exist and gives back the others'
/// tokens, each only while its charge is as it was seen: a request that
/// took a charge over meanwhile is about to write its payment, and keeps it.
pub async fn reconcile_charges(
    merchants: &MerchantStore,
    payments: &PaymentStore,
    charges: &[Charge],
) -> Result<Reconciled, sqlx::Error> {
    let orders: Vec<(MerchantId, OrderId)> = charges.iter().map(Charge::order).collect();
    let live: HashSet<(MerchantId, OrderId)> = payments.live_orders(&orders).await?;
    let (confirm, give_back): (Vec<&Charge>, Vec<&Charge>) =
        charges.iter().partition(|c| live.contains(&c.order()));
    let mut done = Reconciled::default();
    if !confirm.is_empty() {
        let orders: Vec<_> = confirm.iter().map(|c| c.order()).collect();
        merchants.confirm_charges(&orders).await?;
        done.confirmed = orders.len();
    }
    for charge in give_back {
        if merchants.return_stale_token(charge).await? {
            tracing::info!(
                merchant_id = charge.merchant_id.get(),
                order_id = charge.order_id.get(),
                "gave back a quota token whose payment was never created"
            );
            done.returned += 1;
        }
    }
    Ok(done)
}

/// Reconciles every `INTERVAL` until `shutdown`, giving back tokens whose
/// payment has not come within `lease` (`PAYGATE_REQUEST_LEASE`: far longer
/// than a request takes from the charge to the insert).
pub async fn run(
    merchants: MerchantStore,
    payments: PaymentStore,
    lease: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = reconcile(&merchants, &payments, lease).await {
            tracing::warn!(error = %e, "quota reconciliation failed; trying again later");
        }
    }
}
