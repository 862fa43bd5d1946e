//! One attempt at one claimed order (`Attempt`): validated, inquired, and
//! carried along `domain::next_move`; a plan's money-moving calls sent with
//! every local check first, then the intent committed, then the call in its
//! turn (`turns`), then its outcome committed before the next step; a lost
//! answer is settled by asking the bank, never by sending again.

use super::bank::Bank;
use super::clock::Clock;
use super::recorder::Recorder;
use super::settings::EngineSettings;
use super::summary::OrderOutcome;
use super::turns::lease_outlasts_call;
use super::turns::Door;
use crate::ctbc::{CtbcError, Money, Operation};
use crate::domain::calls::prepare;
use crate::domain::calls::refused_locally;
use crate::domain::decide::{after_ambiguous, after_refusal, on_inquiry_error};
use crate::domain::decide::{Conclusion, Decision, Plan, Step};
use crate::domain::next_move::{decision_after, invalid_row, next_move, NextMove};
use crate::domain::next_move::{hold_before, learn_from_inquiry, Hold};
use crate::domain::record::OrderRecord;
use crate::domain::record::{Deferral, GatewayEvent};
use crate::domain::refund_request::{CallFate, OwnCall, RefundRequest};
use crate::domain::words::{CallOutcome, EventKind, StepReached};
use crate::store::intake::RequestNow;
use crate::store::intents::Intent;
use crate::store::StoreError;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

/// How many times an inquiry is repeated at once after a call of unknown outcome.
const RECHECK_INQUIRIES: usize = 2;

/// Why a call whose intent is on record was held back at the moment of sending.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum NotSent {
    #[error("blackout window {0} (Asia/Taipei) began while the call waited for its turn; nothing was sent, the next pass sends it")]
    Blackout(String),
    #[error("refundd is stopping; nothing was sent, the next pass sends it")]
    Stopping,
    #[error("{0}; nothing was sent")]
    BankKeys(String),
    #[error("the lease ({} s, worker.lease_secs) cannot outlast one call ({:.1} s: ctbc.timeout_secs and the wait for ctbc.max_requests_per_sec); nothing was sent: raise worker.lease_secs", .1.as_secs(), .0.as_secs_f64())]
    LeaseTooShort(Duration, Duration),
}

/// The log line of an accepted call, in what it moved: the amount given
/// back (`amount_back`), and for a reversal the authorisation that remains
/// (`auth_remaining`, the call's AuthNewAmt: 0 for a whole one) under a name
/// of its own; a capture reversal takes the capture out of the file
/// (`capture_reversed`), and the reversal after it gives the money back, so
/// the `amount_back` of an order's lines add up to what it got back.
fn log_accepted(step: Step, authorised: Money, ev: &GatewayEvent) {
    let authorised = authorised.amount();
    let (amount_back, auth_remaining, capture_reversed) = match step {
        Step::CaptureReversal => (None, None, Some(authorised)),
        Step::Reversal { new_auth_amount } => (
            Some(authorised - new_auth_amount.amount()),
            Some(new_auth_amount.amount()),
            None,
        ),
        Step::Refund { amount } => (Some(amount.amount()), None, None),
    };
    let op = step.operation();
    info!(
        step = op.as_str(),
        operation = op.as_str(),
        amount_back,
        auth_remaining,
        capture_reversed,
        elapsed_ms = ev.elapsed_ms,
        "bank accepted"
    );
}

/// One attempt at one claimed order, with the parts it needs: the bank, what
/// it writes, the settings and the clock.
pub(super) struct Attempt<'a> {
    pub(super) bank: &'a Bank,
    pub(super) recorder: &'a Recorder,
    pub(super) settings: &'a EngineSettings,
    pub(super) clock: &'a dyn Clock,
    pub(super) worker: Uuid,
}

/// How an attempt at one order goes on after a step.
pub(super) enum Next {
    Decision(Box<RefundRequest>, Decision),
    Done(OrderOutcome),
}

impl Attempt<'_> {
    /// One attempt at one order: validate, inquire, decide, act, along the
    /// one path `refundd plan` prints (`next_move`).
    pub(super) async fn work(
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
                let wb = self.recorder.store.fail(&lease, &[], &reason, None).await?;
                self.recorder.note_write_back(&wb);
                return Ok(OrderOutcome::Failed);
            }
        };
        let answer = self.bank.inquire(&mut req).await;
        if let Ok(bank) = &answer {
            if let Some(took_effect) = learn_from_inquiry(&mut req, bank) {
                self.recorder
                    .record_capture_reversal_fate(&mut req, bank, took_effect)
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
                        NextMove::Record(r) => {
                            Next::Done(self.recorder.carry_out(&req, r, None).await?)
                        }
                    }
                }
            };
        }
    }

    /// Sends a plan's steps in order, recording intent and outcome of each.
    pub(super) async fn execute(
        &self,
        mut req: RefundRequest,
        plan: Plan,
        stop: &CancellationToken,
    ) -> Result<Next, StoreError> {
        for (i, step) in plan.steps.iter().copied().enumerate() {
            if let Some(done) = self.may_not_start(&req, &plan, i, stop).await? {
                return Ok(Next::Done(done));
            }
            let call = match prepare(&req, step) {
                Ok(c) => c,
                Err(e) => {
                    // An earlier step's outcome first, as its own record.
                    if let Some(reached) = req.step_unrecorded.take() {
                        self.recorder
                            .record_step_done(&mut req, Some(reached))
                            .await?;
                    }
                    let reason = refused_locally(step, &e);
                    return Ok(Next::Decision(
                        Box::new(req),
                        Conclusion::NeedsPerson(reason).into(),
                    ));
                }
            };
            let op = step.operation();
            let intent = GatewayEvent {
                kind: EventKind::Intent,
                operation: Some(op),
                amount: Some(step.minor_units()),
                ..Default::default()
            };
            let amounts = (plan.amount, req.authorised, req.refund);
            let lease_for = self.settings.lease;
            let (earlier, reached) = (&req.unrecorded, req.step_unrecorded);
            let renewed = Instant::now();
            match self
                .recorder
                .store
                .record_intent(&req.lease, lease_for, earlier, reached, &intent, amounts)
                .await?
            {
                Intent::Recorded => {
                    req.unrecorded.clear();
                    req.step_unrecorded = None;
                }
                Intent::ShopChanged => return self.shop_changed(&req).await.map(Next::Done),
            }
            let turn = self.bank.turn().await;
            if let Some(why) = self.closed_while_waiting(&plan, i, stop) {
                drop(turn);
                return self.not_sent(&req, op, why).await.map(Next::Done);
            }
            if let Door::LeaseTooShort(call) = lease_outlasts_call(
                &self.recorder.store,
                &req.lease,
                renewed,
                (self.settings.lease, self.bank.longest_call()),
            )
            .await?
            {
                drop(turn);
                let why = NotSent::LeaseTooShort(call, self.settings.lease);
                return self.not_sent(&req, op, why).await.map(Next::Done);
            }
            req.own_calls.push(OwnCall {
                operation: op,
                amount: step.call_amount(req.currency),
                fate: CallFate::Unknown,
                sent_at: chrono::Utc::now(),
            });
            let started = Instant::now();
            let result = self.bank.send(&call).await;
            drop(turn);
            let elapsed_ms = started.elapsed().as_millis() as i32;
            let mut ev = GatewayEvent {
                kind: EventKind::Outcome,
                operation: Some(op),
                amount: Some(step.minor_units()),
                elapsed_ms: Some(elapsed_ms),
                ..Default::default()
            };
            match result {
                Ok(references) if i + 1 == plan.steps.len() => {
                    ev.references = references;
                    mark_last_call(&mut req, CallFate::Accepted);
                    return self.accepted_last(req, &plan, ev).await;
                }
                Ok(references) => {
                    ev.references = references;
                    self.accepted_step(&mut req, step, ev)
                }
                Err(e) => return self.not_accepted(req, step, ev, e).await,
            }
        }
        Ok(Next::Done(OrderOutcome::Deferred))
    }

    /// Before anything was sent, the shop withdrew the request or changed its
    /// amounts: nothing is sent on the old request.
    async fn shop_changed(&self, req: &RefundRequest) -> Result<OrderOutcome, StoreError> {
        match self.recorder.store.recheck_request(&req.lease).await? {
            RequestNow::Withdrawn => {
                info!(
                    step = "withdrawn",
                    "the shop withdrew the request before anything was sent; nothing sent"
                );
                Ok(OrderOutcome::Withdrawn)
            }
            RequestNow::Changed => {
                info!(step = "changed", "the shop changed the request before anything was sent; it is worked again with the new values");
                Ok(OrderOutcome::Released)
            }
        }
    }

    /// Whether step `i` must not start now: a blackout window or a stop for a
    /// step that touches the capture file, or a call of unknown outcome whose
    /// recheck delay has not passed.
    async fn may_not_start(
        &self,
        req: &RefundRequest,
        plan: &Plan,
        i: usize,
        stop: &CancellationToken,
    ) -> Result<Option<OrderOutcome>, StoreError> {
        let step = plan.steps[i];
        let completes_capture_reversal = plan.completes_capture_reversal || i > 0;
        if !completes_capture_reversal {
            if let Some(w) = self.settings.blackout.window_at(self.clock.now()) {
                info!(window = %w, "blackout window: no money-moving call starts now");
                let d = Deferral::next_pass(
                    format!("blackout window {w} (Asia/Taipei)"),
                    req.unknown.is_some(),
                );
                self.recorder
                    .store
                    .defer(&req.lease, &req.story_with(None), &d)
                    .await?;
                return Ok(Some(OrderOutcome::Deferred));
            }
            if stop.is_cancelled() {
                self.recorder.store.release(&[req.lease]).await?;
                return Ok(Some(OrderOutcome::Released));
            }
        }
        // A call of unknown outcome is resent only after the recheck delay,
        // and only because a fresh inquiry shows it did not happen.
        if let Some(Hold::RecheckDelay { operation, left }) =
            hold_before(req, step, self.settings.recheck)
        {
            let why = "the recheck delay has not passed";
            return Ok(Some(
                self.recorder
                    .wait_for_recheck(req, operation, left, why)
                    .await?,
            ));
        }
        Ok(None)
    }

    /// What closed while a call waited for its turn, after its intent was
    /// committed: the bank's answers showing our keys are wrong (nothing is
    /// sent whose answer could not be read), or a blackout window or a stop,
    /// for a step that touches the capture file (the reversal completing a
    /// capture reversal goes on).
    fn closed_while_waiting(
        &self,
        plan: &Plan,
        i: usize,
        stop: &CancellationToken,
    ) -> Option<NotSent> {
        if let Some(why) = self.bank.keys_look_wrong() {
            return Some(NotSent::BankKeys(why));
        }
        if plan.completes_capture_reversal || i > 0 {
            return None;
        }
        if let Some(w) = self.settings.blackout.window_at(self.clock.now()) {
            return Some(NotSent::Blackout(w.to_string()));
        }
        stop.is_cancelled().then_some(NotSent::Stopping)
    }

    /// A call whose intent is on record is not sent after all: that is
    /// recorded (its outcome is no longer unknown) with the deferral, in one
    /// fenced write, and the order waits for the next pass.
    async fn not_sent(
        &self,
        req: &RefundRequest,
        op: Operation,
        why: NotSent,
    ) -> Result<OrderOutcome, StoreError> {
        let reason = why.to_string();
        info!(
            step = op.as_str(),
            operation = op.as_str(),
            "not sent: {reason}"
        );
        let ev = GatewayEvent {
            kind: EventKind::Outcome,
            operation: Some(op),
            outcome: Some(CallOutcome::NotSent),
            message: Some(reason.clone()),
            ..Default::default()
        };
        let d = Deferral::next_pass(reason, false);
        self.recorder.store.defer(&req.lease, &[ev], &d).await?;
        Ok(match why {
            NotSent::Stopping => OrderOutcome::Released,
            NotSent::Blackout(_) | NotSent::LeaseTooShort(..) | NotSent::BankKeys(_) => {
                OrderOutcome::Deferred
            }
        })
    }

    /// The last step was accepted: the order is refunded, with its outcome.
    async fn accepted_last(
        &self,
        mut req: RefundRequest,
        plan: &Plan,
        mut ev: GatewayEvent,
    ) -> Result<Next, StoreError> {
        let last = plan.steps[plan.steps.len() - 1];
        ev.outcome = Some(CallOutcome::Accepted);
        log_accepted(last, req.authorised, &ev);
        req.unknown = None;
        let v = Conclusion::Refunded {
            method: plan.method,
            amount: plan.amount,
        };
        Ok(Next::Done(
            self.recorder.conclude(&req, v, Some(&ev)).await?,
        ))
    }

    /// A step before the last was accepted: its outcome (and for a capture
    /// reversal the step reached) goes on record with the next call's intent,
    /// committed before that call is sent.
    fn accepted_step(&self, req: &mut RefundRequest, step: Step, mut ev: GatewayEvent) {
        ev.outcome = Some(CallOutcome::Accepted);
        log_accepted(step, req.authorised, &ev);
        mark_last_call(req, CallFate::Accepted);
        req.unknown = None;
        // Recorded with the next call's intent (`step_unrecorded`).
        req.unrecorded.push(ev);
        if step == Step::CaptureReversal {
            req.step_unrecorded = Some(StepReached::CaptureReversed);
            req.capture_reversed = true;
        }
    }

    /// The bank refused, could not be reached, took another amount, or its
    /// answer was lost.
    async fn not_accepted(
        &self,
        mut req: RefundRequest,
        step: Step,
        mut ev: GatewayEvent,
        err: CtbcError,
    ) -> Result<Next, StoreError> {
        let op = step.operation();
        match err {
            CtbcError::Refused {
                resp_code,
                err_code,
                message,
                ..
            } => {
                ev.outcome = Some(CallOutcome::Refused);
                ev.resp_code = Some(resp_code.clone());
                ev.err_code = Some(err_code.clone());
                ev.message = Some(message.clone());
                info!(step = op.as_str(), operation = op.as_str(), resp_code = %resp_code, err_code = %err_code, elapsed_ms = ev.elapsed_ms, "bank refused: {message}");
                forget_last_call(&mut req);
                self.recorder.record_step(&mut req, ev, None).await?;
                let refusal =
                    format!("{op} refused (RespCode {resp_code}, ErrCode {err_code}): {message}");
                let v = match self.bank.inquire(&mut req).await {
                    Ok(bank) => after_refusal(&req, &bank, &refusal),
                    Err(e) => on_inquiry_error(&e),
                };
                Ok(Next::Decision(Box::new(req), v.into()))
            }
            CtbcError::RefundAmountMismatch { asked, refunded } => {
                // The event carries what the bank moved, so the story keeps it.
                ev.outcome = Some(CallOutcome::AmountMismatch);
                ev.amount = Some(refunded.amount());
                let reason = format!(
                    "the bank refunded {} instead of the {} asked; needs a person",
                    refunded.amount(),
                    asked.amount()
                );
                ev.message = Some(reason.clone());
                warn!(
                    step = "failed",
                    operation = op.as_str(),
                    elapsed_ms = ev.elapsed_ms,
                    "{reason}"
                );
                mark_last_call(&mut req, CallFate::AcceptedAs(refunded));
                self.recorder
                    .fail(&req, Some(&ev), &reason, Some(refunded))
                    .await
                    .map(Next::Done)
            }
            CtbcError::Unavailable { reason, .. } => {
                // Nothing reached the bank: the call certainly did not happen.
                ev.outcome = Some(CallOutcome::Unavailable);
                ev.message = Some(reason.clone());
                forget_last_call(&mut req);
                self.recorder.record_step(&mut req, ev, None).await?;
                req.unknown = None;
                let v = Conclusion::Retry(format!("{op}: bank unavailable: {reason}"));
                Ok(Next::Decision(Box::new(req), v.into()))
            }
            CtbcError::Invalid(e) => {
                let reason = format!("invalid {op} request, nothing sent: {e}");
                ev.outcome = Some(CallOutcome::Invalid);
                forget_last_call(&mut req);
                self.recorder.record_step(&mut req, ev, None).await?;
                Ok(Next::Decision(
                    Box::new(req),
                    Conclusion::NeedsPerson(reason).into(),
                ))
            }
            other => self.lost_answer(req, step, ev, other).await,
        }
    }

    /// Ambiguous (or an answer we cannot read): the bank may have acted. Ask
    /// it; never send the call again in this attempt.
    async fn lost_answer(
        &self,
        mut req: RefundRequest,
        step: Step,
        mut ev: GatewayEvent,
        err: CtbcError,
    ) -> Result<Next, StoreError> {
        let op = step.operation();
        let reason = err.to_string();
        ev.outcome = Some(CallOutcome::Ambiguous);
        ev.message = Some(reason.clone());
        warn!(step = op.as_str(), operation = op.as_str(), elapsed_ms = ev.elapsed_ms, reason = %reason, "outcome unknown; asking the bank");
        req.unrecorded.push(ev);
        self.recorder
            .store
            .record_events(&req.lease, &req.unrecorded)
            .await?;
        req.unrecorded.clear();
        req.unknown = Some((op, Duration::ZERO));
        for _ in 0..RECHECK_INQUIRIES {
            let bank = match self.bank.inquire(&mut req).await {
                Ok(b) => b,
                Err(_) => continue,
            };
            let Some(v) = after_ambiguous(&req, step, &bank) else {
                let why = "the bank shows it did not happen (yet)";
                let done = self
                    .recorder
                    .wait_for_recheck(&req, op, self.settings.recheck, why);
                return Ok(Next::Done(done.await?));
            };
            if step == Step::CaptureReversal && matches!(v, Decision::Act(_)) {
                if let Some(took_effect) = learn_from_inquiry(&mut req, &bank) {
                    self.recorder
                        .record_capture_reversal_fate(&mut req, &bank, took_effect)
                        .await?;
                }
            }
            return Ok(Next::Decision(Box::new(req), v));
        }
        let why = "the bank could not be asked";
        let done = self
            .recorder
            .wait_for_recheck(&req, op, self.settings.recheck, why);
        Ok(Next::Done(done.await?))
    }
}

/// The call just sent (the last of `own_calls`) ended as `fate`.
fn mark_last_call(req: &mut RefundRequest, fate: CallFate) {
    if let Some(c) = req.own_calls.last_mut() {
        c.fate = fate;
    }
}

/// The call just sent certainly did not happen.
fn forget_last_call(req: &mut RefundRequest) {
    req.own_calls.pop();
}
