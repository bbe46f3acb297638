//! Fair delivery across merchants: each merchant may hold at most a share
//! of the notifier's delivery slots, so one endpoint that hangs (each
//! attempt waiting out the timeout) slows only its own notifications
//! (security review, finding 18). A notification over its merchant's
//! share is not delivered now: its claim is undone and it is due again
//! after a while, without using up an attempt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::ids::MerchantId;

/// Deliveries in flight per merchant, each merchant capped at `share`.
pub struct Shares {
    share: u32,
    in_flight: Mutex<HashMap<MerchantId, u32>>,
}

impl Shares {
    pub fn new(share: u32) -> Arc<Self> {
        Arc::new(Self {
            share: share.max(1),
            in_flight: Mutex::default(),
        })
    }

    /// A delivery slot of `merchant`'s share, or `None` while it holds its
    /// whole share.
    pub fn take(self: &Arc<Self>, merchant: MerchantId) -> Option<Share> {
        let mut in_flight = self.in_flight.lock().expect("shares lock");
        let held = in_flight.entry(merchant).or_default();
        if *held >= self.share {
            return None;
        }
        *held += 1;
        Some(Share {
            shares: self.clone(),
            merchant,
        })
    }
}

/// One delivery of a merchant's share; dropping it gives the slot back.
pub struct Share {
    shares: Arc<Shares>,
    merchant: MerchantId,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut in_flight = self.shares.in_flight.lock().expect("shares lock");
        if let Some(held) = in_flight.get_mut(&self.merchant) {
            *held -= 1;
            // Only merchants with deliveries in flight are kept.
            if *held == 0 {
                in_flight.remove(&self.merchant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merchant_holds_at_most_its_share_and_gets_it_back() {
        let shares = Shares::new(2);
        let (a, b) = (MerchantId::new(1), MerchantId::new(2));
        let first = shares.take(a).unwrap();
        let _second = shares.take(a).unwrap();
        assert!(shares.take(a).is_none(), "a third is over the share");
        assert!(
            shares.take(b).is_some(),
            "another merchant is not held back"
        );
        drop(first);
        assert!(shares.take(a).is_some());
    }

    #[test]
    fn merchants_without_deliveries_are_forgotten() {
        let shares = Shares::new(1);
        for id in 0..1000 {
            drop(shares.take(MerchantId::new(id)).unwrap());
        }
        assert!(shares.in_flight.lock().unwrap().is_empty());
    }
}
