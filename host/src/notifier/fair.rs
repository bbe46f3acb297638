//! Fair delivery across merchants: each merchant may hold at most a share
//! of the notifier's delivery slots, so one endpoint that hangs (each
//! attempt waiting out the timeout) slows only its own notifications
//! (security review, finding 18).
//!
//! A notification over its merchant's share waits for one of the
//! merchant's deliveries to end, holding no slot while it waits, when its
//! merchant's endpoint is quick: its oldest delivery in flight has run for
//! less than [`LOCAL_WAIT`], and fewer notifications of that merchant are
//! waiting than the notifier has slots. A burst to a quick endpoint is
//! delivered as its own deliveries end. Any other, or a waiting one whose
//! wait ran out, is not delivered now: its claim is undone and it is due
//! again after a while (see [`deferral`]), without using up an attempt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::ids::MerchantId;

/// The longest a notification over its merchant's share waits in the
/// notifier for one of the merchant's deliveries to end, and the age of
/// the merchant's oldest delivery in flight past which it does not wait at
/// all: the shortest [`deferral`], so waiting never delays it more than
/// being put back would.
pub const LOCAL_WAIT: Duration = Duration::from_secs(1);

/// Deliveries in flight per merchant, each merchant capped at `share`.
pub struct Shares {
    share: u32,
    /// How many notifications of one merchant may wait for its share.
    queue: u32,
    merchants: Mutex<HashMap<MerchantId, Merchant>>,
}

/// A merchant with deliveries in flight or notifications waiting.
#[derive(Default)]
struct Merchant {
    /// When each of its deliveries in flight began.
    started: Vec<Instant>,
    /// Its notifications waiting for a delivery of its to end.
    waiting: u32,
    /// Told once per delivery that ends.
    ended: Arc<Notify>,
}

/// What a notification of a merchant may do now.
pub enum Taken {
    /// Be delivered: a slot of the merchant's share.
    Now(Share),
    /// Wait for one of the merchant's deliveries to end ([`Waiting::share`]).
    Wait(Waiting),
    /// Be put back: the merchant's oldest delivery in flight has run this
    /// long (see [`deferral`]).
    Defer(Duration),
}

impl Shares {
    /// `share` deliveries in flight per merchant, and at most `queue` of a
    /// merchant's notifications waiting for them.
    pub fn new(share: u32, queue: u32) -> Arc<Self> {
        Arc::new(Self {
            share: share.max(1),
            queue,
            merchants: Mutex::default(),
        })
    }

    /// A slot of `merchant`'s share, a wait for one, or how long its oldest
    /// delivery in flight has been running.
    pub fn take(self: &Arc<Self>, merchant: MerchantId) -> Taken {
        let mut merchants = self.merchants.lock().expect("shares lock");
        let entry = merchants.entry(merchant).or_default();
        let over = self.over_share(entry);
        // Those waiting already go first.
        if over.is_none() && entry.waiting == 0 {
            return Taken::Now(self.share_of(entry, merchant));
        }
        let oldest = over.unwrap_or_default();
        if oldest >= LOCAL_WAIT || entry.waiting >= self.queue {
            return Taken::Defer(oldest);
        }
        entry.waiting += 1;
        Taken::Wait(Waiting {
            shares: self.clone(),
            merchant,
            ended: entry.ended.clone(),
            until: tokio::time::Instant::now() + LOCAL_WAIT,
        })
    }

    /// How long the oldest delivery of a merchant holding its whole share
    /// has run; `None` while it has room.
    fn over_share(&self, entry: &Merchant) -> Option<Duration> {
        (entry.started.len() >= self.share as usize).then(|| {
            let oldest = entry.started.iter().min().copied();
            oldest.unwrap_or_else(Instant::now).elapsed()
        })
    }

    fn share_of(self: &Arc<Self>, entry: &mut Merchant, merchant: MerchantId) -> Share {
        let now = Instant::now();
        entry.started.push(now);
        Share {
            shares: self.clone(),
            merchant,
            started: now,
        }
    }

    /// Forgets a merchant with nothing in flight and nothing waiting.
    fn forget_if_idle(merchants: &mut HashMap<MerchantId, Merchant>, merchant: MerchantId) {
        if merchants
            .get(&merchant)
            .is_some_and(|m| m.started.is_empty() && m.waiting == 0)
        {
            merchants.remove(&merchant);
        }
    }
}

/// A notification waiting for its merchant's share; dropped, it stops
/// waiting.
pub struct Waiting {
    shares: Arc<Shares>,
    merchant: MerchantId,
    ended: Arc<Notify>,
    until: tokio::time::Instant,
}

impl Waiting {
    /// A slot of the merchant's share once one of its deliveries ends, or,
    /// when none has within [`LOCAL_WAIT`], how long its oldest has run.
    pub async fn share(self) -> Result<Share, Duration> {
        loop {
            // Registered before the share is looked at, so a delivery that
            // ends in between still wakes it.
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            {
                let mut merchants = self.shares.merchants.lock().expect("shares lock");
                let entry = merchants.entry(self.merchant).or_default();
                match self.shares.over_share(entry) {
                    None => return Ok(self.shares.share_of(entry, self.merchant)),
                    Some(oldest) if tokio::time::Instant::now() >= self.until => {
                        return Err(oldest);
                    }
                    Some(_) => {}
                }
            }
            let _ = tokio::time::timeout_at(self.until, ended).await;
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut merchants = self.shares.merchants.lock().expect("shares lock");
        if let Some(entry) = merchants.get_mut(&self.merchant) {
            entry.waiting -= 1;
        }
        Shares::forget_if_idle(&mut merchants, self.merchant);
    }
}

/// How long a notification over its merchant's share waits before it is
/// due again, when the merchant's oldest delivery in flight has been
/// running for `oldest`: twice that, at least a second and at most the
/// delivery `timeout`. A quick endpoint's burst is delivered about a second
/// later, not a whole timeout later; a hanging endpoint's deliveries age,
/// so its waiting notifications come back a few times per timeout at most.
pub fn deferral(oldest: Duration, timeout: Duration) -> Duration {
    const FLOOR: Duration = LOCAL_WAIT;
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
        let mut merchants = self.shares.merchants.lock().expect("shares lock");
        if let Some(entry) = merchants.get_mut(&self.merchant) {
            if let Some(at) = entry.started.iter().position(|s| *s == self.started) {
                entry.started.swap_remove(at);
            }
            // A permit is kept when nobody waits: a waiter that comes
            // later looks at the share again, which is harmless.
            entry.ended.notify_one();
        }
        // Only merchants with deliveries in flight or waiting are kept.
        Shares::forget_if_idle(&mut merchants, self.merchant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now(taken: Taken) -> Share {
        match taken {
            Taken::Now(share) => share,
            Taken::Wait(_) => panic!("waits"),
            Taken::Defer(oldest) => panic!("deferred, oldest {oldest:?}"),
        }
    }

    fn waits(taken: Taken) -> Waiting {
        match taken {
            Taken::Wait(waiting) => waiting,
            Taken::Now(_) => panic!("delivered now"),
            Taken::Defer(oldest) => panic!("deferred, oldest {oldest:?}"),
        }
    }

    fn deferred(taken: Taken) -> Duration {
        match taken {
            Taken::Defer(oldest) => oldest,
            Taken::Now(_) => panic!("delivered now"),
            Taken::Wait(_) => panic!("waits"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_merchant_holds_at_most_its_share_and_gets_it_back() {
        let shares = Shares::new(2, 0);
        let (a, b) = (MerchantId::new(1), MerchantId::new(2));
        let first = now(shares.take(a));
        let _second = now(shares.take(a));
        deferred(shares.take(a));
        now(shares.take(b));
        drop(first);
        now(shares.take(a));
    }

    #[tokio::test(start_paused = true)]
    async fn over_the_share_it_says_how_long_the_oldest_delivery_has_run() {
        let shares = Shares::new(1, 0);
        let merchant = MerchantId::new(1);
        let _held = now(shares.take(merchant));
        tokio::time::advance(Duration::from_millis(20)).await;
        assert_eq!(deferred(shares.take(merchant)), Duration::from_millis(20));
    }

    #[tokio::test(start_paused = true)]
    async fn a_notification_over_the_share_waits_for_a_delivery_to_end() {
        let shares = Shares::new(1, 4);
        let merchant = MerchantId::new(1);
        let held = now(shares.take(merchant));
        let waiting = tokio::spawn(waits(shares.take(merchant)).share());
        tokio::time::advance(Duration::from_millis(300)).await;
        drop(held);
        // Had the end of the delivery not woken it, the paused clock would
        // run to the end of its wait and it would be put back.
        let share = waiting
            .await
            .unwrap()
            .expect("the share, once the delivery ended");
        drop(waits(shares.take(merchant)));
        drop(share);
        now(shares.take(merchant));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_runs_out_and_the_notification_is_put_back() {
        let shares = Shares::new(1, 4);
        let merchant = MerchantId::new(1);
        let _held = now(shares.take(merchant));
        let started = Instant::now();
        let oldest = waits(shares.take(merchant)).share().await.err();
        assert_eq!(oldest, Some(LOCAL_WAIT));
        assert_eq!(started.elapsed(), LOCAL_WAIT);
        // A delivery running that long is a slow endpoint's: no more waits.
        assert_eq!(deferred(shares.take(merchant)), LOCAL_WAIT);
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_queue_notifications_of_a_merchant_wait() {
        let shares = Shares::new(1, 2);
        let (a, b) = (MerchantId::new(1), MerchantId::new(2));
        let _held = now(shares.take(a));
        let _first = waits(shares.take(a));
        let second = waits(shares.take(a));
        deferred(shares.take(a));
        now(shares.take(b));
        drop(second);
        waits(shares.take(a));
    }

    #[tokio::test(start_paused = true)]
    async fn those_waiting_go_before_a_newcomer() {
        let shares = Shares::new(1, 2);
        let merchant = MerchantId::new(1);
        let held = now(shares.take(merchant));
        let waiting = waits(shares.take(merchant));
        drop(held);
        // Room again, but not for a newcomer while one waits.
        waits(shares.take(merchant));
        waiting.share().await.expect("the waiting one gets it");
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

    #[tokio::test(start_paused = true)]
    async fn merchants_with_nothing_in_flight_or_waiting_are_forgotten() {
        let shares = Shares::new(1, 1);
        for id in 0..1000 {
            let merchant = MerchantId::new(id);
            let held = now(shares.take(merchant));
            let waiting = waits(shares.take(merchant));
            drop(held);
            drop(waiting);
        }
        assert!(shares.merchants.lock().unwrap().is_empty());
    }
}
