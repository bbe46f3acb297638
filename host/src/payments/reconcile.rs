//! Reconciliation (API.md, "Reconciliation and expiry"): a payment still
//! pending a while after it was created may have lost its webhook, so its
//! provider is asked through the adapter's `payment-status`, then asked
//! again after doubling delays while it stays pending. An answer is applied
//! exactly as a verified webhook is (status, timeline, outbox row and
//! notification in one transaction), written `EVENT_PROVIDER_STATUS`.
//!
//! Every host runs it. A host claims the payments it asks about by moving
//! their next question forward in the statement that picks them (`FOR
//! UPDATE SKIP LOCKED`), so one host asks about a payment per round and a
//! host that dies mid-round holds nothing: its payments come due again.
//!
//! Refunds left pending are asked about the same way: through `refund`
//! again (same provider-side key) when the provider never answered, or
//! through `refund-status`.
//!
//! A payment still pending at its `expires_at` (`PAYGATE_PAYMENT_EXPIRY`
//! after creation, fixed when it is created) expires: `PAYMENT_EXPIRED`,
//! timeline `EVENT_PAYMENT_EXPIRED`, notification `payment.expired`, and
//! its quota token given back.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::create::PaymentsService;
use super::domain::PaymentStatus;
use super::refunds::{Rechecked, recheck_refund};
use super::store::{PaymentStore, log_each};
use super::webhook::{Notifiable, Source, notify_payments};
use crate::ids::{MerchantId, OrderId, PaymentId, RefundId};
use crate::merchants::MerchantStore;
use crate::plugins::Caller;
use crate::plugins::bindings::PaymentState;
use crate::providers::CircuitState;

/// The longest pause between two questions about one payment.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// Payments claimed per statement.
const BATCH: i64 = 200;

/// Questions in flight at once, per host, with no request to give way to
/// (scripts/bench-reconcile measured 16 in flight taking 29% of creates on
/// a 2-core machine; see docs/BENCHMARKS.md). While requests are in flight
/// the service's [`crate::foreground::Pace`] limits the rate as well.
const CONCURRENCY: usize = 4;

/// What one round of reconciliation did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Payments whose provider was asked.
    pub asked: usize,
    /// Payments the answer finished or failed.
    pub settled: usize,
    /// Payments the provider says are still pending.
    pub pending: usize,
    /// Payments not asked or not answered: circuit open, plugin missing,
    /// provider unreachable. They come due again after their delay.
    pub unanswered: usize,
    /// Pending refunds asked about, and those now succeeded or failed.
    pub refunds_asked: usize,
    pub refunds_settled: usize,
}

/// A payment claimed for one question.
struct Due {
    id: PaymentId,
    merchant_id: MerchantId,
    alias: String,
    reference: String,
    /// How many times it has been claimed, this time included.
    attempt: i32,
}

/// How one question went.
enum Answer {
    /// The provider's final word, to apply with the rest of its batch.
    Final(Settled),
    Pending,
    Unanswered,
}

/// A final answer about a payment, applied as a verified webhook is.
struct Settled {
    id: PaymentId,
    status: PaymentStatus,
    /// The event id its timeline entry carries: one per question.
    event_id: String,
}

/// Final answers applied per transaction. A round's notifications then
/// reach the outbox, its producer and the notifier in batches, where one
/// by one each cost a commit, a claim, a publish and a settlement of its
/// own (docs/benchmarks/notes/reconcile.md, session 21).
const APPLY_BATCH: usize = 32;

/// The longest a final answer waits for others to fill its batch: at the
/// busy pace an operator may set very low (one question a second), a batch
/// would otherwise hold an answer for half a minute.
const APPLY_WAIT: Duration = Duration::from_secs(1);

impl PaymentStore {
    /// Claims up to `limit` payments pending for at least `after` whose
    /// next question was due when the round began (`round`, the database's
    /// clock), oldest first, and moves each one's next question
    /// `after × 2^(questions asked)` later, at most [`MAX_DELAY`]: a round
    /// asks about a payment once. A payment with no provider reference has
    /// nothing to ask about.
    async fn claim_due(
        &self,
        after: Duration,
        round: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Due>, sqlx::Error> {
        let rows = sqlx::query!(
            r#"UPDATE payments p
               SET reconcile_attempts = p.reconcile_attempts + 1,
                   reconcile_at = now() + make_interval(
                       secs => least($1 * power(2, p.reconcile_attempts), $2))
               FROM (SELECT id FROM payments
                     WHERE status = 'PAYMENT_PENDING'
                       AND created_at <= $4::timestamptz - make_interval(secs => $1)
                       AND (reconcile_at IS NULL OR reconcile_at <= $4::timestamptz)
                       AND provider_reference IS NOT NULL
                     ORDER BY created_at LIMIT $3
                     FOR UPDATE SKIP LOCKED) due
               WHERE p.id = due.id
               RETURNING p.id AS "id: PaymentId", p.merchant_id AS "merchant_id: MerchantId",
                         p.alias, p.provider_reference AS "reference!", p.reconcile_attempts"#,
            after.as_secs_f64(),
            MAX_DELAY.as_secs_f64(),
            limit,
            round,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Due {
                id: r.id,
                merchant_id: r.merchant_id,
                alias: r.alias,
                reference: r.reference,
                attempt: r.reconcile_attempts,
            })
            .collect())
    }
}

impl PaymentStore {
    /// Expires up to `limit` pending payments past their `expires_at`, in
    /// one transaction holding their rows, so a webhook that comes
    /// meanwhile waits and then finds them expired. Their tokens are given
    /// back first, all in one statement (one at a time, a batch held its
    /// rows for a commit per payment): should the expiry then not commit,
    /// the next round gives them back again, which finds nothing left to
    /// give. Answers the aliases of the payments it expired, one per
    /// payment.
    async fn expire_batch(
        &self,
        merchants: &MerchantStore,
        limit: i64,
    ) -> Result<Vec<String>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let due = sqlx::query_as!(
            Notifiable,
            r#"SELECT id AS "id: PaymentId", merchant_id AS "merchant_id: MerchantId",
                      order_id AS "order_id: OrderId", amount, price, currency, metadata, created_at
               FROM payments
               WHERE status = 'PAYMENT_PENDING' AND expires_at <= now()
               ORDER BY expires_at LIMIT $1
               FOR UPDATE SKIP LOCKED"#,
            limit,
        )
        .fetch_all(&mut *tx)
        .await?;
        let orders: Vec<_> = due.iter().map(|p| (p.merchant_id, p.order_id)).collect();
        merchants.return_tokens(&orders).await?;
        let ids: Vec<i64> = due.iter().map(|p| p.id.get()).collect();
        let aliases = sqlx::query_scalar!(
            "UPDATE payments SET status = 'PAYMENT_EXPIRED', updated_at = now() WHERE id = ANY($1)
             RETURNING alias",
            &ids,
        )
        .fetch_all(&mut *tx)
        .await?;
        let message = "still pending at its expires_at (PAYGATE_PAYMENT_EXPIRY)";
        let expired = PaymentStatus::Expired;
        let entries: Vec<_> = due.iter().map(|p| (p.id, expired.as_str(), None)).collect();
        log_each(&mut tx, "EVENT_PAYMENT_EXPIRED", message, &entries).await?;
        let moves: Vec<_> = due.iter().map(|p| (p, expired)).collect();
        notify_payments(&mut tx, &moves).await?;
        tx.commit().await?;
        if !due.is_empty() {
            self.outbox_wake.wake().await;
        }
        Ok(aliases)
    }
}

impl PaymentStore {
    /// How many payments, and refunds of payments, of `alias` still wait
    /// for their provider's word: they need the alias's plugins to finish.
    pub async fn unfinished_of_alias(&self, alias: &str) -> Result<(i64, i64), sqlx::Error> {
        let row = sqlx::query!(
            r#"SELECT
                 (SELECT count(*) FROM payments WHERE alias = $1 AND status = 'PAYMENT_PENDING') AS "payments!",
                 (SELECT count(*) FROM refunds r JOIN payments p ON p.id = r.payment_id
                   WHERE p.alias = $1 AND r.status = 'REFUND_PENDING') AS "refunds!""#,
            alias,
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.payments, row.refunds))
    }
}

/// Expires every pending payment past its `expires_at`, [`BATCH`] per
/// transaction; answers how many.
pub async fn expire(gw: &PaymentsService) -> Result<usize, sqlx::Error> {
    let mut expired = 0;
    loop {
        let aliases = gw.payments.expire_batch(&gw.merchants, BATCH).await?;
        let mut by_alias = std::collections::BTreeMap::<&str, u64>::new();
        for alias in &aliases {
            *by_alias.entry(alias).or_default() += 1;
        }
        for (alias, n) in by_alias {
            gw.metrics
                .payments_finished(alias, PaymentStatus::Expired, n);
        }
        expired += aliases.len();
        if aliases.len() < BATCH as usize {
            return Ok(expired);
        }
    }
}

impl PaymentStore {
    /// [`PaymentStore::claim_due`] for refunds: ids of up to `limit`
    /// refunds pending for at least `after` whose next question is due.
    async fn claim_due_refunds(
        &self,
        after: Duration,
        round: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(RefundId, i32)>, sqlx::Error> {
        let rows = sqlx::query!(
            r#"UPDATE refunds r
               SET reconcile_attempts = r.reconcile_attempts + 1,
                   reconcile_at = now() + make_interval(
                       secs => least($1 * power(2, r.reconcile_attempts), $2))
               FROM (SELECT id FROM refunds
                     WHERE status = 'REFUND_PENDING'
                       AND created_at <= $4::timestamptz - make_interval(secs => $1)
                       AND (reconcile_at IS NULL OR reconcile_at <= $4::timestamptz)
                     ORDER BY created_at LIMIT $3
                     FOR UPDATE SKIP LOCKED) due
               WHERE r.id = due.id
               RETURNING r.id AS "id: RefundId", r.reconcile_attempts"#,
            after.as_secs_f64(),
            MAX_DELAY.as_secs_f64(),
            limit,
            round,
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.id, r.reconcile_attempts))
            .collect())
    }
}

/// Asks again about every refund due now.
async fn reconcile_refunds(
    gw: &PaymentsService,
    after: Duration,
    began: DateTime<Utc>,
    round: &mut Round,
) -> Result<(), sqlx::Error> {
    loop {
        let due = gw.payments.claim_due_refunds(after, began, BATCH).await?;
        let claimed = due.len();
        let answers: Vec<_> = futures_util::stream::iter(due)
            .map(|(id, attempt)| async move {
                gw.reconcile_pace.step().await;
                let request_id = format!("reconcile-refund-{id}-{attempt}");
                (id, recheck_refund(gw, id, &request_id).await)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (id, answer) in answers {
            match answer {
                Ok(Rechecked::Settled) => {
                    round.refunds_asked += 1;
                    round.refunds_settled += 1;
                }
                Ok(Rechecked::Pending) => round.refunds_asked += 1,
                Ok(Rechecked::Unanswered) => {}
                // As for a payment's question: this refund waits for its
                // next one, the others' answers stand.
                Err(e) => {
                    tracing::warn!(refund_id = id.get(), error = %e, "pending refund not asked about");
                }
            }
        }
        if claimed < BATCH as usize {
            return Ok(());
        }
    }
}

/// Asks about every payment due now, [`CONCURRENCY`] at a time (and at
/// the service's pace while merchants' requests are in flight), until none
/// is left, then about every pending refund due. Final answers are applied
/// [`APPLY_BATCH`] at a time as they come, none held longer than
/// [`APPLY_WAIT`].
pub async fn reconcile(gw: &PaymentsService, after: Duration) -> Result<Round, sqlx::Error> {
    let mut round = Round::default();
    let began = sqlx::query_scalar!(r#"SELECT now() AS "now!""#)
        .fetch_one(&gw.payments.pool)
        .await?;
    loop {
        let due = gw.payments.claim_due(after, began, BATCH).await?;
        let claimed = due.len();
        let asked = futures_util::stream::iter(due)
            .map(|due| async {
                gw.reconcile_pace.step().await;
                ask(gw, due).await
            })
            .buffer_unordered(CONCURRENCY);
        let mut answers = std::pin::pin!(tokio_stream::StreamExt::chunks_timeout(
            asked,
            APPLY_BATCH,
            APPLY_WAIT
        ));
        while let Some(chunk) = answers.next().await {
            let mut finals = Vec::with_capacity(chunk.len());
            for answer in chunk {
                match answer {
                    Answer::Final(settled) => finals.push(settled),
                    Answer::Pending => round.pending += 1,
                    Answer::Unanswered => round.unanswered += 1,
                }
            }
            let moved = gw.payments.apply_answers(&finals).await?;
            // A webhook settled the others while their provider was asked.
            round.pending += finals.len() - moved.len();
            round.settled += moved.len();
            let mut by_alias =
                std::collections::BTreeMap::<(&str, &str), (PaymentStatus, u64)>::new();
            for (id, alias, status) in &moved {
                tracing::info!(
                    payment_id = id.get(),
                    alias,
                    status = status.as_str(),
                    "reconciliation settled a pending payment"
                );
                by_alias
                    .entry((alias, status.as_str()))
                    .or_insert((*status, 0))
                    .1 += 1;
            }
            for ((alias, _), (status, n)) in by_alias {
                gw.metrics.payments_finished(alias, status, n);
            }
        }
        round.asked = round.settled + round.pending;
        if claimed < BATCH as usize {
            reconcile_refunds(gw, after, began, &mut round).await?;
            return Ok(round);
        }
    }
}

impl PaymentStore {
    /// Applies final answers to status questions in one transaction, each
    /// as [`PaymentStore::apply_provider_event`] applies a verified
    /// webhook: a payment still pending moves, with its timeline entry
    /// (`EVENT_PROVIDER_STATUS`) and its notification; one a webhook
    /// settled meanwhile is left as it is (the update waits for that
    /// webhook's transaction, then finds it no longer pending). Answers
    /// the payments moved, with their aliases and new statuses.
    async fn apply_answers(
        &self,
        answers: &[Settled],
    ) -> Result<Vec<(PaymentId, String, PaymentStatus)>, sqlx::Error> {
        if answers.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = answers.iter().map(|a| a.id.get()).collect();
        let statuses: Vec<&str> = answers.iter().map(|a| a.status.as_str()).collect();
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query!(
            r#"UPDATE payments p SET status = a.status, updated_at = now()
               FROM unnest($1::bigint[], $2::text[]) AS a(id, status)
               WHERE p.id = a.id AND p.status = 'PAYMENT_PENDING'
               RETURNING p.id AS "id: PaymentId", p.merchant_id AS "merchant_id: MerchantId",
                         p.order_id AS "order_id: OrderId", p.amount, p.price, p.currency,
                         p.metadata, p.created_at, p.alias"#,
            &ids,
            &statuses as &[&str],
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut moved = Vec::with_capacity(rows.len());
        let mut entries = Vec::with_capacity(rows.len());
        let mut notified = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(answer) = answers.iter().find(|a| a.id == row.id) else {
                continue;
            };
            let payload = serde_json::json!({
                "provider_event_id": answer.event_id,
                "provider_type": PROVIDER_TYPE,
            });
            entries.push((row.id, answer.status.as_str(), Some(payload)));
            moved.push((row.id, row.alias, answer.status));
            notified.push(Notifiable {
                id: row.id,
                merchant_id: row.merchant_id,
                order_id: row.order_id,
                amount: row.amount,
                price: row.price,
                currency: row.currency,
                metadata: row.metadata,
                created_at: row.created_at,
            });
        }
        let event = Source::StatusCheck.timeline_event();
        log_each(&mut tx, event, PROVIDER_TYPE, &entries).await?;
        let moves: Vec<_> = notified.iter().zip(&moved).map(|(n, m)| (n, m.2)).collect();
        notify_payments(&mut tx, &moves).await?;
        tx.commit().await?;
        if !moved.is_empty() {
            self.outbox_wake.wake().await;
        }
        Ok(moved)
    }
}

/// The provider type a status question's timeline entry names.
const PROVIDER_TYPE: &str = "payment-status";

/// Asks the payment's provider about it, through the alias's circuit. A
/// question that fails on the host's side (a database error, a merchant's
/// secret that does not open) is unanswered, and logged: the payment is
/// asked again at its next turn, and the round's other answers stand.
#[tracing::instrument(name = "reconcile.ask", skip_all, fields(payment_id = due.id.get(), alias = %due.alias))]
async fn ask(gw: &PaymentsService, due: Due) -> Answer {
    let payment_id = due.id.get();
    ask_provider(gw, due).await.unwrap_or_else(|e| {
        tracing::warn!(payment_id, error = %e, "payment-status question not asked");
        Answer::Unanswered
    })
}

async fn ask_provider(gw: &PaymentsService, due: Due) -> Result<Answer, sqlx::Error> {
    let Some(binding) = gw.providers.get(&due.alias).await? else {
        return Ok(Answer::Unanswered);
    };
    // The payment was opened on the merchant's own account, if it has one;
    // read before the circuit is, so a question that cannot be asked never
    // takes a half-open circuit's one probe.
    let account = (gw.merchants.accounts)
        .account(due.merchant_id, &due.alias)
        .await?;
    let probe = match gw.circuit.acquire(&due.alias).await {
        CircuitState::Open { .. } | CircuitState::Unknown => return Ok(Answer::Unanswered),
        state => state == CircuitState::Probe,
    };
    let request_id = format!("reconcile-{}-{}", due.id, due.attempt);
    let caller = Caller {
        request_id: &request_id,
        account: account.as_ref(),
    };
    let outcome = match gw.plugins.require(&binding.provider_plugin) {
        Ok(plugin) => plugin.payment_status(caller, &due.reference).await,
        Err(e) => Err(e),
    };
    gw.tell_circuit(&due.alias, &outcome, probe).await;
    let status = match outcome {
        Ok(Ok(PaymentState::Pending)) => return Ok(Answer::Pending),
        Ok(Ok(PaymentState::Finished)) => PaymentStatus::Finished,
        Ok(Ok(PaymentState::Failed)) => PaymentStatus::Failed,
        Ok(Err(e)) => {
            tracing::warn!(error = ?e, "provider did not answer a payment-status question");
            return Ok(Answer::Unanswered);
        }
        Err(e) => {
            tracing::warn!(error = %e, "payment-status call failed");
            return Ok(Answer::Unanswered);
        }
    };
    Ok(Answer::Final(Settled {
        id: due.id,
        status,
        event_id: request_id,
    }))
}

/// When pending payments are asked about and expired.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// `PAYGATE_RECONCILE_AFTER`.
    pub after: Duration,
    /// How often a host looks.
    pub every: Duration,
}

/// Expires, then reconciles, every `schedule.every` until `shutdown`.
pub async fn run(
    gw: std::sync::Arc<PaymentsService>,
    schedule: Schedule,
    shutdown: CancellationToken,
) {
    let Schedule { after, every } = schedule;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match expire(&gw).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "expired pending payments"),
            Err(e) => tracing::warn!(error = %e, "expiring payments failed; retrying next tick"),
        }
        match reconcile(&gw, after).await {
            Ok(round) if round == Round::default() => {}
            Ok(round) => tracing::info!(?round, "reconciliation round"),
            Err(e) => tracing::warn!(error = %e, "reconciliation round failed; retrying next tick"),
        }
    }
}
