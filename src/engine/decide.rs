// The decision core: from a refund request and the bank's answer to an inquiry,
// what to do. Pure, so it is tested for every bank state; the pass does the I/O.

use super::request::{RefundMethod, RefundRequest};
use crate::ctbc::client::Inquiry;
use crate::ctbc::{CtbcError, Operation, TxState};

/// One money-moving call of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Take the transaction out of the capture file (whole).
    CaptureReversal,
    /// Cancel the authorisation (`new_auth_amount` 0) or lower it.
    Reversal { new_auth_amount: i64 },
    /// Refund this much of the settled amount.
    Refund { amount: i64 },
}

impl Step {
    pub fn operation(self) -> Operation {
        match self {
            Step::CaptureReversal => Operation::CaptureReversal,
            Step::Reversal { .. } => Operation::Reversal,
            Step::Refund { .. } => Operation::Refund,
        }
    }

    /// The amount field the call carries.
    pub fn amount(self) -> i64 {
        match self {
            Step::CaptureReversal => 0,
            Step::Reversal { new_auth_amount } => new_auth_amount,
            Step::Refund { amount } => amount,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub method: RefundMethod,
    pub steps: Vec<Step>,
    /// What the customer gets back once every step is done.
    pub amount: i64,
    /// The plan only completes a capture reversal already done: its reversal does
    /// not touch the capture file, so it may run inside a blackout window.
    pub completes_capture_reversal: bool,
}

/// Why an order waits for a later pass without it counting as a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// The bank's capture or refund batch is running (state 11 or 21).
    BatchRunning,
    /// A partial refund of a captured, unsettled transaction must wait until it settles.
    SettlementPending,
}

impl WaitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::BatchRunning => "the bank's batch is running",
            WaitReason::SettlementPending => "a partial refund waits until the capture settles",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The money is back (now or by an earlier attempt): mark `refunded`.
    Refunded { method: RefundMethod, amount: i64 },
    /// Send these calls in order.
    Act(Plan),
    /// Try again at a later pass; not a failed attempt.
    Wait(WaitReason),
    /// No verdict from the bank (unavailable, unreadable): a failed attempt, retried with backoff.
    Retry(String),
    /// Nothing refundd can do: `refund_failed` with this reason.
    NeedsPerson(String),
}

/// What an inquiry that failed means for the order.
pub fn on_inquiry_error(err: &CtbcError) -> Verdict {
    match err {
        CtbcError::UnknownOrder { resp_code, err_code, message } => Verdict::NeedsPerson(format!(
            "the bank does not know this order (RespCode {resp_code}, ErrCode {err_code}: {message})"
        )),
        CtbcError::Invalid(e) => Verdict::NeedsPerson(format!("invalid input, nothing sent: {e}")),
        other => Verdict::Retry(other.to_string()),
    }
}

/// The decision, in the order of the engine's rules: the transaction must be
/// ours, money already back ends the work, the amounts must agree, then the
/// bank's state says which calls give the money back.
pub fn decide(req: &RefundRequest, bank: &Inquiry) -> Verdict {
    match &bank.xid {
        Some(xid) if xid == &req.xid => {}
        Some(xid) => {
            return Verdict::NeedsPerson(format!(
                "the bank's XID {xid} differs from the order's {}; not refunding a transaction that may not be this order's",
                req.xid
            ))
        }
        None => return Verdict::Retry("the bank's answer carries no XID".into()),
    }
    let reversal_method = if req.capture_reversed {
        RefundMethod::CaptureReversalAndReversal
    } else {
        RefundMethod::Reversal
    };
    let lowered_by_the_part =
        !req.is_full() && bank.auth_amount.map(|m| m.amount) == Some(req.authorised - req.refund);

    match &bank.state {
        // Money already back: an earlier attempt did it and its answer or commit was lost.
        TxState::AuthCancelled => Verdict::Refunded {
            method: reversal_method,
            amount: req.authorised,
        },
        TxState::RefundSettling | TxState::RefundSettled => Verdict::Refunded {
            method: RefundMethod::Refund,
            amount: req.refund,
        },
        TxState::Authorised if lowered_by_the_part => Verdict::Refunded {
            method: RefundMethod::Reversal,
            amount: req.refund,
        },
        // The money is still out: the amounts must agree before anything is sent.
        TxState::Authorised => amounts_disagree(req, bank).unwrap_or_else(|| {
            Verdict::Act(Plan {
                method: reversal_method,
                steps: vec![Step::Reversal {
                    new_auth_amount: req.authorised - req.refund,
                }],
                amount: req.refund,
                completes_capture_reversal: req.capture_reversed,
            })
        }),
        TxState::CapturedNotSettled => amounts_disagree(req, bank).unwrap_or_else(|| {
            if req.is_full() {
                Verdict::Act(Plan {
                    method: RefundMethod::CaptureReversalAndReversal,
                    steps: vec![Step::CaptureReversal, Step::Reversal { new_auth_amount: 0 }],
                    amount: req.refund,
                    completes_capture_reversal: false,
                })
            } else {
                Verdict::Wait(WaitReason::SettlementPending)
            }
        }),
        TxState::Settled => amounts_disagree(req, bank).unwrap_or_else(|| {
            Verdict::Act(Plan {
                method: RefundMethod::Refund,
                steps: vec![Step::Refund { amount: req.refund }],
                amount: req.refund,
                completes_capture_reversal: false,
            })
        }),
        TxState::CaptureBatchRunning | TxState::RefundBatchRunning => {
            Verdict::Wait(WaitReason::BatchRunning)
        }
        TxState::AuthFailed => Verdict::NeedsPerson(
            "needs a person: the authorisation failed (state -1), there is nothing to refund"
                .into(),
        ),
        TxState::CaptureFailed => {
            Verdict::NeedsPerson("needs a person: the capture failed (state 13)".into())
        }
        TxState::RefundFailed => {
            Verdict::NeedsPerson("needs a person: a refund failed at the bank (state 23)".into())
        }
        TxState::Unknown(code) => Verdict::NeedsPerson(format!(
            "needs a person: the bank reports state {code:?}, which refundd does not know"
        )),
    }
}

/// The bank's authorised amount must be the order's before money moves.
fn amounts_disagree(req: &RefundRequest, bank: &Inquiry) -> Option<Verdict> {
    match bank.auth_amount {
        None => Some(Verdict::Retry(
            "the bank's answer carries no AuthAmt".into(),
        )),
        Some(m) if m.currency != req.currency.code => Some(Verdict::NeedsPerson(format!(
            "the bank's currency {} differs from the order's {}",
            m.currency, req.currency.code
        ))),
        Some(m) if m.amount != req.authorised => Some(Verdict::NeedsPerson(format!(
            "the bank's authorised amount {} differs from the order's auth_amount {}",
            m.amount, req.authorised
        ))),
        Some(_) => None,
    }
}

/// After a call of unknown outcome and a new inquiry: did that call take effect?
/// `Some(verdict)` to carry on with; `None` when the bank shows it did not
/// happen, so the call must not be sent again in this attempt.
pub fn after_ambiguous(req: &RefundRequest, step: Step, bank: &Inquiry) -> Option<Verdict> {
    let mut req = req.clone();
    if step == Step::CaptureReversal {
        // If the bank shows the capture reversed, the plan goes on with its reversal.
        req.capture_reversed = true;
    }
    match decide(&req, bank) {
        Verdict::Act(plan)
            if plan.steps.first().map(|s| s.operation()) == Some(step.operation()) =>
        {
            // After a capture reversal marked done, state 10 would plan the
            // capture reversal again: it did not happen.
            None
        }
        Verdict::Act(mut plan) => {
            if step == Step::CaptureReversal {
                plan.method = RefundMethod::CaptureReversalAndReversal;
                plan.completes_capture_reversal = true;
            }
            Some(Verdict::Act(plan))
        }
        other => Some(other),
    }
}

/// After the bank refused a call and a new inquiry: batch running waits, money
/// already back is done, and otherwise the bank's reason goes to a person.
pub fn after_refusal(req: &RefundRequest, bank: &Inquiry, refusal: &str) -> Verdict {
    match decide(req, bank) {
        v @ (Verdict::Refunded { .. } | Verdict::Wait(_) | Verdict::NeedsPerson(_)) => v,
        Verdict::Act(_) | Verdict::Retry(_) => {
            Verdict::NeedsPerson(format!("the bank refused: {refusal}"))
        }
    }
}

#[cfg(test)]
mod tests;
