//! The outbox producer: claims due rows, publishes them persistent to the
//! `payments` exchange with publisher confirms, and gives back what the
//! broker did not confirm. Woken when rows are queued: by this process's
//! own writers without the database ([`super::OutboxWake`]), by other
//! processes' `NOTIFY`, and by its poll as the fallback; reconnects to
//! RabbitMQ and PostgreSQL with backoff. Any number of replicas may run:
//! claims skip each other's rows.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::amqp::{Broker, Topology, connect, reconnecting};
use super::store::{Claimed, OutboxStore};
use super::{HEADER_ATTEMPTS, HEADER_OUTBOX_ID, NOTIFY_CHANNEL};
use crate::config::OutboxSettings;
use crate::metrics::{BatchStage, Metrics};
use std::sync::Arc;

/// Publishes outbox rows until cancelled.
pub struct Producer {
    pub store: OutboxStore,
    pub listen_pool: sqlx::PgPool,
    pub broker: Broker,
    /// Names this process's connections at the broker.
    pub instance: String,
    pub topology: Topology,
    pub settings: OutboxSettings,
    pub metrics: Arc<Metrics>,
    /// Woken by this process's writers of outbox rows
    /// ([`super::OutboxWake::Local`]); other processes' `NOTIFY` reaches it
    /// through the listener.
    pub wake: Arc<tokio::sync::Notify>,
}

/// A connected publishing channel.
struct Publisher {
    connection: Connection,
    channel: Channel,
}

impl Producer {
    /// Runs until `shutdown`; a claimed batch is published (or given back)
    /// before it returns.
    pub async fn run(self, shutdown: CancellationToken) {
        reconnecting("outbox producer", &shutdown, || self.serve(&shutdown)).await;
    }

    /// One connected session: returns `Ok` on shutdown, `Err` when a
    /// connection failed and must be made again.
    async fn serve(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let mut listener = PgListener::connect_with(&self.listen_pool).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        let publisher = self.connect().await?;
        tracing::info!(exchange = %self.topology.exchange, "outbox producer connected");
        let result = self.publish_loop(&publisher, &mut listener, shutdown).await;
        let _ = publisher.connection.close(200, "bye".into()).await;
        result
    }

    async fn connect(&self) -> anyhow::Result<Publisher> {
        let connection = connect(
            &self.broker,
            &format!("paygate outbox producer {}", self.instance),
        )
        .await?;
        let channel = connection.create_channel().await?;
        self.topology.declare(&channel).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Publisher {
            connection,
            channel,
        })
    }

    async fn publish_loop(
        &self,
        publisher: &Publisher,
        listener: &mut PgListener,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let lease = self.settings.lease;
        // Expired leases are rare (a crash, a lost message): looked for once
        // per poll interval, not on every wake-up of the commit path.
        let mut next_reclaim = std::time::Instant::now();
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let mut rows = self
                .store
                .claim_due(self.settings.batch_size, lease)
                .await?;
            (self.metrics.outbox.batches).record(BatchStage::Publish, rows.len());
            let room = self.settings.batch_size - rows.len() as i64;
            if room > 0 && std::time::Instant::now() >= next_reclaim {
                rows.extend(self.store.reclaim_expired(room, lease).await?);
                next_reclaim = std::time::Instant::now() + self.settings.poll_interval;
            }
            let full = rows.len() as i64 >= self.settings.batch_size;
            if !rows.is_empty() {
                self.publish(publisher, rows).await?;
            }
            if full {
                continue;
            }
            let wait = self.idle_wait().await?;
            tokio::select! {
                woken = listener.recv() => { woken?; }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
            // Many commits may have notified: one round serves them all.
            while listener.next_buffered().is_some() {}
        }
    }

    /// Until the next retry, at most the poll interval (which is also how
    /// often expired leases are looked for).
    async fn idle_wait(&self) -> anyhow::Result<Duration> {
        let poll = self.settings.poll_interval;
        let Some(next) = self.store.next_due().await? else {
            return Ok(poll);
        };
        let until = (next - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        Ok(until.min(poll))
    }

    /// Publishes a batch and waits for the broker's confirms; rows it did
    /// not confirm are given back. A connection error gives back the rest
    /// and ends the session.
    async fn publish(&self, publisher: &Publisher, rows: Vec<Claimed>) -> anyhow::Result<()> {
        let mut pending = Vec::with_capacity(rows.len());
        let mut failed = Vec::new();
        let mut error = None;
        for (i, row) in rows.iter().enumerate() {
            match publisher
                .channel
                .basic_publish(
                    self.topology.exchange.as_str().into(),
                    row.event_type.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &serde_json::to_vec(&row.payload)?,
                    properties(row),
                )
                .await
            {
                Ok(confirm) => pending.push((i, confirm)),
                Err(e) => {
                    failed.extend(i..rows.len());
                    error = Some(e);
                    break;
                }
            }
        }
        for (i, confirm) in pending {
            match confirm.await {
                Ok(Confirmation::Ack(None)) => {}
                Ok(Confirmation::Ack(Some(returned))) => {
                    // Kept leased, not given back: publishing again at once
                    // would only spin until the queue is bound again.
                    tracing::error!(outbox_id = rows[i].id.get(), reply = %returned.reply_text, "message unroutable: is the queue bound?");
                }
                Ok(other) => {
                    tracing::warn!(
                        outbox_id = rows[i].id.get(),
                        ?other,
                        "broker did not confirm"
                    );
                    failed.push(i);
                }
                Err(e) => {
                    failed.push(i);
                    error.get_or_insert(e);
                }
            }
        }
        let published = (rows.len() - failed.len()) as u64;
        self.metrics.outbox.published.inc_by(published);
        if !failed.is_empty() {
            self.metrics
                .outbox
                .publish_failures
                .inc_by(failed.len() as u64);
            let back: Vec<Claimed> = failed.into_iter().map(|i| rows[i].clone()).collect();
            self.store.release(&back).await?;
        }
        match error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

fn properties(row: &Claimed) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        HEADER_OUTBOX_ID.into(),
        AMQPValue::LongLongInt(row.id.get()),
    );
    headers.insert(HEADER_ATTEMPTS.into(), AMQPValue::LongInt(row.attempts));
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(row.event_id.to_string().into())
        .with_type(row.event_type.as_str().into())
        .with_timestamp(chrono::Utc::now().timestamp() as u64)
        .with_headers(headers)
}
