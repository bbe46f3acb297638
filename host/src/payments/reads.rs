//! Reads of one payment that concurrent requests share.
//!
//! Every route that reads one payment (a show, its timeline, its refunds)
//! asks for one row by its id and its merchant. Reading that row by its
//! primary key is a small part of what a statement costs: PostgreSQL's
//! wake-up, bind, executor start and reply, and the host's encoding,
//! socket write, wake-up and decoding cost several times more at the rates
//! a gateway serves (docs/benchmarks/notes/api.md, session 32). So the
//! asks share statements: at most [`IN_FLIGHT`] are running at once, the
//! asks that arrive meanwhile queue, and the next statement carries every
//! ask queued (up to [`MOST`]). An ask that finds a statement free runs at
//! once, alone, as the plain `SELECT … WHERE id = $1 AND merchant_id = $2`:
//! an idle host adds no wait and no cost.
//!
//! A read sees every write committed before it was asked: the statement
//! that carries it starts after it was queued, and each statement reads
//! one snapshot taken when it starts (`READ COMMITTED`).
//!
//! A merchant reads only its own payments: each ask matches the row by id
//! and merchant together. Rows come back keyed by id, so one statement
//! never carries two asks for the same id by different merchants (a
//! merchant guessing another's ids): the later one is read alone after it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use super::domain::{Money, PaymentStatus};
use super::store::Payment;
use crate::db::LeanPool;
use crate::ids::{MerchantId, OrderId, PaymentId};
use crate::redis_batch::BatchStats;

/// Statements running at once. Not one: a statement that stalls (a lost
/// connection waiting on its socket) would hold up every read. On a 2-core
/// machine two read within the noise of one, and more carry fewer asks
/// each (docs/benchmarks/notes/api.md, session 32).
pub const IN_FLIGHT: usize = 2;

/// The most asks one statement carries.
pub const MOST: usize = 64;

/// What a read answers: the payment if the merchant has one by that id.
/// The error is shared by every ask its statement carried.
pub type ReadResult = Result<Option<Payment>, Arc<sqlx::Error>>;

/// One request's read, waiting for a statement.
struct Ask {
    merchant: MerchantId,
    id: PaymentId,
    answer: oneshot::Sender<ReadResult>,
}

/// The handle: a queue to the tasks that run the statements. They end
/// when the handle is dropped.
#[derive(Debug)]
pub struct PaymentReads {
    queue: mpsc::UnboundedSender<Ask>,
}

impl PaymentReads {
    /// Starts [`IN_FLIGHT`] reading tasks on the current Tokio runtime. The
    /// queue needs no bound: every ask in it is a request waiting for its
    /// answer, so it holds at most the requests in flight.
    pub fn start(lean: LeanPool, stats: BatchStats) -> Self {
        let (queue, asks) = mpsc::unbounded_channel();
        let asks = Arc::new(Mutex::new(asks));
        for _ in 0..IN_FLIGHT {
            tokio::spawn(read_batches(lean.clone(), asks.clone(), stats.clone()));
        }
        Self { queue }
    }

    /// The merchant's payment `id`, read in the next statement.
    pub async fn get(&self, merchant: MerchantId, id: PaymentId) -> ReadResult {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Ask {
                merchant,
                id,
                answer,
            })
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

fn stopped() -> Arc<sqlx::Error> {
    Arc::new(sqlx::Error::PoolClosed)
}

/// One reading task: takes every ask queued (or waits for the next), reads
/// them in one statement, answers each, and starts over. The tasks take
/// turns at the queue, so a task never waits for asks while another holds
/// some it could take.
async fn read_batches(
    lean: LeanPool,
    asks: Arc<Mutex<mpsc::UnboundedReceiver<Ask>>>,
    stats: BatchStats,
) {
    let mut batch = Vec::with_capacity(MOST);
    loop {
        if asks.lock().await.recv_many(&mut batch, MOST).await == 0 {
            return;
        }
        // A request that has gone (its client disconnected, its deadline
        // passed) is not read for.
        batch.retain(|ask| !ask.answer.is_closed());
        match batch.len() {
            0 => {}
            1 => answer_alone(&lean, &stats, batch.swap_remove(0)).await,
            _ => answer_together(&lean, &stats, &mut batch).await,
        }
    }
}

/// Reads one ask's payment in a statement of its own.
async fn answer_alone(lean: &LeanPool, stats: &BatchStats, ask: Ask) {
    stats.calls.inc();
    stats.asks.inc();
    let read = read_one(lean, ask.merchant, ask.id).await;
    let _ = ask.answer.send(read.map_err(Arc::new));
}

/// Reads the payments of `batch` in one statement and answers each ask;
/// an ask the statement cannot carry ([`one_merchant_per_id`]) is read
/// alone after it.
async fn answer_together(lean: &LeanPool, stats: &BatchStats, batch: &mut Vec<Ask>) {
    let (mut asked, alone) = one_merchant_per_id(batch);
    stats.calls.inc();
    stats.asks.inc_by(batch.len() as u64);
    let (ids, merchants): (Vec<i64>, Vec<i64>) = asked
        .iter()
        .map(|(id, (merchant, _))| (id.get(), merchant.get()))
        .unzip();
    match read_many(lean, &ids, &merchants).await {
        Ok(found) => {
            let mut rows: HashMap<PaymentId, Payment> =
                found.into_iter().map(|p| (p.payment_id, p)).collect();
            for ask in batch.drain(..) {
                // A row answers every ask for its id; the last one takes it.
                let payment = match asked.get_mut(&ask.id) {
                    Some((_, more)) if *more > 1 => {
                        *more -= 1;
                        rows.get(&ask.id).cloned()
                    }
                    _ => rows.remove(&ask.id),
                };
                let _ = ask.answer.send(Ok(payment));
            }
        }
        Err(e) => {
            let e = Arc::new(e);
            for ask in batch.drain(..) {
                let _ = ask.answer.send(Err(e.clone()));
            }
        }
    }
    for ask in alone {
        answer_alone(lean, stats, ask).await;
    }
}

/// The ids `batch` asks for, each with its merchant and how many asks want
/// it. An ask for an id another merchant asked for earlier in the batch is
/// taken out and returned: the row read for an id answers only asks of
/// the merchant it was read for.
fn one_merchant_per_id(
    batch: &mut Vec<Ask>,
) -> (HashMap<PaymentId, (MerchantId, usize)>, Vec<Ask>) {
    let mut asked: HashMap<PaymentId, (MerchantId, usize)> = HashMap::with_capacity(batch.len());
    let mut alone = Vec::new();
    let mut i = 0;
    while i < batch.len() {
        let ask = &batch[i];
        match asked.entry(ask.id) {
            Entry::Vacant(slot) => {
                slot.insert((ask.merchant, 1));
            }
            Entry::Occupied(mut slot) if slot.get().0 == ask.merchant => slot.get_mut().1 += 1,
            Entry::Occupied(_) => {
                alone.push(batch.remove(i));
                continue;
            }
        }
        i += 1;
    }
    (asked, alone)
}

/// One payment, by the plain statement the pgbench ceiling runs.
async fn read_one(
    lean: &LeanPool,
    merchant: MerchantId,
    id: PaymentId,
) -> Result<Option<Payment>, sqlx::Error> {
    let mut conn = lean.acquire().await?;
    let payment = sqlx::query_as!(
        Payment,
        r#"SELECT id AS "payment_id: PaymentId", order_id AS "order_id: OrderId", alias AS provider,
                  amount AS "amount: Money", price AS "price: Money", currency,
                  status AS "status: PaymentStatus", payment_url, return_url, cancel_url,
                  metadata, refunded, created_at, updated_at, expires_at
           FROM payments WHERE id = $1 AND merchant_id = $2"#,
        id.get(),
        merchant.get(),
    )
    .fetch_optional(conn.get())
    .await?;
    conn.release();
    Ok(payment)
}

/// The payments whose id and merchant are at the same place in `ids` and
/// `merchants`, in one statement.
async fn read_many(
    lean: &LeanPool,
    ids: &[i64],
    merchants: &[i64],
) -> Result<Vec<Payment>, sqlx::Error> {
    let mut conn = lean.acquire().await?;
    let payments = sqlx::query_as!(
        Payment,
        r#"SELECT p.id AS "payment_id!: PaymentId", p.order_id AS "order_id!: OrderId",
                  p.alias AS "provider!", p.amount AS "amount!: Money", p.price AS "price!: Money",
                  p.currency AS "currency!", p.status AS "status!: PaymentStatus",
                  p.payment_url, p.return_url, p.cancel_url, p.metadata AS "metadata!",
                  p.refunded AS "refunded!", p.created_at AS "created_at!",
                  p.updated_at AS "updated_at!", p.expires_at AS "expires_at!"
           FROM unnest($1::int8[], $2::int8[]) AS asked (id, merchant_id)
           JOIN payments p ON p.id = asked.id AND p.merchant_id = asked.merchant_id"#,
        ids,
        merchants,
    )
    .fetch_all(conn.get())
    .await?;
    conn.release();
    Ok(payments)
}
