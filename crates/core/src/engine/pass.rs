//! One pass over the queue: claim due orders in batches, work each one (inquire,
//! decide, then hand a plan to `steps`) taking turns at the bank (`turns`)
//! while a renewer keeps the leases alive, watch refunds until they settle (`watch`),
//! and record the pass. The SQL is the store's; the rules are decide's; this is
//! the orchestration. One order's trouble is that order's, never the pass's.

use super::clock::Clock;
use super::settings::EngineSettings;
use super::summary::{OrderOutcome, PassCounters, PassSummary};
use super::turns::ORDERS_PER_TURN;
use crate::ctbc::Merchants;
use crate::ctbc::Operation;
use crate::domain::mapping;
use crate::domain::record::Deferral;
use crate::domain::record::{Lease, OrderRecord};
use crate::domain::words::{PassOutcome, StepReached};
use crate::engine::bank::{Bank, Banks};
use crate::engine::held::renew_leases;
use crate::engine::held::Held;
use crate::engine::recorder::Recorder;
use crate::engine::steps::Attempt;
use crate::engine::watch::SettlementWatch;
use crate::store::writeback::WriteBack;
use crate::store::{Store, StoreError};
use crate::sync::lock;
use futures::StreamExt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn, Instrument};
use uuid::Uuid;

/// How many of the shop's requests are read and recorded at a time.
const INTAKE_CHUNK: usize = 1000;

/// A worker: one per process; many may share a database.
#[derive(Debug, Clone)]
pub struct Engine {
    store: Store,
    banks: Banks,
    recorder: Recorder,
    settings: EngineSettings,
    clock: Arc<dyn Clock>,
    worker: Uuid,
}

impl Engine {
    /// `merchants`: every merchant's client (a single `Client` is the
    /// default merchant alone).
    pub fn new(
        store: Store,
        merchants: impl Into<Merchants>,
        settings: EngineSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            banks: Banks::new(&merchants.into(), settings.concurrency),
            recorder: Recorder {
                store: store.clone(),
                settings: settings.clone(),
            },
            store,
            settings,
            clock,
            worker: Uuid::new_v4(),
        }
    }

    /// This worker's id, as recorded in leases and events.
    pub fn worker(&self) -> Uuid {
        self.worker
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs one pass. `stop` ends claiming (orders in hand are finished).
    /// Fails only when the database is lost.
    pub async fn run_pass(
        &self,
        stop: &CancellationToken,
        counters: Arc<PassCounters>,
    ) -> Result<PassSummary, StoreError> {
        let started = Instant::now();
        self.banks.recount_answers();
        let (pass_id, due_by) = self.store.start_pass(self.worker).await?;
        let span = tracing::error_span!("pass", pass_id, worker = %self.worker);
        let result = self
            .pass_body(stop, &counters, due_by)
            .instrument(span.clone())
            .await;
        let elapsed = started.elapsed().as_millis() as u64;
        let outcome = match &result {
            Ok(o) => *o,
            Err(_) => PassOutcome::Failed,
        };
        let summary = counters.snapshot(outcome, elapsed);
        let json = serde_json::to_value(&summary).unwrap_or_default();
        // A lost database cannot record the pass; the error below says so.
        let _ = self.store.finish_pass(pass_id, outcome, &json).await;
        metrics::counter!("refundd_passes_total", "outcome" => outcome.as_str()).increment(1);
        span.in_scope(|| {
            info!(
                event = "pass_summary",
                outcome = outcome.as_str(),
                claimed = summary.claimed,
                refunded = summary.refunded(),
                refunded_reversal = summary.refunded_reversal,
                refunded_capture_reversal = summary.refunded_capture_reversal,
                refunded_refund = summary.refunded_refund,
                deferred = summary.deferred,
                outcome_unknown = summary.outcome_unknown,
                failed = summary.failed,
                released = summary.released,
                watched = summary.watched,
                elapsed_ms = summary.elapsed_ms,
                "{}",
                summary.line()
            )
        });
        result.map(|_| summary)
    }

    async fn pass_body(
        &self,
        stop: &CancellationToken,
        counters: &Arc<PassCounters>,
        due_by: chrono::DateTime<chrono::Utc>,
    ) -> Result<PassOutcome, StoreError> {
        // Reading the shop's requests sends nothing to the bank: it goes on in a window too.
        self.read_shop_requests().await?;
        let not_started = self.store.requests_not_started(mapping::SAMPLE).await?;
        if let Some(mistake) = mapping::mapping_mistake(&not_started) {
            error!(
                check = mistake.check.describe(),
                failing = mistake.failing,
                "{mistake}"
            );
            *lock(&counters.problem) = Some(mistake.to_string());
            return Ok(PassOutcome::SettingsProblem);
        }
        if let Some(w) = self.settings.blackout.window_at(self.clock.now()) {
            info!(window = %w, "pass sends nothing: inside the blackout window (Asia/Taipei), when the bank's batch locks the capture file");
            return Ok(PassOutcome::Blackout);
        }
        let backlog = self.store.count_due(due_by).await?;
        counters
            .backlog
            .store(backlog as u64, std::sync::atomic::Ordering::Relaxed);

        let held = Held::default();
        let pass_over = CancellationToken::new();
        // Dropped mid-flight (shutdown grace over), the pass still stops its renewer.
        let _stop_renewer = pass_over.clone().drop_guard();
        let renewer = tokio::spawn(renew_leases(
            self.store.clone(),
            self.settings.lease,
            held.clone(),
            pass_over.clone(),
        ));

        let result = async {
            self.watch()
                .watch_settlements(stop, counters, due_by, &held)
                .await?;
            self.work_queue(stop, counters, due_by, &held).await
        }
        .await;
        pass_over.cancel();
        let _ = renewer.await;
        result
    }

    /// Reads the shop's requests into refundd's records, and tries again the
    /// write-backs the shop's database refused before.
    async fn read_shop_requests(&self) -> Result<(), StoreError> {
        let report = self.store.intake(INTAKE_CHUNK).await?;
        if report.withdrawn > 0 || report.asked_again_after_refund > 0 {
            info!(
                read = report.read,
                new = report.new,
                withdrawn = report.withdrawn,
                asked_again_after_refund = report.asked_again_after_refund,
                "read the shop's requests"
            );
        }
        if report.asked_again_after_refund > 0 {
            warn!(
                orders = report.asked_again_after_refund,
                "the shop asked again for refunds refundd already made; an order is refunded once (see refundd status)"
            );
        }
        for (order_no, wb) in self.store.retry_write_backs(INTAKE_CHUNK as i64).await? {
            match wb {
                WriteBack::Done => {
                    info!(%order_no, step = "write_back", "the shop took the outcome it refused before")
                }
                refused => self.recorder.note_write_back(&refused),
            }
        }
        let raised = self
            .store
            .raise_attention(self.settings.attention_after)
            .await?;
        if raised > 0 {
            warn!(
                orders = raised,
                "orders need a person's attention (refund.needs_attention in the outbox)"
            );
        }
        let pending = self.store.pending_write_backs().await?;
        metrics::gauge!("refundd_shop_write_backs_pending").set(pending as f64);
        Ok(())
    }

    /// Claims batches and works them with bounded concurrency until nothing is
    /// due, the stop signal arrives or a blackout window begins.
    async fn work_queue(
        &self,
        stop: &CancellationToken,
        counters: &Arc<PassCounters>,
        due_by: chrono::DateTime<chrono::Utc>,
        held: &Held,
    ) -> Result<PassOutcome, StoreError> {
        // The first database error ends the pass: no batch is claimed after
        // it, but the orders in hand are finished, not dropped mid-call as
        // `try_for_each_concurrent` would (each may be between its intent and
        // its outcome).
        let first_error: OnceLock<StoreError> = OnceLock::new();
        let db_error = &first_error;
        // More orders in hand than turns at the bank (see `turns`).
        let in_hand = self.settings.concurrency.max(1) * ORDERS_PER_TURN;
        let batches = futures::stream::unfold(false, move |exhausted| async move {
            if exhausted
                || stop.is_cancelled()
                || self.in_blackout()
                || db_error.get().is_some()
                || self.banks.keys_look_wrong().is_some()
            {
                return None;
            }
            match self
                .store
                .claim(
                    self.worker,
                    self.settings.lease,
                    self.settings.batch_size,
                    due_by,
                )
                .await
            {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let short = (rows.len() as i64) < self.settings.batch_size;
                    counters
                        .claimed
                        .fetch_add(rows.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    held.add(
                        rows.iter()
                            .map(|r| (r.id, r.lease_token.unwrap_or_default())),
                    );
                    Some((futures::stream::iter(rows), short))
                }
                Err(e) => {
                    let _ = db_error.set(e);
                    None
                }
            }
        })
        .flatten();

        batches
            .for_each_concurrent(in_hand, |row| async move {
                let id = row.id;
                match self.take_order(row, stop).await {
                    Ok(o) => counters.count(o),
                    Err(e) => {
                        let _ = db_error.set(e);
                    }
                }
                held.remove(id);
            })
            .await;

        if let Some(e) = first_error.into_inner() {
            return Err(e);
        }
        if let Some(why) = self.banks.keys_look_wrong() {
            error!("{why}; the pass stopped claiming and sending");
            *lock(&counters.problem) = Some(why);
            Ok(PassOutcome::BankKeysWrong)
        } else if stop.is_cancelled() {
            Ok(PassOutcome::Stopped)
        } else if self.in_blackout() {
            info!("pass stopped claiming: a blackout window began");
            Ok(PassOutcome::Blackout)
        } else {
            Ok(PassOutcome::Completed)
        }
    }

    /// One claimed order: worked, or given back unstarted. An error is the
    /// whole database's; one about this order only leaves it for later.
    async fn take_order(
        &self,
        row: OrderRecord,
        stop: &CancellationToken,
    ) -> Result<OrderOutcome, StoreError> {
        let (lease, attempts) = (row.lease(self.worker), row.attempts);
        // An order whose capture reversal is done may still get its
        // reversal, which does not touch the capture file.
        let completes = row.step == Some(StepReached::CaptureReversed)
            || row.unknown_operation == Some(Operation::CaptureReversal);
        let span = tracing::error_span!("order", order_no = %row.order_no);
        let outcome = if stop.is_cancelled() || (self.in_blackout() && !completes) {
            self.store
                .release(&[lease])
                .await
                .map(|_| OrderOutcome::Released)
        } else {
            match self.banks.of_record(&row) {
                Ok(bank) => {
                    self.attempt(bank)
                        .work(row, stop)
                        .instrument(span.clone())
                        .await
                }
                Err(reason) => self.no_bank(&lease, &reason).instrument(span.clone()).await,
            }
        };
        match outcome {
            Err(StoreError::LeaseLost) => Ok(OrderOutcome::LeaseLost),
            Err(e) if e.is_about_one_order() => {
                self.refused_by_database(&lease, attempts, &e)
                    .instrument(span)
                    .await
            }
            other => other,
        }
    }

    /// PostgreSQL refused a write about this order (a value it cannot store,
    /// a constraint or trigger of the row): it waits out a backoff with the
    /// error for `status`, and anything of unknown outcome stays recorded.
    async fn refused_by_database(
        &self,
        lease: &Lease,
        attempts: i32,
        e: &StoreError,
    ) -> Result<OrderOutcome, StoreError> {
        let reason = printable(&format!("the database refused this order's record: {e}"));
        error!(step = "record", reason = %reason, "order left for a later attempt; the pass goes on");
        let n = u32::try_from(attempts).unwrap_or(0).saturating_add(1);
        let delay = backoff(n, self.settings.backoff_base, self.settings.backoff_max)
            .max(self.settings.recheck);
        let d = Deferral::backoff(delay, reason, true);
        match self.store.defer(lease, &[], &d).await {
            Ok(()) => Ok(OrderOutcome::Deferred),
            Err(StoreError::LeaseLost) => Ok(OrderOutcome::LeaseLost),
            Err(e) if e.is_about_one_order() => {
                // Its lease runs out and a later pass takes it up again.
                error!(step = "record", error = %printable(&e.to_string()), "could not defer the order either");
                Ok(OrderOutcome::Deferred)
            }
            Err(e) => Err(e),
        }
    }

    /// An order whose merchant no settings give: it fails with the reason
    /// (the operator adds the merchant's settings and retries it), nothing sent.
    async fn no_bank(&self, lease: &Lease, reason: &str) -> Result<OrderOutcome, StoreError> {
        warn!(step = "validate", reason = %reason, "order row is invalid; nothing sent");
        let wb = self.store.fail(lease, &[], reason, None).await?;
        self.recorder.note_write_back(&wb);
        Ok(OrderOutcome::Failed)
    }

    /// An attempt at one order at its merchant's bank, with this engine's parts.
    fn attempt<'a>(&'a self, bank: &'a Bank) -> Attempt<'a> {
        Attempt {
            bank,
            recorder: &self.recorder,
            settings: &self.settings,
            clock: self.clock.as_ref(),
            worker: self.worker,
        }
    }

    /// The settlement watch, with this engine's parts.
    fn watch(&self) -> SettlementWatch<'_> {
        SettlementWatch {
            banks: &self.banks,
            recorder: &self.recorder,
            settings: &self.settings,
            worker: self.worker,
        }
    }

    fn in_blackout(&self) -> bool {
        self.settings.blackout.window_at(self.clock.now()).is_some()
    }
}

/// Text safe to store and log: control characters (NUL among them) removed.
pub fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

/// Exponential backoff with jitter for the n-th failed attempt (n >= 1).
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(base)
        .with_max_delay(max)
        .with_factor(2.0)
        .with_jitter()
        .with_max_times(attempt as usize)
        .build()
        .nth(attempt.saturating_sub(1) as usize)
        .unwrap_or(max)
        .min(max)
}
