//! Fair delivery across merchants: each merchant may hold at most a share
//! of the notifier's delivery slots, so one endpoint that hangs (each
//! attempt waiting out the timeout) slows only its own notifications
//! (security review, finding 18). A notification over its merchant's
//! share is not delivered now: its claim is undone and it is due again
//! after a while (see [`deferral`]), without using up an attempt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ids::MerchantId;

/// Deliveries in flight per merchant, each merchant capped at `share`.
pub struct Shares {
    share: u32,
    /// When each of a merchant's deliveries in flight began.
    in_flight: Mutex<HashMap<MerchantId, Vec<Instant>>>,
}

impl Shares {
    pub fn new(share: u32) -> Arc<Self> {
        Arc::new(Self {
            share: share.max(1),
            in_flight: Mutex::default(),
        })
    }

    /// A delivery slot of `merchant`'s share or, while it holds its whole
    /// share, how long its oldest delivery in flight has been running.
    pub fn take(self: &Arc<Self>, merchant: MerchantId) -> Result<Share, Duration> {
        let mut in_flight = self.in_flight.lock().expect("shares lock");
        let started = in_flight.entry(merchant).or_default();
        if started.len() >= self.share as usize {
            let oldest = started.iter().min().copied().unwrap_or_else(Instant::now);
            return Err(oldest.elapsed());
        }
        let now = Instant::now();
        started.push(now);
        Ok(Share {
            shares: self.clone(),
            merchant,
            started: now,
        })
    }
}

/// How long a notification over its merchant's share waits before it is
/// due again, when the merchant's oldest delivery in flight has been
/// running for `oldest`: twice that, at least a second and at most the
/// delivery `timeout`. A quick endpoint's burst is delivered about a second
/// later, not a whole timeout later; a hanging endpoint's deliveries age,
/// so its waiting notifications come back a few times per timeout at most.
pub fn deferral(oldest: Duration, timeout: Duration) -> Duration {
    const FLOOR: Duration = Duration::from_secs(1);
    (oldest * 2).max(FLOOR).min(timeout.max(FLOOR))
}

/// One delivery of a merchant's share; dropping it gives the slot back.
pub struct Share {
    shares: Arc<Shares>,
    merchant: MerchantId,
    started: Instant,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut in_flight = self.shares.in_flight.lock().expect("shares lock");
        if let Some(started) = in_flight.get_mut(&self.merchant) {
            if let Some(at) = started.iter().position(|s| *s == self.started) {
                started.swap_remove(at);
            }
            // Only merchants with deliveries in flight are kept.
            if started.is_empty() {
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
        assert!(shares.take(a).is_err(), "a third is over the share");
        assert!(shares.take(b).is_ok(), "another merchant is not held back");
        drop(first);
        assert!(shares.take(a).is_ok());
    }

    #[test]
    fn over_the_share_it_says_how_long_the_oldest_delivery_has_run() {
        let shares = Shares::new(1);
        let merchant = MerchantId::new(1);
        let _held = shares.take(merchant).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let oldest = shares.take(merchant).err().expect("over the share");
        assert!(oldest >= Duration::from_millis(20), "{oldest:?}");
    }

    #[test]
    fn a_quick_burst_waits_a_second_and_a_hanging_endpoint_a_timeout() {
        let timeout = Duration::from_secs(10);
        let ms = Duration::from_millis;
        assert_eq!(deferral(ms(5), timeout), Duration::from_secs(1));
        assert_eq!(deferral(ms(3000), timeout), ms(6000));
        assert_eq!(deferral(ms(9000), timeout), timeout);
        // A timeout under a second still waits a second.
        assert_eq!(deferral(ms(5), ms(200)), Duration::from_secs(1));
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
