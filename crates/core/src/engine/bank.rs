//! The bank as a pass uses it: the client (one merchant's keys and endpoint)
//! and the turns its orders share (`turns`), so every call to the bank takes
//! a turn and a second merchant is a second `Bank`, not a change to the pass.

use super::turns::Turns;
use crate::ctbc::{Client, CtbcError, Inquiry, Operation, OrderNo, RefundReferences, Xid};
use crate::domain::calls::Call;
use crate::domain::record::GatewayEvent;
use crate::domain::refund_request::RefundRequest;
use crate::domain::words::{CallOutcome, EventKind};
use std::time::{Duration, Instant};
use tokio::sync::SemaphorePermit;
use tracing::info;

/// One bank client and its turns.
#[derive(Debug, Clone)]
pub(super) struct Bank {
    client: Client,
    turns: Turns,
    calls_at_once: usize,
}

impl Bank {
    /// `calls_at_once` calls in flight at most (`worker.concurrency`).
    pub(super) fn new(client: Client, calls_at_once: usize) -> Self {
        Self {
            client,
            turns: Turns::new(calls_at_once),
            calls_at_once: calls_at_once.max(1),
        }
    }

    /// Waits for a turn at the bank (see `turns`).
    pub(super) async fn turn(&self) -> Option<SemaphorePermit<'_>> {
        self.turns.take().await
    }

    /// An inquiry outside any order's story (the settlement watch's), as it
    /// concerns the authorisation `xid` (`Client::inquiry_for`).
    pub(super) async fn inquiry(
        &self,
        order_no: &OrderNo,
        xid: &Xid,
    ) -> Result<Inquiry, CtbcError> {
        self.client.inquiry_for(order_no, xid).await
    }

    /// Why the bank's answers say refundd's keys are wrong, if they do.
    pub(super) fn keys_look_wrong(&self) -> Option<String> {
        self.client.keys_look_wrong()
    }

    /// Starts counting the answers that did not open afresh, for a new pass.
    pub(super) fn recount_answers(&self) {
        self.client.recount_answers();
    }

    /// The longest one call to the bank can take once it has its turn.
    pub(super) fn longest_call(&self) -> Duration {
        self.client.longest_call(self.calls_at_once)
    }

    /// Sends one money-moving call that passed its local checks; an accepted
    /// refund says where the bank filed it.
    pub(super) async fn send(&self, call: &Call) -> Result<RefundReferences, CtbcError> {
        let none = |_| RefundReferences::default();
        match call {
            Call::Reversal(r) => self.client.reversal(r).await.map(none),
            Call::CaptureReversal(r) => self.client.capture_reversal(r).await.map(none),
            Call::Refund(r) => self.client.refund(r).await.map(|a| a.references()),
        }
    }

    /// Asks the bank in a turn about the order's own authorisation (its
    /// record, when the bank holds several of the order number); the answer
    /// goes into the order's story with the next write.
    pub(super) async fn inquire(&self, req: &mut RefundRequest) -> Result<Inquiry, CtbcError> {
        let turn = self.turns.take().await;
        let started = Instant::now();
        let result = self.client.inquiry_for(&req.order_no, &req.xid).await;
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
        result
    }
}
