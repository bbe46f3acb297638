//! How busy this host is with merchants' requests, and a pace for the
//! background jobs that give way to them.
//!
//! Reconciliation is the host's one job whose work can grow large at once:
//! a provider's webhooks lost for an hour leave thousands of payments to
//! ask about, and each answer becomes a payment update, a notification and
//! its delivery. Run flat out beside live traffic, a round of 10,000 took
//! about half of the machine from the creates it ran beside
//! (docs/benchmarks/notes/reconcile.md). A payment reconciled a minute
//! later loses nothing; a create that waits is a buyer who waits. So while
//! any request is in flight, a round asks at most its busy rate; with none,
//! it asks as fast as it can.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Requests in flight on the merchant API of this host.
#[derive(Clone, Debug, Default)]
pub struct Foreground(Arc<AtomicUsize>);

/// One request in flight; dropping it (answered or cancelled) ends it.
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Foreground {
    /// One request in flight until the guard is dropped (answered or
    /// cancelled); [`crate::http::server::serve_counted`] holds one per request.
    pub fn enter(&self) -> InFlight {
        self.0.fetch_add(1, Ordering::Relaxed);
        InFlight(self.0.clone())
    }

    /// Whether any request is in flight now.
    pub fn busy(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 0
    }
}

/// A background job's pace: no limit while the host serves no request, at
/// most `busy_rate` steps a second (across all of the job's tasks) while
/// it serves any.
#[derive(Clone, Debug)]
pub struct Pace {
    foreground: Foreground,
    /// Between two steps while busy; `None`: no limit.
    busy_interval: Option<Duration>,
    /// The next step's earliest start while busy.
    next: Arc<std::sync::Mutex<Instant>>,
}

impl Pace {
    /// `busy_rate` steps a second while `foreground` is busy; 0: no limit.
    pub fn new(foreground: Foreground, busy_rate: u32) -> Self {
        Self {
            foreground,
            busy_interval: (busy_rate > 0).then(|| Duration::from_secs(1) / busy_rate),
            next: Arc::new(std::sync::Mutex::new(Instant::now())),
        }
    }

    /// Waits for the next step's turn: at once while the host is idle.
    pub async fn step(&self) {
        let Some(interval) = self.busy_interval else {
            return;
        };
        if !self.foreground.busy() {
            return;
        }
        let turn = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let turn = (*next).max(Instant::now());
            *next = turn + interval;
            turn
        };
        tokio::time::sleep_until(turn).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn steps(pace: &Pace, n: usize) -> Duration {
        let started = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let pace = pace.clone();
                tokio::spawn(async move { pace.step().await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        started.elapsed()
    }

    // Time is paused: the clock moves only by the waits themselves, so the
    // durations below are exact, whatever else the machine does.
    #[tokio::test(start_paused = true)]
    async fn steps_are_paced_only_while_a_request_is_in_flight() {
        let foreground = Foreground::default();
        let pace = Pace::new(foreground.clone(), 50);
        assert_eq!(steps(&pace, 100).await, Duration::ZERO, "idle: no wait");

        let request = foreground.enter();
        assert!(foreground.busy());
        // 100 steps from several tasks at 50 a second: the first at once,
        // the last 99 intervals of 20 ms later.
        assert_eq!(steps(&pace, 100).await, Duration::from_millis(1980));
        drop(request);
        assert!(!foreground.busy());
        assert_eq!(steps(&pace, 100).await, Duration::ZERO, "idle again");

        let unlimited = Pace::new(foreground.clone(), 0);
        let _request = foreground.enter();
        assert_eq!(steps(&unlimited, 100).await, Duration::ZERO);
    }

    #[tokio::test]
    async fn a_served_request_counts_while_it_runs() {
        use axum::Router;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::sync::Notify;
        let foreground = Foreground::default();
        let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let handler = {
            let (entered, release) = (entered.clone(), release.clone());
            move || {
                let (entered, release) = (entered.clone(), release.clone());
                async move {
                    entered.notify_one();
                    release.notified().await;
                    "done"
                }
            }
        };
        let router = Router::new().route("/", axum::routing::get(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        tokio::spawn(crate::http::server::serve_counted(
            listener,
            router,
            Default::default(),
            Some(foreground.clone()),
            shutdown.clone(),
        ));
        assert!(!foreground.busy());
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        entered.notified().await;
        assert!(foreground.busy(), "a request is in flight");
        release.notify_one();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.ends_with("done"), "{answer}");
        assert!(!foreground.busy(), "the request was answered");
        shutdown.cancel();
    }
}
