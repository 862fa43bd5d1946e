//! One pass over the queue: claim due orders in batches, work each one (inquire,
//! decide, then hand a plan to `steps`) taking turns at the bank (`turns`)
//! while a renewer keeps the leases alive, watch refunds until they settle (`watch`),
//! and record the pass. The SQL is the store's; the rules are decide's; this is
//! the orchestration. One order's trouble is that order's, never the pass's.

use super::clock::Clock;
pub use super::settings::EngineSettings;
use super::summary::{OrderOutcome, PassCounters, PassSummary};
use super::turns::{Turns, ORDERS_PER_TURN};
use crate::ctbc::{Client, Inquiry};
use crate::ctbc::{CtbcError, Operation};
use crate::domain::decide::{Conclusion, Decision};
use crate::domain::mapping;
pub use crate::domain::next_move::with_unconfirmed_calls;
use crate::domain::next_move::{
    decision_after, invalid_row, learn_from_inquiry, next_move, record,
};
use crate::domain::next_move::{NextMove, Record};
use crate::domain::record::{Deferral, GatewayEvent};
use crate::domain::record::{Lease, OrderRecord};
use crate::domain::refund_request::RefundRequest;
use crate::domain::words::{CallOutcome, EventKind, PassOutcome, RefundMethod, StepReached};
use crate::store::writeback::WriteBack;
use crate::store::{Store, StoreError};
use crate::sync::lock;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn, Instrument};
use uuid::Uuid;

/// How many of the shop's requests are read and recorded at a time.
const INTAKE_CHUNK: usize = 1000;

/// A worker: one per process; many may share a database.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(super) store: Store,
    pub(super) client: Client,
    pub(super) settings: EngineSettings,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) worker: Uuid,
    pub(super) turns: Turns,
}

/// The orders this worker holds leases on during a pass, for the renewer.
#[derive(Debug, Clone, Default)]
pub(super) struct Held(Arc<Mutex<HashMap<i64, Uuid>>>);

impl Held {
    pub(super) fn add(&self, leases: impl IntoIterator<Item = (i64, Uuid)>) {
        lock(&self.0).extend(leases);
    }

    pub(super) fn remove(&self, id: i64) {
        lock(&self.0).remove(&id);
    }

    fn leases(&self) -> Vec<(i64, Uuid)> {
        lock(&self.0).iter().map(|(id, t)| (*id, *t)).collect()
    }
}

/// How an attempt at one order goes on after a step.
pub(super) enum Next {
    Decision(Box<RefundRequest>, Decision),
    Done(OrderOutcome),
}

impl Engine {
    pub fn new(
        store: Store,
        client: Client,
        settings: EngineSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            turns: Turns::new(settings.concurrency),
            store,
            client,
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
        self.client.recount_answers();
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
            self.watch_settlements(stop, counters, due_by, &held)
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
                refused => self.note_write_back(&refused),
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
                || self.client.keys_look_wrong().is_some()
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
        if let Some(why) = self.client.keys_look_wrong() {
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
            self.work_order(row, stop).instrument(span.clone()).await
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

    fn in_blackout(&self) -> bool {
        self.settings.blackout.window_at(self.clock.now()).is_some()
    }

    /// One attempt at one order: validate, inquire, decide, act, along the
    /// one path `refundd plan` prints (`next_move`).
    async fn work_order(
        &self,
        row: OrderRecord,
        stop: &CancellationToken,
    ) -> Result<OrderOutcome, StoreError> {
        let mut req = match RefundRequest::validate(&row, row.lease(self.worker)) {
            Ok(r) => r,
            Err(problem) => {
                warn!(step = "validate", reason = %problem.reason, "order row is invalid; nothing sent");
                let reason = invalid_row(problem, &row);
                let lease = row.lease(self.worker);
                let wb = self.store.fail(&lease, &[], &reason, None).await?;
                self.note_write_back(&wb);
                return Ok(OrderOutcome::Failed);
            }
        };
        let answer = self.inquire(&mut req).await?;
        if let Ok(bank) = &answer {
            if let Some(took_effect) = learn_from_inquiry(&mut req, bank) {
                self.record_capture_reversal_fate(&mut req, bank, took_effect)
                    .await?;
            }
        }
        let decision = decision_after(&req, &answer);
        let mut next = Next::Decision(Box::new(req), decision);
        loop {
            next = match next {
                Next::Done(outcome) => return Ok(outcome),
                Next::Decision(req, decision) => {
                    match next_move(&req, decision, &self.settings.attempt_rules()) {
                        NextMove::Send(s) => self.execute(*req, s.plan, stop).await?,
                        NextMove::Record(r) => Next::Done(self.carry_out(&req, r, None).await?),
                    }
                }
            };
        }
    }

    /// Records a conclusion that needs no call to the bank, as `next_move` reads it.
    pub(super) async fn conclude(
        &self,
        req: &RefundRequest,
        conclusion: Conclusion,
        ev: Option<&GatewayEvent>,
    ) -> Result<OrderOutcome, StoreError> {
        let r = record(req, conclusion, &self.settings.attempt_rules());
        self.carry_out(req, r, ev).await
    }

    /// Records what needs no call to the bank.
    async fn carry_out(
        &self,
        req: &RefundRequest,
        next: Record,
        ev: Option<&GatewayEvent>,
    ) -> Result<OrderOutcome, StoreError> {
        match next {
            Record::Refunded { method, amount } => {
                let watch =
                    (method == RefundMethod::Refund).then_some(self.settings.settlement_watch_days);
                let wb = self
                    .store
                    .finish_refunded(&req.lease, &req.story_with(ev), method, amount, watch)
                    .await?;
                self.note_write_back(&wb);
                info!(
                    step = "done",
                    method = method.as_str(),
                    amount,
                    "refunded (已退款)"
                );
                Ok(OrderOutcome::Refunded(method))
            }
            Record::NeedsPerson { reason } => self.fail_as_is(req, ev, reason, None).await,
            Record::Wait { reason: why } => {
                info!(
                    step = "wait",
                    reason = why.as_str(),
                    "waiting for a later pass"
                );
                let d = Deferral::next_pass(why.as_str().to_string(), req.unknown.is_some());
                self.store
                    .defer(&req.lease, &req.story_with(ev), &d)
                    .await?;
                Ok(unknown_or_deferred(req))
            }
            Record::RetryLater {
                reason, attempt, ..
            } => self.retry_later(req, ev, reason, attempt).await,
        }
    }

    /// No verdict from the bank: failed attempt number `attempts`, retried
    /// after a backoff (at least the recheck delay while an outcome is unknown).
    async fn retry_later(
        &self,
        req: &RefundRequest,
        ev: Option<&GatewayEvent>,
        reason: String,
        attempts: u32,
    ) -> Result<OrderOutcome, StoreError> {
        let mut delay = backoff(
            attempts,
            self.settings.backoff_base,
            self.settings.backoff_max,
        );
        if req.unknown.is_some() {
            delay = delay.max(self.settings.recheck);
        }
        info!(step = "retry", reason = %reason, attempts, delay_ms = delay.as_millis() as u64, "no verdict from the bank; will try again");
        let d = Deferral::backoff(delay, reason, req.unknown.is_some());
        self.store
            .defer(&req.lease, &req.story_with(ev), &d)
            .await?;
        Ok(unknown_or_deferred(req))
    }

    /// `refund_failed` for a person, with every call of ours whose outcome was
    /// never confirmed named in the reason, so nobody refunds by hand twice.
    pub(super) async fn fail(
        &self,
        req: &RefundRequest,
        ev: Option<&GatewayEvent>,
        reason: &str,
        refunded_amount: Option<i64>,
    ) -> Result<OrderOutcome, StoreError> {
        let reason = with_unconfirmed_calls(reason.to_string(), &req.own_calls);
        self.fail_as_is(req, ev, reason, refunded_amount).await
    }

    /// `refund_failed` with a reason that already names the unconfirmed calls.
    async fn fail_as_is(
        &self,
        req: &RefundRequest,
        ev: Option<&GatewayEvent>,
        reason: String,
        refunded_amount: Option<i64>,
    ) -> Result<OrderOutcome, StoreError> {
        warn!(step = "failed", reason = %reason, "refund failed; needs a person");
        let wb = self
            .store
            .fail(&req.lease, &req.story_with(ev), &reason, refunded_amount)
            .await?;
        self.note_write_back(&wb);
        Ok(OrderOutcome::Failed)
    }

    /// A write-back the shop's database refused: refundd's record stands, the
    /// write-back is retried on later passes, and operators are told.
    pub(super) fn note_write_back(&self, wb: &WriteBack) {
        if let WriteBack::Refused(reason) = wb {
            metrics::counter!("refundd_shop_write_back_refused_total").increment(1);
            warn!(step = "write_back", reason = %reason, "the shop's database refused the write-back; refundd's record is kept and the write-back is retried on later passes");
        }
    }

    /// Leaves an order whose call has an unknown outcome until a recheck.
    pub(super) async fn wait_for_recheck(
        &self,
        req: &RefundRequest,
        op: Operation,
        delay: Duration,
        why: &str,
    ) -> Result<OrderOutcome, StoreError> {
        warn!(step = "outcome_unknown", operation = op.as_str(), delay_ms = delay.as_millis() as u64, reason = why, "outcome of a money-moving call is unknown; will inquire again before anything is resent");
        let d = Deferral::recheck(delay, format!("outcome of {op} unknown: {why}"));
        self.store
            .defer(&req.lease, &req.story_with(None), &d)
            .await?;
        Ok(OrderOutcome::Unknown)
    }

    /// Asks the bank; the answer goes into the order's story with the next
    /// write. The outer error is the database's; the inner one the bank's.
    pub(super) async fn inquire(
        &self,
        req: &mut RefundRequest,
    ) -> Result<Result<Inquiry, CtbcError>, StoreError> {
        let turn = self.turns.take().await;
        let started = Instant::now();
        let result = self.client.inquiry(&req.order_no).await;
        drop(turn);
        let elapsed_ms = started.elapsed().as_millis() as i32;
        let mut ev = GatewayEvent {
            kind: EventKind::Outcome,
            operation: Some(Operation::Inquiry),
            elapsed_ms: Some(elapsed_ms),
            ..Default::default()
        };
        match &result {
            Ok(bank) => {
                ev.outcome = Some(CallOutcome::Accepted);
                ev.bank_state = Some(bank.state.code().to_string());
                ev.amount = bank.auth_amount.map(|m| m.amount());
                info!(
                    step = "inquiry",
                    operation = "inquiry",
                    bank_state = bank.state.code(),
                    elapsed_ms,
                    "bank answered"
                );
            }
            Err(e) => {
                ev.outcome = Some(CallOutcome::of_error(e));
                ev.message = Some(e.to_string());
                if let CtbcError::UnknownOrder {
                    resp_code,
                    err_code,
                    ..
                }
                | CtbcError::Refused {
                    resp_code,
                    err_code,
                    ..
                } = e
                {
                    ev.resp_code = Some(resp_code.clone());
                    ev.err_code = Some(err_code.clone());
                }
                info!(
                    step = "inquiry",
                    operation = "inquiry",
                    error = e.kind(),
                    elapsed_ms,
                    "inquiry gave no verdict: {e}"
                );
            }
        }
        req.unrecorded.push(ev);
        Ok(result)
    }
}

fn unknown_or_deferred(req: &RefundRequest) -> OrderOutcome {
    if req.unknown.is_some() {
        OrderOutcome::Unknown
    } else {
        OrderOutcome::Deferred
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

/// Keeps this worker's leases alive while it works: every third of a lease.
async fn renew_leases(store: Store, lease: Duration, held: Held, pass_over: CancellationToken) {
    let mut tick = tokio::time::interval((lease / 3).max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = pass_over.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = store.renew_leases(&held.leases(), lease).await {
            warn!(error = %e, "could not renew leases");
        }
    }
}
