//! What a pass writes about an order it worked: its conclusion (refunded, a
//! wait, a retry with backoff, a person), a step's outcome, the fate of a
//! capture reversal learned later, and the operator told of a write-back the
//! shop refused. Every write goes through the store, fenced by the claim.

use super::settings::EngineSettings;
use super::summary::OrderOutcome;
use crate::ctbc::{Inquiry, Money, Operation};
use crate::domain::decide::Conclusion;
use crate::domain::next_move::{record, with_unconfirmed_calls, Record};
use crate::domain::record::{Deferral, GatewayEvent};
use crate::domain::refund_request::RefundRequest;
use crate::domain::words::{CallOutcome, EventKind, RefundMethod, StepReached};
use crate::store::writeback::WriteBack;
use crate::store::{Store, StoreError};
use std::time::Duration;
use tracing::{info, warn};

/// The store and the settings a conclusion is written with.
#[derive(Debug, Clone)]
pub(super) struct Recorder {
    pub(super) store: Store,
    pub(super) settings: EngineSettings,
}

impl Recorder {
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
    pub(super) async fn carry_out(
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
                    amount = amount.amount(),
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
    pub(super) async fn retry_later(
        &self,
        req: &RefundRequest,
        ev: Option<&GatewayEvent>,
        reason: String,
        attempts: u32,
    ) -> Result<OrderOutcome, StoreError> {
        let mut delay = super::pass::backoff(
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
        refunded_amount: Option<Money>,
    ) -> Result<OrderOutcome, StoreError> {
        let reason = with_unconfirmed_calls(reason.to_string(), &req.own_calls);
        self.fail_as_is(req, ev, reason, refunded_amount).await
    }

    /// `refund_failed` with a reason that already names the unconfirmed calls.
    pub(super) async fn fail_as_is(
        &self,
        req: &RefundRequest,
        ev: Option<&GatewayEvent>,
        reason: String,
        refunded_amount: Option<Money>,
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

    /// Commits what the bank's state showed of a capture reversal of unknown
    /// outcome (`next_move::learn_from_inquiry`): out of the capture file, it
    /// took effect and its step is committed (so the completing reversal keeps
    /// its exemption and the order its method); settled or beyond, it did not.
    pub(super) async fn record_capture_reversal_fate(
        &self,
        req: &mut RefundRequest,
        bank: &Inquiry,
        took_effect: bool,
    ) -> Result<(), StoreError> {
        let op = Operation::CaptureReversal;
        let state = bank.state.code();
        let (outcome, verb) = if took_effect {
            (CallOutcome::TookEffect, "took effect")
        } else {
            (CallOutcome::DidNotTakeEffect, "did not take effect")
        };
        let note = GatewayEvent {
            kind: EventKind::Note,
            operation: Some(op),
            outcome: Some(outcome),
            bank_state: Some(state.to_string()),
            message: Some(format!("the bank shows the {op} {verb} (state {state})")),
            ..Default::default()
        };
        let reached = took_effect.then_some(StepReached::CaptureReversed);
        self.record_step(req, note, reached).await
    }

    /// Commits a step's outcome (or a note about it), with the step reached,
    /// after what the attempt learned and had not yet written.
    pub(super) async fn record_step(
        &self,
        req: &mut RefundRequest,
        ev: GatewayEvent,
        reached: Option<StepReached>,
    ) -> Result<(), StoreError> {
        req.unrecorded.push(ev);
        self.record_step_done(req, reached).await
    }

    /// Commits what the attempt learned and had not yet written, with the step reached.
    pub(super) async fn record_step_done(
        &self,
        req: &mut RefundRequest,
        reached: Option<StepReached>,
    ) -> Result<(), StoreError> {
        self.store
            .record_step_done(&req.lease, &req.unrecorded, reached)
            .await?;
        req.unrecorded.clear();
        Ok(())
    }
}

fn unknown_or_deferred(req: &RefundRequest) -> OrderOutcome {
    if req.unknown.is_some() {
        OrderOutcome::Unknown
    } else {
        OrderOutcome::Deferred
    }
}
