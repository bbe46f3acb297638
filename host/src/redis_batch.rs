//! Script calls to Redis that concurrent requests share.
//!
//! Under load many requests wait on the same kind of Redis step at once (a
//! rate limit's take, a circuit breaker's acquire). One task sends them:
//! while a script call is in flight, the asks that arrive queue, and the
//! next call carries all of them (up to the batcher's bound). Redis runs one
//! script's steps one after another with nothing between them, so a script
//! that runs each ask's step in order answers exactly what the same asks
//! sent one by one in that order would: a later ask sees what an earlier
//! one stored. What batching saves is the per-call work on both sides (a
//! command's parsing, dispatch and reply in Redis; its encoding, a wake-up
//! of the connection's task and a decoding in the host), which costs more
//! than the steps themselves at the rates a gateway serves.
//!
//! All keys of one call go to one Redis (or one hash slot of a cluster).

use prometheus_client::metrics::counter::Counter;
use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot};

/// One request's step, as it rides in a shared call: the script's keys and
/// arguments it adds, and how its answer is read from the call's flat
/// answer (a list of integers, each ask's in the order they were added).
pub trait Batched: Send + 'static {
    type Answer: Send + 'static;

    /// Appends this ask's keys and arguments to `call`.
    fn encode(&self, call: &mut redis::ScriptInvocation<'_>);

    /// This ask's answer, taken from the front of `rest`; `None` when the
    /// answer has a shape this ask cannot have had.
    fn decode(&self, rest: &mut &[i64]) -> Option<Self::Answer>;
}

/// Why an ask got no answer: Redis's error, a sending task that has
/// stopped, or an answer of the wrong shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchError(pub String);

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a sending task has done (two counters on `/metrics`; their ratio
/// is the mean batch). Clones count together.
#[derive(Clone, Debug, Default)]
pub struct BatchStats {
    /// Script calls made.
    pub calls: Counter,
    /// Asks those calls carried.
    pub asks: Counter,
}

/// An ask waiting for its batch.
struct Pending<A: Batched> {
    ask: A,
    answer: oneshot::Sender<Result<A::Answer, BatchError>>,
}

/// The handle: a queue to the task that sends the batches.
pub struct Batcher<A: Batched> {
    queue: mpsc::UnboundedSender<Pending<A>>,
    stats: BatchStats,
}

impl<A: Batched> Batcher<A> {
    /// Starts the sending task on the current Tokio runtime; it ends when
    /// the handle is dropped. Each call runs `script` with at most `most`
    /// asks. The queue needs no bound: every ask in it is a request waiting
    /// for its answer, so it holds at most the requests in flight.
    pub fn start(
        conn: ConnectionManager,
        script: &'static str,
        most: usize,
        stats: BatchStats,
    ) -> Self {
        let (queue, asks) = mpsc::unbounded_channel();
        tokio::spawn(send_batches(
            conn,
            redis::Script::new(script),
            asks,
            most.max(1),
            stats.clone(),
        ));
        Self { queue, stats }
    }

    /// Sends `ask` in the next batch and waits for its answer.
    pub async fn ask(&self, ask: A) -> Result<A::Answer, BatchError> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Pending { ask, answer })
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// The calls made and the asks they carried so far.
    pub fn stats(&self) -> &BatchStats {
        &self.stats
    }
}

fn stopped() -> BatchError {
    BatchError("the Redis batch's sending task has stopped".to_owned())
}

/// Sends one batch at a time: the first ask waiting and every other
/// already queued, up to `most`.
async fn send_batches<A: Batched>(
    mut conn: ConnectionManager,
    script: redis::Script,
    mut queue: mpsc::UnboundedReceiver<Pending<A>>,
    most: usize,
    stats: BatchStats,
) {
    let mut batch = Vec::with_capacity(most);
    while queue.recv_many(&mut batch, most).await > 0 {
        // An ask whose request has gone (its client disconnected) is not
        // sent: nobody would learn its answer, and its step would change
        // state (charge a token, take a probe) for nothing.
        batch.retain(|pending| !pending.answer.is_closed());
        if batch.is_empty() {
            continue;
        }
        stats.calls.inc();
        stats.asks.inc_by(batch.len() as u64);
        let mut call = script.prepare_invoke();
        for pending in &batch {
            pending.ask.encode(&mut call);
        }
        let answer: Result<Vec<i64>, _> = call.invoke_async(&mut conn).await;
        match answer {
            Ok(flat) => answer_each(&mut batch, &flat),
            Err(e) => {
                let e = BatchError(e.to_string());
                for pending in batch.drain(..) {
                    let _ = pending.answer.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Splits the script's flat answer among the batch's asks, in order. An
/// answer of the wrong shape (which only a changed script could give) is
/// that ask's error, and every later one's, never a guess.
fn answer_each<A: Batched>(batch: &mut Vec<Pending<A>>, flat: &[i64]) {
    let mut rest = flat;
    let mut lost = false;
    for pending in batch.drain(..) {
        let answer = if lost {
            None
        } else {
            pending.ask.decode(&mut rest)
        };
        lost = answer.is_none();
        let _ = pending.answer.send(answer.ok_or_else(|| {
            BatchError("Redis answered in a shape the host does not know".to_owned())
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ask whose answer is one number, refused when negative.
    struct One;

    impl Batched for One {
        type Answer = i64;

        fn encode(&self, _: &mut redis::ScriptInvocation<'_>) {}

        fn decode(&self, rest: &mut &[i64]) -> Option<i64> {
            let (&n, tail) = rest.split_first()?;
            *rest = tail;
            (n >= 0).then_some(n)
        }
    }

    #[test]
    fn after_an_answer_of_the_wrong_shape_no_later_ask_is_guessed() {
        let (mut batch, mut answers) = (Vec::new(), Vec::new());
        for _ in 0..4 {
            let (answer, answered) = oneshot::channel();
            batch.push(Pending { ask: One, answer });
            answers.push(answered);
        }
        // The second number is of the wrong shape: the numbers after it
        // cannot be trusted to belong to the asks after it.
        answer_each(&mut batch, &[7, -1, 8, 9]);
        assert!(batch.is_empty());
        let got: Vec<_> = answers
            .into_iter()
            .map(|mut a| a.try_recv().unwrap().ok())
            .collect();
        assert_eq!(got, [Some(7), None, None, None]);
    }
}
