//! RabbitMQ: connecting, and the exchanges and queues paygate declares.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio_util::sync::CancellationToken;

use crate::config::OutboxSettings;
use crate::tls::TrustedCa;

/// Names of the topology, under the deployment's namespace.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Durable topic exchange of payment events (`payment.finished`,
    /// `refund.succeeded`, ...).
    pub exchange: String,
    /// The notifier's queue, bound to every [`NOTIFIED`] pattern.
    pub queue: String,
    /// Where the queue's rejected and finally failed messages go.
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    queue_expires: Option<Duration>,
}

/// The routing keys the notifier's queue takes: every event type a
/// merchant is notified of. A topic exchange drops what no binding takes,
/// so a new family of event types needs its pattern here.
pub const NOTIFIED: [&str; 2] = ["payment.*", "refund.*"];

impl Topology {
    pub fn new(settings: &OutboxSettings) -> Self {
        let ns = &settings.namespace;
        Self {
            exchange: format!("{ns}payments"),
            queue: format!("{ns}payments.merchant"),
            dead_letter_exchange: format!("{ns}payments.dlx"),
            dead_letter_queue: format!("{ns}payments.merchant.dead"),
            queue_expires: settings.queue_expires,
        }
    }

    /// Declares everything (idempotent; every replica does it at start).
    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for exchange in [&self.exchange, &self.dead_letter_exchange] {
            channel
                .exchange_declare(
                    exchange.as_str().into(),
                    ExchangeKind::Topic,
                    durable,
                    FieldTable::default(),
                )
                .await?;
        }
        let mut main_args = self.queue_arguments();
        main_args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(self.dead_letter_exchange.as_str().into()),
        );
        for (queue, exchange, routing_keys, args) in [
            (&self.queue, &self.exchange, &NOTIFIED[..], main_args),
            (
                &self.dead_letter_queue,
                &self.dead_letter_exchange,
                &["#"][..],
                self.queue_arguments(),
            ),
        ] {
            channel
                .queue_declare(queue.as_str().into(), QueueDeclareOptions::durable(), args)
                .await?;
            for routing_key in routing_keys {
                channel
                    .queue_bind(
                        queue.as_str().into(),
                        exchange.as_str().into(),
                        (*routing_key).into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    fn queue_arguments(&self) -> FieldTable {
        let mut args = FieldTable::default();
        if let Some(expires) = self.queue_expires {
            let ms = i64::try_from(expires.as_millis()).unwrap_or(i64::MAX);
            args.insert("x-expires".into(), AMQPValue::LongLongInt(ms));
        }
        args
    }
}

/// Where RabbitMQ is (`amqp://` or `amqps://`), and the CA it is trusted
/// with besides the system's.
#[derive(Clone, Debug)]
pub struct Broker {
    pub url: String,
    pub ca: TrustedCa,
}

impl Broker {
    /// The broker at `url`, trusted with the system's roots only.
    pub fn at(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ca: TrustedCa::default(),
        }
    }
}

impl Broker {
    /// With `amqps://`, refuses a broker whose certificate is not trusted:
    /// that is a setting to fix, said at start. A broker that is only down
    /// is not refused (the outbox keeps events until it is back).
    pub async fn refuse_untrusted(&self) -> anyhow::Result<()> {
        if !self.url.starts_with("amqps://") {
            return Ok(());
        }
        match connect(self, "paygate certificate check").await {
            Ok(connection) => {
                let _ = connection.close(200, "checked".into()).await;
                Ok(())
            }
            Err(error) if format!("{error:#}").contains("certificate") => Err(error.context(
                "PAYGATE_RABBITMQ_URL: the broker's certificate is not trusted (PAYGATE_TLS_CA_FILE)",
            )),
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "RabbitMQ is not reachable at start; events wait in the outbox");
                Ok(())
            }
        }
    }
}

/// Opens a connection named after its role and this process (it shows in
/// the broker's UI and `rabbitmqctl list_connections`).
pub async fn connect(broker: &Broker, name: &str) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let builder = lapin::DefaultConnectionBuilder::new()?
        .with_uri_str(broker.url.clone())
        .with_properties(properties)
        .with_tls_config(broker.ca.amqp());
    let connection = tokio::time::timeout(Duration::from_secs(5), builder.connect())
        .await
        .map_err(|_| anyhow::anyhow!("connecting to RabbitMQ timed out"))??;
    Ok(connection)
}

/// Runs `session` until it ends cleanly (on shutdown), connecting again
/// with backoff each time it fails; a session that lasted a while starts
/// the backoff over.
pub async fn reconnecting<F, Fut>(role: &str, shutdown: &CancellationToken, mut session: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut backoff = Backoff::new();
    while !shutdown.is_cancelled() {
        let started = std::time::Instant::now();
        let Err(error) = session().await else {
            break;
        };
        if started.elapsed() > Duration::from_secs(10) {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::warn!(error = %format!("{error:#}"), retry_in_ms = delay.as_millis() as u64, "{role} interrupted");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    tracing::info!("{role} stopped");
}

/// Exponential backoff with jitter between reconnection attempts.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    pub fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// The wait before the next attempt; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        jitter(delay)
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// `delay` scaled by a random factor in [0.8, 1.2], so replicas that failed
/// together do not retry together.
pub fn jitter(delay: Duration) -> Duration {
    delay.mul_f64(rand::random_range(0.8..1.2))
}
