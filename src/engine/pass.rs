// One pass over the queue: claim due orders in batches, work each one (inquire,
// decide, send, record) with bounded concurrency while a renewer keeps the
// leases alive, watch refunds until they settle, and record the pass. The SQL
// is the store's; the rules are decide's; this is the orchestration.

use super::blackout::Blackout;
use super::clock::Clock;
use super::decide::{
    after_ambiguous, after_refusal, decide, on_inquiry_error, Plan, Step, Verdict,
};
use super::request::{RefundMethod, RefundRequest, STEP_CAPTURE_REVERSED};
use super::summary::{OrderOutcome, PassCounters, PassSummary};
use crate::config::Settings;
use crate::ctbc::client::{CaptureReversal, Client, Inquiry, Refund, Reversal};
use crate::ctbc::{CtbcError, Operation, TxState};
use crate::store::orders::{self, Deferral, GatewayEvent, Settlement};
use crate::store::{passes, OrderRow, StoreError};
use futures::StreamExt;
use sqlx::PgPool;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};
use uuid::Uuid;

/// How many times an inquiry is repeated at once after a call of unknown outcome.
const RECHECK_INQUIRIES: usize = 2;

/// What the engine needs from the settings.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub concurrency: usize,
    pub batch_size: i64,
    pub lease: Duration,
    pub max_attempts: u32,
    pub recheck: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub settlement_watch_days: u32,
    pub blackout: Blackout,
}

impl EngineSettings {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            concurrency: s.worker.concurrency,
            batch_size: s.worker.batch_size,
            lease: s.worker.lease,
            max_attempts: s.worker.max_attempts,
            recheck: s.worker.recheck,
            backoff_base: s.worker.backoff_base,
            backoff_max: s.worker.backoff_max,
            settlement_watch_days: s.worker.settlement_watch_days,
            blackout: s.schedule.blackout.clone(),
        }
    }
}

/// A worker: one per process; many may share a database.
#[derive(Debug, Clone)]
pub struct Engine {
    pool: PgPool,
    client: Client,
    settings: EngineSettings,
    clock: Arc<dyn Clock>,
    worker: Uuid,
}

/// How an attempt at one order goes on after a step.
enum Next {
    Verdict(RefundRequest, Verdict),
    Done(OrderOutcome),
}

impl Engine {
    pub fn new(
        pool: PgPool,
        client: Client,
        settings: EngineSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            pool,
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

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs one pass. `stop` ends claiming (orders in hand are finished).
    /// Fails only when the database is lost.
    pub async fn run_pass(
        &self,
        stop: &CancellationToken,
        counters: Arc<PassCounters>,
    ) -> Result<PassSummary, StoreError> {
        let started = Instant::now();
        let (pass_id, due_by) = passes::start_pass(&self.pool, self.worker).await?;
        let span = tracing::error_span!("pass", pass_id, worker = %self.worker);
        let result = self
            .pass_body(stop, &counters, due_by)
            .instrument(span.clone())
            .await;
        let elapsed = started.elapsed().as_millis() as u64;
        let outcome = match &result {
            Ok(o) => *o,
            Err(_) => "failed",
        };
        let summary = counters.snapshot(outcome, elapsed);
        let json = serde_json::to_value(&summary).unwrap_or_default();
        // A lost database cannot record the pass; the error below says so.
        let _ = passes::finish_pass(&self.pool, pass_id, outcome, &json).await;
        metrics::counter!("refundd_passes_total", "outcome" => outcome.to_string()).increment(1);
        span.in_scope(|| {
            info!(
                event = "pass_summary",
                outcome,
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
    ) -> Result<&'static str, StoreError> {
        if let Some(w) = self.settings.blackout.window_at(self.clock.now()) {
            info!(window = %w, "pass sends nothing: inside the blackout window (Asia/Taipei), when the bank's batch locks the capture file");
            return Ok("blackout");
        }
        let backlog = crate::store::status::count_due(&self.pool, due_by).await?;
        counters
            .backlog
            .store(backlog as u64, std::sync::atomic::Ordering::Relaxed);

        let held: Arc<Mutex<HashSet<i64>>> = Arc::default();
        let pass_over = CancellationToken::new();
        // Dropped mid-flight (shutdown grace over), the pass still stops its renewer.
        let _stop_renewer = pass_over.clone().drop_guard();
        let renewer = tokio::spawn(renew_leases(
            self.pool.clone(),
            self.worker,
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

    /// Claims batches and works them with bounded concurrency until nothing is
    /// due, the stop signal arrives or a blackout window begins.
    async fn work_queue(
        &self,
        stop: &CancellationToken,
        counters: &Arc<PassCounters>,
        due_by: chrono::DateTime<chrono::Utc>,
        held: &Arc<Mutex<HashSet<i64>>>,
    ) -> Result<&'static str, StoreError> {
        let db_error: Arc<Mutex<Option<StoreError>>> = Arc::default();
        let claim_error = db_error.clone();
        let batches = futures::stream::unfold(false, move |exhausted| {
            let db_error = claim_error.clone();
            async move {
                if exhausted || stop.is_cancelled() || self.in_blackout() || db_error_set(&db_error)
                {
                    return None;
                }
                match orders::claim(
                    &self.pool,
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
                        if let Ok(mut h) = held.lock() {
                            h.extend(rows.iter().map(|r| r.id));
                        }
                        Some((futures::stream::iter(rows), short))
                    }
                    Err(e) => {
                        set_db_error(&db_error, e);
                        None
                    }
                }
            }
        })
        .flatten();

        batches
            .for_each_concurrent(self.settings.concurrency, |row| {
                let db_error = db_error.clone();
                async move {
                    let id = row.id;
                    // An order whose capture reversal is done may still get its
                    // reversal, which does not touch the capture file.
                    let completes = row.step.as_deref() == Some(STEP_CAPTURE_REVERSED)
                        || row.unknown_operation.as_deref()
                            == Some(Operation::CaptureReversal.as_str());
                    let outcome = if stop.is_cancelled() || (self.in_blackout() && !completes) {
                        orders::release(&self.pool, self.worker, &[id])
                            .await
                            .map(|_| OrderOutcome::Released)
                    } else {
                        let span = tracing::error_span!("order", order_no = %row.order_no);
                        self.work_order(row, stop).instrument(span).await
                    };
                    if let Ok(mut h) = held.lock() {
                        h.remove(&id);
                    }
                    match outcome {
                        Ok(o) => counters.count(o),
                        Err(StoreError::LeaseLost) => counters.count(OrderOutcome::LeaseLost),
                        Err(e) => set_db_error(&db_error, e),
                    }
                }
            })
            .await;

        let err = db_error.lock().ok().and_then(|mut e| e.take());
        if let Some(e) = err {
            return Err(e);
        }
        if stop.is_cancelled() {
            Ok("stopped")
        } else if self.in_blackout() {
            info!("pass stopped claiming: a blackout window began");
            Ok("blackout")
        } else {
            Ok("completed")
        }
    }

    fn in_blackout(&self) -> bool {
        self.settings.blackout.window_at(self.clock.now()).is_some()
    }

    /// One attempt at one order: validate, inquire, decide, act.
    async fn work_order(
        &self,
        row: OrderRow,
        stop: &CancellationToken,
    ) -> Result<OrderOutcome, StoreError> {
        let req = match RefundRequest::validate(&row) {
            Ok(r) => r,
            Err(reason) => {
                warn!(step = "validate", reason = %reason, "order row is invalid; nothing sent");
                orders::fail(&self.pool, self.worker, row.id, None, &reason, None).await?;
                return Ok(OrderOutcome::Failed);
            }
        };
        let mut req = req;
        let verdict = match self.inquire(&req).await? {
            Ok(bank) => {
                // The bank's auth code serves when the shop did not store one.
                if req.auth_code.is_none() {
                    req.auth_code = bank.auth_code.clone();
                }
                decide(&req, &bank)
            }
            Err(e) => on_inquiry_error(&e),
        };
        let mut next = Next::Verdict(req, verdict);
        loop {
            next = match next {
                Next::Done(outcome) => return Ok(outcome),
                Next::Verdict(req, Verdict::Act(plan)) => self.execute(req, plan, stop).await?,
                Next::Verdict(req, verdict) => {
                    Next::Done(self.conclude(&req, verdict, None).await?)
                }
            };
        }
    }

    /// Records a verdict that needs no call to the bank.
    async fn conclude(
        &self,
        req: &RefundRequest,
        verdict: Verdict,
        ev: Option<&GatewayEvent>,
    ) -> Result<OrderOutcome, StoreError> {
        match verdict {
            Verdict::Refunded { method, amount } => {
                let watch =
                    (method == RefundMethod::Refund).then_some(self.settings.settlement_watch_days);
                orders::finish_refunded(
                    &self.pool,
                    self.worker,
                    req.id,
                    ev,
                    method.as_str(),
                    amount,
                    watch,
                )
                .await?;
                info!(
                    step = "done",
                    method = method.as_str(),
                    amount,
                    "refunded (已退款)"
                );
                Ok(OrderOutcome::Refunded(method))
            }
            Verdict::NeedsPerson(reason) => {
                warn!(step = "failed", reason = %reason, "refund failed; needs a person");
                orders::fail(&self.pool, self.worker, req.id, ev, &reason, None).await?;
                Ok(OrderOutcome::Failed)
            }
            Verdict::Wait(why) => {
                info!(
                    step = "wait",
                    reason = why.as_str(),
                    "waiting for a later pass"
                );
                let d = Deferral::next_pass(why.as_str().to_string(), req.unknown.is_some());
                orders::defer(&self.pool, self.worker, req.id, ev, &d).await?;
                Ok(if req.unknown.is_some() {
                    OrderOutcome::Unknown
                } else {
                    OrderOutcome::Deferred
                })
            }
            Verdict::Retry(reason) => {
                let attempts = req.attempts as u32 + 1;
                if attempts >= self.settings.max_attempts && req.unknown.is_none() {
                    let reason = format!("gave up after {attempts} attempts; last error: {reason}");
                    warn!(step = "failed", reason = %reason, "refund failed; needs a person");
                    orders::fail(&self.pool, self.worker, req.id, ev, &reason, None).await?;
                    return Ok(OrderOutcome::Failed);
                }
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
                orders::defer(&self.pool, self.worker, req.id, ev, &d).await?;
                Ok(if req.unknown.is_some() {
                    OrderOutcome::Unknown
                } else {
                    OrderOutcome::Deferred
                })
            }
            // Plans are executed by the caller; one reaching here is given back untouched.
            Verdict::Act(_) => {
                orders::release(&self.pool, self.worker, &[req.id]).await?;
                Ok(OrderOutcome::Released)
            }
        }
    }

    /// Leaves an order whose call has an unknown outcome until a recheck.
    async fn wait_for_recheck(
        &self,
        req: &RefundRequest,
        op: Operation,
        delay: Duration,
        why: &str,
    ) -> Result<OrderOutcome, StoreError> {
        warn!(step = "outcome_unknown", operation = op.as_str(), delay_ms = delay.as_millis() as u64, reason = why, "outcome of a money-moving call is unknown; will inquire again before anything is resent");
        let d = Deferral::recheck(delay, format!("outcome of {op} unknown: {why}"));
        orders::defer(&self.pool, self.worker, req.id, None, &d).await?;
        Ok(OrderOutcome::Unknown)
    }

    /// Sends a plan's steps in order, recording intent and outcome of each.
    async fn execute(
        &self,
        mut req: RefundRequest,
        plan: Plan,
        stop: &CancellationToken,
    ) -> Result<Next, StoreError> {
        for (i, step) in plan.steps.iter().copied().enumerate() {
            let completes_capture_reversal = plan.completes_capture_reversal || i > 0;
            if !completes_capture_reversal {
                if let Some(w) = self.settings.blackout.window_at(self.clock.now()) {
                    info!(window = %w, "blackout window: no money-moving call starts now");
                    let d = Deferral::next_pass(
                        format!("blackout window {w} (Asia/Taipei)"),
                        req.unknown.is_some(),
                    );
                    orders::defer(&self.pool, self.worker, req.id, None, &d).await?;
                    return Ok(Next::Done(OrderOutcome::Deferred));
                }
                if stop.is_cancelled() {
                    orders::release(&self.pool, self.worker, &[req.id]).await?;
                    return Ok(Next::Done(OrderOutcome::Released));
                }
            }
            // A call of unknown outcome is resent only after the recheck delay,
            // and only because a fresh inquiry shows it did not happen.
            if let Some((op, age)) = req.unknown {
                if op == step.operation() && age < self.settings.recheck {
                    let wait = self.settings.recheck - age;
                    return Ok(Next::Done(
                        self.wait_for_recheck(&req, op, wait, "the recheck delay has not passed")
                            .await?,
                    ));
                }
            }
            let op = step.operation();
            let amount = step.amount();
            let intent = GatewayEvent {
                kind: "intent",
                operation: Some(op.as_str()),
                amount: Some(amount),
                ..Default::default()
            };
            orders::record_intent(
                &self.pool,
                self.worker,
                req.id,
                self.settings.lease,
                &intent,
            )
            .await?;
            let started = Instant::now();
            let result = self.send(&req, step).await;
            let elapsed_ms = started.elapsed().as_millis() as i32;
            let mut ev = GatewayEvent {
                kind: "outcome",
                operation: Some(op.as_str()),
                amount: Some(amount),
                elapsed_ms: Some(elapsed_ms),
                ..Default::default()
            };
            match result {
                Ok(()) => {
                    ev.outcome = Some("accepted".into());
                    info!(
                        step = op.as_str(),
                        operation = op.as_str(),
                        amount,
                        elapsed_ms,
                        "bank accepted"
                    );
                    req.unknown = None;
                    if i + 1 == plan.steps.len() {
                        let v = Verdict::Refunded {
                            method: plan.method,
                            amount: plan.amount,
                        };
                        return Ok(Next::Done(self.conclude(&req, v, Some(&ev)).await?));
                    }
                    let reached = (step == Step::CaptureReversal).then_some(STEP_CAPTURE_REVERSED);
                    orders::record_step_done(&self.pool, self.worker, req.id, &ev, reached).await?;
                    if step == Step::CaptureReversal {
                        req.capture_reversed = true;
                    }
                }
                Err(CtbcError::Refused {
                    resp_code,
                    err_code,
                    message,
                    ..
                }) => {
                    ev.outcome = Some("refused".into());
                    ev.resp_code = Some(resp_code.clone());
                    ev.err_code = Some(err_code.clone());
                    ev.message = Some(message.clone());
                    info!(step = op.as_str(), operation = op.as_str(), resp_code = %resp_code, err_code = %err_code, elapsed_ms, "bank refused: {message}");
                    orders::record_step_done(&self.pool, self.worker, req.id, &ev, None).await?;
                    req.unknown = None;
                    let refusal = format!(
                        "{op} refused (RespCode {resp_code}, ErrCode {err_code}): {message}"
                    );
                    let v = match self.inquire(&req).await? {
                        Ok(bank) => after_refusal(&req, &bank, &refusal),
                        Err(e) => on_inquiry_error(&e),
                    };
                    return Ok(Next::Verdict(req, v));
                }
                Err(CtbcError::RefundAmountMismatch { asked, refunded }) => {
                    ev.outcome = Some("amount_mismatch".into());
                    let reason = format!(
                        "the bank refunded {} instead of the {} asked; needs a person",
                        refunded.amount, asked.amount
                    );
                    ev.message = Some(reason.clone());
                    warn!(
                        step = "failed",
                        operation = op.as_str(),
                        elapsed_ms,
                        "{reason}"
                    );
                    orders::fail(
                        &self.pool,
                        self.worker,
                        req.id,
                        Some(&ev),
                        &reason,
                        Some(refunded.amount),
                    )
                    .await?;
                    return Ok(Next::Done(OrderOutcome::Failed));
                }
                Err(CtbcError::Unavailable { reason, .. }) => {
                    // Nothing reached the bank: the call certainly did not happen.
                    ev.outcome = Some("unavailable".into());
                    ev.message = Some(reason.clone());
                    orders::record_step_done(&self.pool, self.worker, req.id, &ev, None).await?;
                    req.unknown = None;
                    return Ok(Next::Verdict(
                        req,
                        Verdict::Retry(format!("{op}: bank unavailable: {reason}")),
                    ));
                }
                Err(CtbcError::Invalid(e)) => {
                    let reason = format!("invalid {op} request, nothing sent: {e}");
                    ev.outcome = Some("invalid".into());
                    orders::record_step_done(&self.pool, self.worker, req.id, &ev, None).await?;
                    return Ok(Next::Verdict(req, Verdict::NeedsPerson(reason)));
                }
                Err(other) => {
                    // Ambiguous (or an answer we cannot read): the bank may have acted.
                    let reason = other.to_string();
                    ev.outcome = Some("ambiguous".into());
                    ev.message = Some(reason.clone());
                    warn!(step = op.as_str(), operation = op.as_str(), elapsed_ms, reason = %reason, "outcome unknown; asking the bank");
                    orders::record_event(&self.pool, self.worker, req.id, &ev).await?;
                    req.unknown = Some((op, Duration::ZERO));
                    for _ in 0..RECHECK_INQUIRIES {
                        let bank = match self.inquire(&req).await? {
                            Ok(b) => b,
                            Err(_) => continue,
                        };
                        return match after_ambiguous(&req, step, &bank) {
                            None => Ok(Next::Done(
                                self.wait_for_recheck(
                                    &req,
                                    op,
                                    self.settings.recheck,
                                    "the bank shows it did not happen (yet)",
                                )
                                .await?,
                            )),
                            Some(v) => {
                                let note = GatewayEvent {
                                    kind: "note",
                                    operation: Some(op.as_str()),
                                    outcome: Some("took_effect".into()),
                                    bank_state: Some(bank.state.code().to_string()),
                                    message: Some(format!("the bank shows the {op} took effect")),
                                    ..Default::default()
                                };
                                if matches!(v, Verdict::Act(_)) {
                                    let reached = (step == Step::CaptureReversal)
                                        .then_some(STEP_CAPTURE_REVERSED);
                                    orders::record_step_done(
                                        &self.pool,
                                        self.worker,
                                        req.id,
                                        &note,
                                        reached,
                                    )
                                    .await?;
                                    req.unknown = None;
                                    if step == Step::CaptureReversal {
                                        req.capture_reversed = true;
                                    }
                                }
                                Ok(Next::Verdict(req, v))
                            }
                        };
                    }
                    return Ok(Next::Done(
                        self.wait_for_recheck(
                            &req,
                            op,
                            self.settings.recheck,
                            "the bank could not be asked",
                        )
                        .await?,
                    ));
                }
            }
        }
        Ok(Next::Done(OrderOutcome::Deferred))
    }

    /// Sends one money-moving call.
    async fn send(&self, req: &RefundRequest, step: Step) -> Result<(), CtbcError> {
        let auth_code = req.auth_code.clone().ok_or_else(|| {
            CtbcError::Invalid(crate::ctbc::types::InvalidField::new(
                "auth_code",
                "the order has no auth code and the bank did not give one",
            ))
        })?;
        let original = req.money(req.authorised);
        match step {
            Step::Reversal { new_auth_amount } => self
                .client
                .reversal(&Reversal {
                    order_no: req.order_no.clone(),
                    xid: req.xid.clone(),
                    auth_code,
                    original,
                    new_auth_amount: req.money(new_auth_amount),
                })
                .await
                .map(|_| ()),
            Step::CaptureReversal => self
                .client
                .capture_reversal(&CaptureReversal {
                    order_no: req.order_no.clone(),
                    xid: req.xid.clone(),
                    auth_code,
                    original,
                    amount: req.money(0),
                })
                .await
                .map(|_| ()),
            Step::Refund { amount } => self
                .client
                .refund(&Refund {
                    order_no: req.order_no.clone(),
                    xid: req.xid.clone(),
                    auth_code,
                    original,
                    amount: req.money(amount),
                })
                .await
                .map(|_| ()),
        }
    }

    /// Asks the bank and appends the answer to the order's story. The outer
    /// error is the database's; the inner one the bank's.
    async fn inquire(&self, req: &RefundRequest) -> Result<Result<Inquiry, CtbcError>, StoreError> {
        let started = Instant::now();
        let result = self.client.inquiry(&req.order_no).await;
        let elapsed_ms = started.elapsed().as_millis() as i32;
        let mut ev = GatewayEvent {
            kind: "outcome",
            operation: Some(Operation::Inquiry.as_str()),
            elapsed_ms: Some(elapsed_ms),
            ..Default::default()
        };
        match &result {
            Ok(bank) => {
                ev.outcome = Some("accepted".into());
                ev.bank_state = Some(bank.state.code().to_string());
                ev.amount = bank.auth_amount.map(|m| m.amount);
                info!(
                    step = "inquiry",
                    operation = "inquiry",
                    bank_state = bank.state.code(),
                    elapsed_ms,
                    "bank answered"
                );
            }
            Err(e) => {
                ev.outcome = Some(e.kind().to_string());
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
        orders::record_event(&self.pool, self.worker, req.id, &ev).await?;
        Ok(result)
    }

    /// Inquires refunded orders until the bank settles their refund.
    async fn watch_settlements(
        &self,
        stop: &CancellationToken,
        counters: &Arc<PassCounters>,
        due_by: chrono::DateTime<chrono::Utc>,
        held: &Arc<Mutex<HashSet<i64>>>,
    ) -> Result<(), StoreError> {
        loop {
            if stop.is_cancelled() {
                return Ok(());
            }
            let rows = orders::claim_settlement_watch(
                &self.pool,
                self.worker,
                self.settings.lease,
                self.settings.batch_size,
                due_by,
            )
            .await?;
            if rows.is_empty() {
                return Ok(());
            }
            if let Ok(mut h) = held.lock() {
                h.extend(rows.iter().map(|r| r.id));
            }
            let results: Vec<Result<(), StoreError>> = futures::stream::iter(rows)
                .map(|row| {
                    let span = tracing::error_span!("settlement_watch", order_no = %row.order_no);
                    async move {
                        let r = self.watch_one(&row, counters).await;
                        if let Ok(mut h) = held.lock() {
                            h.remove(&row.id);
                        }
                        r
                    }
                    .instrument(span)
                })
                .buffer_unordered(self.settings.concurrency)
                .collect()
                .await;
            for r in results {
                match r {
                    Ok(()) | Err(StoreError::LeaseLost) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    async fn watch_one(&self, row: &OrderRow, counters: &PassCounters) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering::Relaxed;
        counters.watched.fetch_add(1, Relaxed);
        let order_no = match crate::ctbc::types::OrderNo::parse(&row.order_no) {
            Ok(o) => o,
            Err(_) => return Ok(()),
        };
        let started = Instant::now();
        let result = self.client.inquiry(&order_no).await;
        let mut ev = GatewayEvent {
            kind: "outcome",
            operation: Some("inquiry"),
            elapsed_ms: Some(started.elapsed().as_millis() as i32),
            ..Default::default()
        };
        let outcome = match &result {
            Ok(bank) => {
                ev.outcome = Some("accepted".into());
                ev.bank_state = Some(bank.state.code().to_string());
                match bank.state {
                    TxState::RefundSettled => Settlement::Settled,
                    TxState::RefundFailed => Settlement::Failed,
                    _ => Settlement::StillSettling,
                }
            }
            Err(e) => {
                ev.outcome = Some(e.kind().to_string());
                ev.message = Some(e.to_string());
                Settlement::StillSettling
            }
        };
        match outcome {
            Settlement::Settled => {
                counters.settled.fetch_add(1, Relaxed);
                info!(step = "settled", "the bank settled the refund");
            }
            Settlement::Failed => {
                counters.settlement_failed.fetch_add(1, Relaxed);
                warn!(
                    step = "failed",
                    "refund failed at settlement (state 23); needs a person"
                );
            }
            Settlement::StillSettling => {}
        }
        orders::record_settlement(
            &self.pool,
            self.worker,
            row.id,
            &ev,
            outcome,
            Duration::ZERO,
        )
        .await
    }
}

fn db_error_set(e: &Arc<Mutex<Option<StoreError>>>) -> bool {
    e.lock().map(|g| g.is_some()).unwrap_or(true)
}

fn set_db_error(slot: &Arc<Mutex<Option<StoreError>>>, e: StoreError) {
    if let Ok(mut g) = slot.lock() {
        if g.is_none() {
            *g = Some(e);
        }
    }
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
async fn renew_leases(
    pool: PgPool,
    worker: Uuid,
    lease: Duration,
    held: Arc<Mutex<HashSet<i64>>>,
    pass_over: CancellationToken,
) {
    let mut tick = tokio::time::interval((lease / 3).max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = pass_over.cancelled() => return,
            _ = tick.tick() => {}
        }
        let ids: Vec<i64> = held
            .lock()
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default();
        if let Err(e) = orders::renew_leases(&pool, worker, &ids, lease).await {
            warn!(error = %e, "could not renew leases");
        }
    }
}
