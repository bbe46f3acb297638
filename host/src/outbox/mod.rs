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
