//! The notifier: consumes `payments.merchant` with manual acks and bounded
//! concurrency, delivers each notification signed to the merchant's
//! callback URL, records every attempt before acknowledging the message,
//! and schedules retries through the outbox (`NOTIFIER_RETRY_SCHEDULE`).
//! After the last attempt the row is `LOG_FAILED` and the message goes to
//! the dead-letter queue.
//!
//! Never twice: a message is delivered only after its row is claimed with
//! the attempt count the message was published with (see [`crate::outbox`]),
//! so a redelivered or duplicate message of a delivered event is dropped.

mod deliver;
mod fair;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::Acker;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

pub use deliver::{Deliverer, Outcome, is_public, sign};

use crate::config::NotifierSettings;
use crate::ids::{MerchantId, OutboxId};
use crate::merchants::{MerchantStore, NotificationTarget};
use crate::metrics::{BatchStage, Metrics};
use crate::outbox::{
    Backoff, Broker, HEADER_ATTEMPTS, HEADER_OUTBOX_ID, MessageRow, Notification, OutboxStore,
    Settlement, Topology, connect, jitter, reconnecting,
};
use fair::{Share, Shares, Taken, Waiting};

/// How long a merchant's callback URL and secret are reused.
pub const TARGET_CACHE_TTL: Duration = Duration::from_secs(5);
/// Messages the broker may hand over per delivery in flight.
const PREFETCH_PER_DELIVERY: u16 = 4;
/// Most rows claimed, or attempts recorded, in one statement.
const MAX_BATCH: usize = 256;

/// Delivers notifications until cancelled.
pub struct Notifier {
    pub store: OutboxStore,
    pub merchants: MerchantStore,
    pub broker: Broker,
    /// Names this process's connections at the broker.
    pub instance: String,
    pub topology: Topology,
    pub settings: NotifierSettings,
    deliverer: Deliverer,
    metrics: Arc<Metrics>,
    targets: Mutex<HashMap<MerchantId, (Instant, Option<NotificationTarget>)>>,
    /// Rows this process has claimed whose attempt is not yet recorded. A
    /// message for one of them (the producer republished it while the
    /// database was away) is dropped: the attempt's record decides what
    /// comes next, and delivering again would notify twice.
    unrecorded: Unrecorded,
    /// Each merchant's share of the delivery slots.
    shares: Arc<Shares>,
}

/// Outbox ids with an attempt in flight or waiting to be recorded.
type Unrecorded = Arc<Mutex<HashSet<OutboxId>>>;

/// An attempt's record and the message to acknowledge once it is durable.
type Settling = (Settlement, Acker);
/// A received message waiting for its row to be claimed.
type Claiming = (MessageRow, Acker);

impl Notifier {
    pub fn new(
        store: OutboxStore,
        merchants: MerchantStore,
        broker: Broker,
        instance: String,
        topology: Topology,
        settings: NotifierSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let deliverer = Deliverer::new(
            settings.timeout,
            settings.allow_private_callbacks,
            &broker.ca,
        );
        let shares = Shares::new(
            settings.merchant_share().into(),
            settings.concurrency.max(1).into(),
        );
        Self {
            shares,
            store,
            merchants,
            broker,
            instance,
            topology,
            settings,
            deliverer,
            metrics,
            targets: Mutex::default(),
            unrecorded: Unrecorded::default(),
        }
    }

    /// Consumes until `shutdown`, reconnecting with backoff.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        reconnecting("notifier", &shutdown, || self.clone().serve(&shutdown)).await;
    }

    /// One connected session. On shutdown: stop consuming, finish the
    /// deliveries in flight, record them, acknowledge, close.
    async fn serve(self: Arc<Self>, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let connection =
            connect(&self.broker, &format!("paygate notifier {}", self.instance)).await?;
        let channel = connection.create_channel().await?;
        self.topology.declare(&channel).await?;
        let concurrency = self.settings.concurrency.max(1);
        // More messages than deliveries in flight: the next batch is being
        // claimed while this one is delivered and recorded.
        let prefetch = concurrency.saturating_mul(PREFETCH_PER_DELIVERY);
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let tag = format!("paygate-notifier-{}", uuid::Uuid::new_v4());
        let mut consumer = channel
            .basic_consume(
                self.topology.queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = %self.topology.queue, "notifier consuming");

        let (settle_tx, settle_rx) = mpsc::channel::<Settling>(usize::from(concurrency) * 2);
        let settler = tokio::spawn(settle_loop(
            self.store.clone(),
            self.unrecorded.clone(),
            self.metrics.clone(),
            settle_rx,
        ));
        let (claim_tx, claim_rx) = mpsc::channel::<Claiming>(usize::from(prefetch));
        let slots = Arc::new(Semaphore::new(usize::from(concurrency)));
        let claimer = tokio::spawn(self.clone().claim_loop(claim_rx, slots.clone(), settle_tx));
        let result = loop {
            let next = tokio::select! {
                next = consumer.next() => next,
                _ = shutdown.cancelled() => break Ok(()),
            };
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(error)) => break Err(error.into()),
                None => break Err(anyhow::anyhow!("the broker cancelled the consumer")),
            };
            let Some(message) = message_row(&delivery.properties) else {
                tracing::error!(
                    delivery_tag = delivery.delivery_tag,
                    "message without an outbox row: dead-lettered"
                );
                let _ = delivery.acker.nack(dead_letter()).await;
                continue;
            };
            if claim_tx.send((message, delivery.acker)).await.is_err() {
                break Err(anyhow::anyhow!("the claiming task stopped"));
            }
        };
        let _ = channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await;
        // Messages received are claimed or given back, deliveries in flight
        // finish (bounded by the timeout) and are recorded, then acknowledged.
        drop(claim_tx);
        let _ = claimer.await;
        let _ = slots.acquire_many(u32::from(concurrency)).await;
        let _ = settler.await;
        let _ = connection.close(200, "bye".into()).await;
        result
    }

    /// Claims the rows of waiting messages in batches (whatever has arrived,
    /// one statement), then starts a delivery for each row claimed;
    /// duplicate and stale messages are acknowledged and dropped.
    async fn claim_loop(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Claiming>,
        slots: Arc<Semaphore>,
        settle: mpsc::Sender<Settling>,
    ) {
        let lease = self.settings.timeout + Duration::from_secs(5);
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            self.drop_unrecorded(&mut batch).await;
            let messages: Vec<MessageRow> = batch.iter().map(|(m, _)| *m).collect();
            let mut claimed = match self.store.claim_deliveries(&messages, lease).await {
                Ok(claimed) => {
                    (self.metrics.outbox.batches).record(BatchStage::Claim, messages.len());
                    claimed
                }
                Err(error) => {
                    // Back to the queue after a pause, not in a tight loop.
                    tracing::warn!(%error, messages = batch.len(), "cannot claim notifications; requeued");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    for (_, acker) in batch.drain(..) {
                        let _ = acker.nack(requeue()).await;
                    }
                    continue;
                }
            };
            self.unrecorded
                .lock()
                .expect("unrecorded set")
                .extend(claimed.keys().copied());
            let mut deferred = Vec::new();
            for (message, acker) in batch.drain(..) {
                let Some(notification) = claimed.remove(&message.outbox_id) else {
                    self.metrics.outbox.dropped_duplicates.inc();
                    tracing::debug!(
                        outbox_id = message.outbox_id.get(),
                        "duplicate or stale message dropped"
                    );
                    let _ = acker.ack(BasicAckOptions::default()).await;
                    continue;
                };
                let share = match merchant_of(&notification) {
                    Some(merchant) => match self.shares.take(merchant) {
                        Taken::Now(share) => Some(share),
                        Taken::Wait(waiting) => {
                            self.wait_for_share(waiting, notification, acker, &slots, &settle);
                            continue;
                        }
                        Taken::Defer(oldest) => {
                            let wait = fair::deferral(oldest, self.settings.timeout);
                            deferred.push((notification, acker, wait));
                            continue;
                        }
                    },
                    None => None,
                };
                let slot = slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                self.start(notification, acker, share, slot, settle.clone());
            }
            self.defer(deferred).await;
        }
    }

    /// Delivers `notification` once its merchant's share has room, in a
    /// task that holds no delivery slot while it waits (so other merchants'
    /// notifications go on), or puts it back when the wait runs out.
    fn wait_for_share(
        self: &Arc<Self>,
        waiting: Waiting,
        notification: Notification,
        acker: Acker,
        slots: &Arc<Semaphore>,
        settle: &mpsc::Sender<Settling>,
    ) {
        let (this, slots, settle) = (self.clone(), slots.clone(), settle.clone());
        tokio::spawn(async move {
            match waiting.share().await {
                Ok(share) => {
                    let slot = slots
                        .acquire_owned()
                        .await
                        .expect("the semaphore is never closed");
                    this.start(notification, acker, Some(share), slot, settle);
                }
                Err(oldest) => {
                    let wait = fair::deferral(oldest, this.settings.timeout);
                    this.defer(vec![(notification, acker, wait)]).await;
                }
            }
        });
    }

    /// Delivers `notification` in a task of its own, holding `share` and
    /// `slot` until it is done, and hands the attempt to the settling task.
    fn start(
        self: &Arc<Self>,
        notification: Notification,
        acker: Acker,
        share: Option<Share>,
        slot: OwnedSemaphorePermit,
        settle: mpsc::Sender<Settling>,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            let settlement = this.deliver(notification).await;
            drop(share);
            let outbox_id = settlement.outbox_id;
            if settle.send((settlement, acker)).await.is_err() {
                tracing::error!("settling stopped; the row's lease will bring it back");
                this.unrecorded
                    .lock()
                    .expect("unrecorded set")
                    .remove(&outbox_id);
            }
            drop(slot);
        });
    }

    /// Gives back the claims of notifications over their merchant's share,
    /// each due again after its wait (no attempt used; see
    /// [`fair::deferral`]), and acknowledges their messages: the producer
    /// publishes them when due. Rows with the same wait are deferred together.
    async fn defer(&self, deferred: Vec<(Notification, Acker, Duration)>) {
        if deferred.is_empty() {
            return;
        }
        let mut by_wait: HashMap<Duration, Vec<(OutboxId, i32)>> = HashMap::new();
        for (n, _, wait) in &deferred {
            by_wait.entry(*wait).or_default().push((n.id, n.attempt));
        }
        for (wait, rows) in by_wait {
            if let Err(error) = self.store.defer(&rows, jitter(wait)).await {
                // Their claims run out instead (an attempt is then used).
                tracing::warn!(%error, rows = rows.len(), "cannot defer notifications over a merchant's share");
            }
        }
        self.metrics.outbox.deferred.inc_by(deferred.len() as u64);
        {
            let mut unrecorded = self.unrecorded.lock().expect("unrecorded set");
            for (notification, _, _) in &deferred {
                unrecorded.remove(&notification.id);
            }
        }
        for (_, acker, _) in deferred {
            let _ = acker.ack(BasicAckOptions::default()).await;
        }
    }

    /// Acknowledges and drops the messages of rows whose attempt by this
    /// process is not recorded yet.
    async fn drop_unrecorded(&self, batch: &mut Vec<Claiming>) {
        let pending: Vec<Acker> = {
            let unrecorded = self.unrecorded.lock().expect("unrecorded set");
            let (pending, fresh): (Vec<_>, Vec<_>) = batch
                .drain(..)
                .partition(|(m, _)| unrecorded.contains(&m.outbox_id));
            *batch = fresh;
            pending.into_iter().map(|(_, acker)| acker).collect()
        };
        for acker in pending {
            self.metrics.outbox.dropped_duplicates.inc();
            let _ = acker.ack(BasicAckOptions::default()).await;
        }
    }

    /// One delivery attempt and what to record of it.
    async fn deliver(&self, claimed: Notification) -> Settlement {
        let at = chrono::Utc::now();
        let outcome = self.attempt(&claimed).await;
        let retry_in = match &outcome.error {
            None => None,
            Some(_) => usize::try_from(claimed.attempt - 1)
                .ok()
                .and_then(|i| self.settings.retry_schedule.get(i))
                .map(|delay| {
                    retry_delay(&self.settings.retry_schedule, *delay, outcome.retry_after)
                }),
        };
        let outbox = &self.metrics.outbox;
        outbox.delivery_latency.observe(outcome.latency);
        match (&outcome.error, retry_in) {
            (None, _) => outbox.delivered.inc(),
            (Some(_), Some(_)) => outbox.retries_scheduled.inc(),
            (Some(_), None) => outbox.failed.inc(),
        };
        if let Some(error) = &outcome.error {
            tracing::info!(outbox_id = claimed.id.get(), payment_id = claimed.payment_id.get(), attempt = claimed.attempt, %error, retry = retry_in.is_some(), "notification not delivered");
        }
        Settlement {
            outbox_id: claimed.id,
            payment_id: claimed.payment_id,
            event_type: claimed.event_type,
            attempt: claimed.attempt,
            at,
            status_code: outcome.status_code,
            latency: outcome.latency,
            error: outcome.error,
            retry_in,
        }
    }

    /// One delivery attempt to the merchant of `n`.
    async fn attempt(&self, n: &Notification) -> Outcome {
        let no_target = |error: &str| Outcome {
            status_code: None,
            latency: Duration::ZERO,
            error: Some(error.to_owned()),
            retry_after: None,
        };
        let Some(merchant_id) = merchant_of(n) else {
            return no_target("notification without a merchant");
        };
        let target = match self.target(merchant_id).await {
            Ok(Some(target)) => target,
            Ok(None) => return no_target("merchant not found"),
            Err(error) => {
                tracing::warn!(merchant_id = merchant_id.get(), %error, "merchant lookup failed");
                return no_target("merchant lookup failed");
            }
        };
        let Some(url) = target.callback_url.as_deref() else {
            return no_target("merchant has no callback URL");
        };
        let body = serde_json::to_vec(&n.payload).expect("a JSON value serializes");
        let mut secrets = vec![&target.webhook_secret];
        secrets.extend(target.previous_webhook_secret.as_ref());
        self.deliverer
            .deliver(url, &secrets, &n.event_id.to_string(), body)
            .await
    }

    async fn target(&self, merchant_id: MerchantId) -> sqlx::Result<Option<NotificationTarget>> {
        if let Some((at, target)) = self.targets.lock().expect("cache lock").get(&merchant_id)
            && at.elapsed() < TARGET_CACHE_TTL
        {
            return Ok(target.clone());
        }
        let target = self.merchants.notification_target(merchant_id).await?;
        self.targets
            .lock()
            .expect("cache lock")
            .insert(merchant_id, (Instant::now(), target.clone()));
        Ok(target)
    }
}

/// Records attempts in batches (whatever is waiting, up to a limit), then
/// acknowledges their messages: finally failed ones to the dead-letter
/// queue. A batch that cannot be recorded (the database is away) is retried
/// until it is: an attempt made is never forgotten, and its messages stay
/// unacknowledged meanwhile, which holds further deliveries back.
async fn settle_loop(
    store: OutboxStore,
    unrecorded: Unrecorded,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Settling>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let settlements: Vec<Settlement> = batch.iter().map(|(s, _)| s.clone()).collect();
        let mut backoff = Backoff::new();
        let mut tries = 0u32;
        while let Err(error) = store.settle(&settlements).await {
            tries += 1;
            if tries == 20 {
                tracing::error!(%error, attempts = settlements.len(), "still cannot record notification attempts; retrying until the database answers");
            } else {
                tracing::warn!(%error, "cannot record notification attempts; retrying");
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
        (metrics.outbox.batches).record(BatchStage::Settle, settlements.len());
        {
            let mut unrecorded = unrecorded.lock().expect("unrecorded set");
            for settlement in &settlements {
                unrecorded.remove(&settlement.outbox_id);
            }
        }
        for (settlement, acker) in batch.drain(..) {
            let _ = if settlement.status() == "LOG_FAILED" {
                acker.nack(dead_letter()).await
            } else {
                acker.ack(BasicAckOptions::default()).await
            };
        }
    }
}

/// The wait before the next attempt: the schedule's `scheduled` (jittered),
/// or longer when the merchant asked for it with `Retry-After`, up to the
/// schedule's longest delay. Never sooner than the merchant asked, within
/// that bound: its wait gets only upward jitter, so the notifications a
/// merchant put off do not all come back in the same instant.
fn retry_delay(schedule: &[Duration], scheduled: Duration, asked: Option<Duration>) -> Duration {
    let scheduled = jitter(scheduled);
    match (asked, schedule.iter().max()) {
        (Some(asked), Some(longest)) => {
            // Bounded first: a wait of u64::MAX seconds cannot be scaled.
            let asked = asked.min(*longest);
            scheduled.max(asked.mul_f64(rand::random_range(1.0..1.2)).min(*longest))
        }
        _ => scheduled,
    }
}

/// The merchant a notification is for, as its payload names it.
fn merchant_of(n: &Notification) -> Option<MerchantId> {
    let id = n.payload.get("merchant_id").and_then(|v| v.as_i64());
    id.map(MerchantId::new)
}

fn requeue() -> BasicNackOptions {
    BasicNackOptions {
        requeue: true,
        ..Default::default()
    }
}

fn dead_letter() -> BasicNackOptions {
    BasicNackOptions {
        requeue: false,
        ..Default::default()
    }
}

/// The outbox row a message names.
fn message_row(properties: &lapin::BasicProperties) -> Option<MessageRow> {
    let headers = properties.headers().as_ref()?;
    let int = |name: &str| match headers.inner().get(name)? {
        AMQPValue::LongLongInt(v) => Some(*v),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        _ => None,
    };
    let event_id = properties.message_id().as_ref()?.as_str().parse().ok()?;
    Some(MessageRow {
        outbox_id: OutboxId::new(int(HEADER_OUTBOX_ID)?),
        event_id,
        published_attempts: i32::try_from(int(HEADER_ATTEMPTS)?).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_lengthens_the_wait_up_to_the_schedules_longest() {
        let secs = Duration::from_secs;
        let schedule = [secs(1), secs(60), secs(10)];
        for _ in 0..100 {
            // Asked for less than the schedule: the schedule's wait.
            let d = retry_delay(&schedule, secs(10), Some(secs(2)));
            assert!((secs(8)..=secs(12)).contains(&d), "{d:?}");
            // Asked for more: at least that, and not past the longest.
            let d = retry_delay(&schedule, secs(1), Some(secs(30)));
            assert!((secs(30)..=secs(36)).contains(&d), "{d:?}");
            let d = retry_delay(&schedule, secs(1), Some(secs(u64::MAX)));
            assert_eq!(d, secs(60));
            let d = retry_delay(&schedule, secs(1), None);
            assert!((Duration::from_millis(800)..=Duration::from_millis(1200)).contains(&d));
        }
    }
}
