//! The transactional outbox and its way to RabbitMQ.
//!
//! A payment's terminal transition commits its outbox row in the same
//! transaction (see `payments::webhook`). From there a row moves:
//!
//! ```text
//! LOG_PENDING ──producer claims──▶ LOG_PROCESSING ──notifier: 2xx──▶ LOG_SUCCESS
//!      ▲                             │        │
//!      │ retry endpoint              │ fails  └─ last attempt fails ─▶ LOG_FAILED
//!      │                             ▼
//!      └──────────────────────── LOG_RETRYING (due at next_retry_at)
//! ```
//!
//! `attempts` counts delivery attempts; a message carries the count it was
//! published with, and the notifier claims the row only while the count still
//! matches, so a duplicate or stale message is dropped instead of delivered
//! twice. `claimed_until` is a lease: a row that stays `LOG_PROCESSING` past
//! it (a crash between claim and publish, a lost message, a notifier that
//! died mid-delivery) is published again.

mod amqp;
mod producer;
mod store;

pub use amqp::{Backoff, Broker, Topology, connect, jitter, reconnecting};
pub use producer::Producer;
pub use store::{
    Attempt, Claimed, Listed, Listing, MessageRow, Notification, NotificationStatus, OutboxStats,
    OutboxStore, Replay, Settlement,
};

/// AMQP header naming the outbox row of a message.
pub const HEADER_OUTBOX_ID: &str = "x-outbox-id";
/// AMQP header with the row's attempt count when the message was published.
pub const HEADER_ATTEMPTS: &str = "x-attempts";
/// The PostgreSQL channel the producer listens on.
pub const NOTIFY_CHANNEL: &str = "paygate_outbox";

/// How a writer of outbox rows has them published without waiting for the
/// producer's poll, once they are committed.
///
/// Not by a `NOTIFY` inside the writing transaction: PostgreSQL takes one
/// lock for the whole database when such a transaction commits, and holds
/// it through the commit's WAL flush, so every notifying commit waited for
/// the one before it to reach the disk. Refunds queued their notifications
/// that way, and their settlements spent most of their time waiting for
/// that lock (docs/benchmarks/notes/api.md).
#[derive(Clone, Debug)]
pub enum OutboxWake {
    /// Wakes the producer of this process: what `paygate serve` runs.
    Local(std::sync::Arc<tokio::sync::Notify>),
    /// `NOTIFY`s the producers listening on the database, in a statement
    /// of its own after the commit: for a process without a producer.
    Listeners(sqlx::PgPool),
}

impl OutboxWake {
    /// Rows were committed: a producer should look now. A `NOTIFY` that
    /// fails is only logged, since the producers' poll finds the rows.
    pub async fn wake(&self) {
        match self {
            OutboxWake::Local(producer) => producer.notify_one(),
            OutboxWake::Listeners(pool) => {
                let sent = sqlx::query!("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
                    .execute(pool)
                    .await;
                if let Err(error) = sent {
                    tracing::warn!(%error, "could not wake the outbox producers; their poll will");
                }
            }
        }
    }
}
