//! `refundd cancel-refund`: a refund refundd made, cancelled before the
//! bank's batch at an operator's request (staff refunded the wrong amount
//! and want it undone the same day). Only a refund of settled money that
//! refundd's own call made, only while a fresh inquiry shows it not yet in
//! the batch (state 20), never in a blackout window, and under the rules of
//! every money-moving call: the intent committed first, an unknown outcome
//! settled by asking the bank, never by sending again blindly.

use super::bank::{Bank, Banks};
use super::clock::Clock;
use super::settings::EngineSettings;
use crate::ctbc::{CtbcError, Inquiry, Merchants, Operation, RefundPlace, RefundReversal, TxState};
use crate::domain::bank::Money;
use crate::domain::record::{GatewayEvent, Lease};
use crate::domain::refund_id::RefundId;
use crate::domain::refund_request::RefundRequest;
use crate::domain::words::{CallOutcome, EventKind, RefundMethod, RefundStatus};
use crate::store::cancels::{CancelClaim, RefundToCancel};
use crate::store::writeback::WriteBack;
use crate::store::{Store, StoreError};
use std::time::Duration;
use uuid::Uuid;

/// Which refund to cancel, who asked (the operating-system user) and why.
#[derive(Debug, Clone)]
pub struct CancelOrder {
    pub order_no: String,
    pub refund_id: RefundId,
    pub asked_by: String,
    pub reason: String,
}

/// A refund cancelled: the money stays with the shop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancelled {
    /// What the refund had given back, now not given.
    pub amount: Money,
    /// Whether the shop's `on_cancelled` took it (else it is retried every pass).
    pub write_back: WriteBack,
}

/// Why a refund was not cancelled.
#[derive(Debug, thiserror::Error)]
pub enum NotCancelled {
    #[error("refundd has no record of {0}; check the order number (and --refund for an order with several refunds)")]
    NoSuchRefund(String),
    #[error("{0}")]
    NotCancellable(String),
    #[error("the refund is in the bank's batch: it can no longer be cancelled (the bank shows state {0})")]
    InBatch(String),
    #[error("it is inside the blackout window {0} (Asia/Taipei), when the bank refuses changes to its batch files; nothing was sent: try again after it")]
    Blackout(String),
    #[error("another worker holds this refund right now (a pass or its settlement watch); nothing was sent: try again in a minute")]
    Held,
    #[error("the bank refused to cancel the refund: {0}")]
    Refused(String),
    #[error("{0}")]
    OutcomeUnknown(String),
    #[error("cannot ask the bank: {0}; nothing was sent")]
    Bank(#[source] CtbcError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl NotCancelled {
    /// Exit 2 for what no retry changes (the command's input or the
    /// refund's state), 1 for what may pass.
    pub fn exit_code(&self) -> u8 {
        match self {
            NotCancelled::NoSuchRefund(_)
            | NotCancelled::NotCancellable(_)
            | NotCancelled::InBatch(_)
            | NotCancelled::Blackout(_) => 2,
            _ => 1,
        }
    }
}

/// The lease a cancellation holds: it outlasts an inquiry and the call.
const CANCEL_LEASE: Duration = Duration::from_secs(300);

/// Cancels one refund refundd made, if the bank still can.
pub async fn cancel_refund(
    store: &Store,
    merchants: &Merchants,
    settings: &EngineSettings,
    clock: &dyn Clock,
    order: &CancelOrder,
) -> Result<Cancelled, NotCancelled> {
    if let Some(w) = settings.blackout.window_at(clock.now()) {
        return Err(NotCancelled::Blackout(w.to_string()));
    }
    let worker = Uuid::new_v4();
    let keys = (order.order_no.as_str(), &order.refund_id);
    let taken = match store.claim_for_cancel(keys, worker, CANCEL_LEASE).await? {
        CancelClaim::NoSuchRefund => {
            let which = format!("a refund{} of order {}", order.refund_id, order.order_no);
            return Err(NotCancelled::NoSuchRefund(which));
        }
        CancelClaim::Held => return Err(NotCancelled::Held),
        CancelClaim::Taken(t) => t,
    };
    let lease = taken.record.lease(worker);
    let banks = Banks::new(merchants, 1);
    let cancellation = Cancellation {
        store,
        banks: &banks,
        taken: &taken,
        lease,
        order,
        events: Vec::new(),
    };
    let result = cancellation.run().await;
    if let Err(e) = &result {
        // Whatever stopped it, the story says so and the refund goes back
        // to the settlement watch (a lease already given back stays so).
        if !matches!(e, NotCancelled::Store(_)) {
            let note = GatewayEvent {
                kind: EventKind::Note,
                message: Some(format!(
                    "cancel-refund asked by {} ({}) did not cancel the refund: {e}",
                    order.asked_by, order.reason
                )),
                ..Default::default()
            };
            let _ = store.cancel_not_done(&lease, &[note], true).await;
        }
    }
    result
}

/// One cancellation in progress: the refund, its lease and its story so far.
struct Cancellation<'a> {
    store: &'a Store,
    banks: &'a Banks,
    taken: &'a RefundToCancel,
    lease: Lease,
    order: &'a CancelOrder,
    events: Vec<GatewayEvent>,
}

impl Cancellation<'_> {
    /// Checks the record, asks the bank, sends the refund reversal and
    /// records what came of it.
    async fn run(mut self) -> Result<Cancelled, NotCancelled> {
        let (req, amount, place) = self.cancellable()?;
        let bank = self
            .banks
            .of_record(&self.taken.record)
            .map_err(NotCancelled::NotCancellable)?;
        let state = self.ask(bank, &req).await?;
        if self.taken.record.unknown_operation == Some(Operation::RefundReversal) {
            // An earlier cancellation's call whose outcome is unknown: the
            // bank's state settles it before anything is sent again.
            match settled_by(&state, &req) {
                Some(true) => return self.finish(amount, CallOutcome::TookEffect).await,
                Some(false) => self.note(CallOutcome::DidNotTakeEffect, "the earlier cancellation did not take effect: the refund still stands"),
                None => return Err(NotCancelled::OutcomeUnknown(format!(
                    "an earlier cancellation of this refund has an unknown outcome, and the bank's state {} cannot tell whether it took effect; nothing was sent: check the refund with the bank",
                    state.code()
                ))),
            }
        }
        match state {
            TxState::RefundSettling => {}
            TxState::RefundBatchRunning | TxState::RefundSettled => {
                return Err(NotCancelled::InBatch(state.code().to_string()))
            }
            other => {
                return Err(NotCancelled::NotCancellable(format!(
                    "the bank shows state {} for the order, not a refund waiting for its batch (20); nothing was sent",
                    other.code()
                )))
            }
        }
        self.send(bank, &req, amount, &place).await
    }

    /// A fresh inquiry in a turn, about the refunded authorisation; its
    /// answer goes into the story with the next write.
    async fn ask(&mut self, bank: &Bank, req: &RefundRequest) -> Result<TxState, NotCancelled> {
        let turn = bank.turn().await;
        let asked = bank.inquiry(&req.order_no, &req.xid).await;
        drop(turn);
        let mut ev = GatewayEvent {
            kind: EventKind::Outcome,
            operation: Some(Operation::Inquiry),
            ..Default::default()
        };
        let answer: Result<Inquiry, CtbcError> = asked;
        match &answer {
            Ok(inq) => {
                ev.outcome = Some(CallOutcome::Accepted);
                ev.bank_state = Some(inq.state.code().to_string());
            }
            Err(e) => {
                ev.outcome = Some(CallOutcome::of_error(e));
                ev.message = Some(e.to_string());
            }
        }
        self.events.push(ev);
        let inq = answer.map_err(NotCancelled::Bank)?;
        if inq.xid.as_ref() != Some(&req.xid) {
            return Err(NotCancelled::NotCancellable(
                "the bank's answer is about another authorisation of the order number than the refunded one; nothing was sent: check the order with the bank".into(),
            ));
        }
        Ok(inq.state)
    }

    /// The intent committed, then the refund reversal naming where the bank
    /// filed the refund (`OrgAmt` the refund's amount, `CredRevAmt` zero).
    async fn send(
        mut self,
        bank: &Bank,
        req: &RefundRequest,
        amount: Money,
        place: &RefundPlace,
    ) -> Result<Cancelled, NotCancelled> {
        let call = RefundReversal {
            order_no: req.order_no.clone(),
            xid: req.xid.clone(),
            auth_code: req.auth_code.clone().ok_or_else(|| {
                NotCancelled::NotCancellable("the record has no auth code, which a refund reversal must carry; nothing was sent".into())
            })?,
            original: amount,
            amount: Money::zero(req.currency),
        };
        self.events.push(GatewayEvent {
            kind: EventKind::Intent,
            operation: Some(Operation::RefundReversal),
            amount: Some(amount.amount()),
            message: Some(format!(
                "cancel-refund asked by {}: {}",
                self.order.asked_by, self.order.reason
            )),
            ..Default::default()
        });
        let events = std::mem::take(&mut self.events);
        self.store
            .record_cancel_intent(&self.lease, &events, CANCEL_LEASE)
            .await?;
        let turn = bank.turn().await;
        let sent = bank.cancel_refund(&call, place).await;
        drop(turn);
        match sent {
            Ok(()) => self.finish(amount, CallOutcome::Accepted).await,
            Err(e) => self.after_error(bank, req, amount, e).await,
        }
    }

    /// The bank did not say yes: a refusal is final; anything else is
    /// settled by asking again, never by sending again.
    async fn after_error(
        mut self,
        bank: &Bank,
        req: &RefundRequest,
        amount: Money,
        e: CtbcError,
    ) -> Result<Cancelled, NotCancelled> {
        self.events.push(outcome_of_error(&e));
        if matches!(
            e,
            CtbcError::Refused { .. } | CtbcError::UnknownOrder { .. } | CtbcError::Invalid(_)
        ) {
            let events = std::mem::take(&mut self.events);
            self.store
                .cancel_not_done(&self.lease, &events, false)
                .await?;
            return Err(NotCancelled::Refused(e.to_string()));
        }
        let state = match self.ask(bank, req).await {
            Ok(state) => state,
            Err(_) => return self.unknown("the bank could not be asked afterwards").await,
        };
        match settled_by(&state, req) {
            Some(true) => self.finish(amount, CallOutcome::TookEffect).await,
            Some(false) => {
                self.note(
                    CallOutcome::DidNotTakeEffect,
                    "the refund reversal did not take effect: the refund still stands",
                );
                let events = std::mem::take(&mut self.events);
                self.store
                    .cancel_not_done(&self.lease, &events, false)
                    .await?;
                Err(NotCancelled::OutcomeUnknown(format!(
                    "the bank's answer was lost ({e}), and a fresh inquiry shows the refund still standing (state {}): it was not cancelled; run cancel-refund again to retry",
                    state.code()
                )))
            }
            None => {
                self.unknown(&format!("the bank shows state {}", state.code()))
                    .await
            }
        }
    }

    /// The call's outcome stays unknown on the record; the next
    /// cancel-refund (or a person) settles it by asking the bank.
    async fn unknown(mut self, why: &str) -> Result<Cancelled, NotCancelled> {
        let events = std::mem::take(&mut self.events);
        self.store
            .cancel_not_done(&self.lease, &events, true)
            .await?;
        Err(NotCancelled::OutcomeUnknown(format!(
            "the bank's answer to the refund reversal was lost and {why}, which cannot tell whether the refund was cancelled; nothing more was sent: run cancel-refund again later, it asks the bank first"
        )))
    }

    /// The refund is cancelled: `cancelled`, with who asked and why, and
    /// the shop told through `on_cancelled`.
    async fn finish(mut self, amount: Money, how: CallOutcome) -> Result<Cancelled, NotCancelled> {
        self.events.push(GatewayEvent {
            kind: EventKind::Outcome,
            operation: Some(Operation::RefundReversal),
            outcome: Some(how),
            amount: Some(amount.amount()),
            ..Default::default()
        });
        let reason = format!(
            "cancelled before the bank's batch at the request of {}: {}",
            self.order.asked_by, self.order.reason
        );
        let write_back = self
            .store
            .finish_cancelled(&self.lease, &self.events, amount, &reason)
            .await?;
        Ok(Cancelled { amount, write_back })
    }

    fn note(&mut self, outcome: CallOutcome, message: &str) {
        self.events.push(GatewayEvent {
            kind: EventKind::Note,
            operation: Some(Operation::RefundReversal),
            outcome: Some(outcome),
            message: Some(message.into()),
            ..Default::default()
        });
    }
}

/// The outcome event of a refund reversal the bank did not accept.
fn outcome_of_error(e: &CtbcError) -> GatewayEvent {
    let mut ev = GatewayEvent {
        kind: EventKind::Outcome,
        operation: Some(Operation::RefundReversal),
        outcome: Some(CallOutcome::of_error(e)),
        message: Some(e.to_string()),
        ..Default::default()
    };
    if let CtbcError::Refused {
        resp_code,
        err_code,
        ..
    }
    | CtbcError::UnknownOrder {
        resp_code,
        err_code,
        ..
    } = e
    {
        ev.resp_code = Some(resp_code.clone());
        ev.err_code = Some(err_code.clone());
    }
    ev
}

/// What the bank's state says of a refund reversal of ours whose outcome is
/// unknown: `Some(true)` the refund is gone (12, or 22 only where the
/// order's earlier refunds explain it: then it cannot tell), `Some(false)`
/// it still stands (20, or its own settlement 22), `None` it cannot tell.
fn settled_by(state: &TxState, req: &RefundRequest) -> Option<bool> {
    match state {
        TxState::Settled => Some(true),
        TxState::RefundSettling => Some(false),
        TxState::RefundSettled if !req.others_refunded() => Some(false),
        _ => None,
    }
}

impl Cancellation<'_> {
    /// The record as a cancellation needs it: a refund of settled money
    /// that refundd's own accepted call made, filed where the bank said.
    fn cancellable(&self) -> Result<(RefundRequest, Money, RefundPlace), NotCancelled> {
        let r = &self.taken.record;
        let not = |why: String| Err(NotCancelled::NotCancellable(why));
        if r.status != RefundStatus::Refunded {
            return not(format!(
                "the refund is {}; only a refund refundd made (refunded) can be cancelled",
                r.status.as_str()
            ));
        }
        if r.refund_method != Some(RefundMethod::Refund) {
            return not(format!(
                "the money went back by {}, which the bank cannot take back; only a refund of settled money can be cancelled",
                r.refund_method.map_or("an unknown method", RefundMethod::as_str)
            ));
        }
        let Some((batch_id, batch_seq)) = &self.taken.filed_at else {
            return not("refundd holds no answer of the bank saying where it filed this refund (BatchID, BatchSeq), which a cancellation names it by; nothing was sent".into());
        };
        let place = RefundPlace::parse(batch_id, batch_seq).map_err(|e| {
            NotCancelled::NotCancellable(format!(
                "where the bank filed the refund cannot be sent back to it: {e}; nothing was sent"
            ))
        })?;
        let req = RefundRequest::validate(r, self.lease)
            .map_err(|p| NotCancelled::NotCancellable(p.reason))?;
        let amount = Money::new(req.currency, r.refunded_amount.unwrap_or(0))
            .map_err(|e| NotCancelled::NotCancellable(e.to_string()))?;
        Ok((req, amount, place))
    }
}
