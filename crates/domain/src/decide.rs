//! The decision core: from a refund request and the bank's answer to an inquiry,
//! what to do. Pure, so it is tested for every bank state; the pass does the I/O.

use super::refund_request::{CallFate, RefundRequest};
use crate::bank::types::serialize_minor_units;
use crate::bank::Inquiry;
use crate::bank::{CtbcError, Currency, Money, Operation, TxState, Xid};
use crate::words::RefundMethod;

/// One money-moving call of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Take the transaction out of the capture file (whole).
    CaptureReversal,
    /// Cancel the authorisation (`new_auth_amount` 0) or lower it.
    Reversal { new_auth_amount: Money },
    /// Refund this much of the settled amount.
    Refund { amount: Money },
}

/// A step as `refundd plan` shows it: the operation and the amount field the call carries.
impl serde::Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut call = s.serialize_struct("Step", 2)?;
        call.serialize_field("operation", self.operation().as_str())?;
        call.serialize_field("amount", &self.minor_units())?;
        call.end()
    }
}

impl Step {
    pub fn operation(self) -> Operation {
        match self {
            Step::CaptureReversal => Operation::CaptureReversal,
            Step::Reversal { .. } => Operation::Reversal,
            Step::Refund { .. } => Operation::Refund,
        }
    }

    /// The amount field the call carries; a capture reversal's is always
    /// nothing, in the order's currency (`None` here).
    fn amount(self) -> Option<Money> {
        match self {
            Step::CaptureReversal => None,
            Step::Reversal { new_auth_amount } => Some(new_auth_amount),
            Step::Refund { amount } => Some(amount),
        }
    }

    /// The amount field the call carries, in `currency` (the order's):
    /// nothing for a capture reversal.
    pub fn call_amount(self, currency: Currency) -> Money {
        self.amount().unwrap_or(Money::zero(currency))
    }

    /// The amount field the call carries, in minor units (0 for a capture
    /// reversal): what the order's story records of it.
    pub fn minor_units(self) -> i64 {
        self.amount().map_or(0, Money::amount)
    }
}

/// The calls that give an order's money back, and what they give back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    pub method: RefundMethod,
    /// What the customer gets back once every step is done.
    #[serde(serialize_with = "serialize_minor_units")]
    pub amount: Money,
    #[serde(rename = "calls")]
    pub steps: Vec<Step>,
    /// The plan only completes a capture reversal already done: its reversal does
    /// not touch the capture file, so it may run inside a blackout window.
    #[serde(skip)]
    pub completes_capture_reversal: bool,
}

/// Why an order waits for a later pass without it counting as a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// The bank's capture or refund batch is running (state 11 or 21).
    BatchRunning,
    /// A partial refund of a captured, unsettled transaction must wait until it settles.
    SettlementPending,
    /// An earlier refund of the order is settling at the bank (state 20):
    /// the next is sent once it has settled.
    EarlierRefundSettling,
}

impl WaitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::BatchRunning => "the bank's batch is running",
            WaitReason::SettlementPending => "a partial refund waits until the capture settles",
            WaitReason::EarlierRefundSettling => {
                "an earlier refund of the order is settling at the bank; the next waits until it has settled"
            }
        }
    }
}

/// What to do with an order after an inquiry: send calls, or conclude.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send these calls in order.
    Act(Plan),
    /// Nothing to send now.
    Conclude(Conclusion),
}

/// An outcome that needs no call to the bank: what the pass records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conclusion {
    /// The money is back (now or by an earlier attempt): mark `refunded`.
    Refunded { method: RefundMethod, amount: Money },
    /// Try again at a later pass; not a failed attempt.
    Wait(WaitReason),
    /// No verdict from the bank (unavailable, unreadable): a failed attempt, retried with backoff.
    Retry(String),
    /// Nothing refundd can do: `refund_failed` with this reason.
    NeedsPerson(String),
}

impl From<Conclusion> for Decision {
    fn from(c: Conclusion) -> Self {
        Decision::Conclude(c)
    }
}

impl PartialEq<Conclusion> for Decision {
    fn eq(&self, other: &Conclusion) -> bool {
        matches!(self, Decision::Conclude(c) if c == other)
    }
}

/// What an inquiry that failed means for the order.
pub fn on_inquiry_error(err: &CtbcError) -> Conclusion {
    match err {
        CtbcError::UnknownOrder { resp_code, err_code, message } => Conclusion::NeedsPerson(format!(
            "the bank does not know this order (RespCode {resp_code}, ErrCode {err_code}: {message})"
        )),
        CtbcError::Invalid(e) => Conclusion::NeedsPerson(format!("invalid input, nothing sent: {e}")),
        other => Conclusion::Retry(other.to_string()),
    }
}

/// The decision, in the order of the engine's rules: the transaction must be
/// ours, money already back ends the work, the amounts must agree, then the
/// bank's state says which calls give the money back. `bank` is the answer
/// as it concerns the order's own XID (`Inquiry::for_xid`); when the bank
/// holds several records of the order number, a person is told each of them.
pub fn decide(req: &RefundRequest, bank: &Inquiry) -> Decision {
    match decide_one(req, bank) {
        Decision::Conclude(Conclusion::NeedsPerson(reason)) if !bank.records.is_empty() => {
            Conclusion::NeedsPerson(format!("{reason}; {}", bank.records_in_words())).into()
        }
        other => other,
    }
}

fn decide_one(req: &RefundRequest, bank: &Inquiry) -> Decision {
    match &bank.xid {
        Some(xid) if xid == &req.xid => {}
        Some(xid) => {
            return Conclusion::NeedsPerson(format!(
                "the bank's XID {xid} differs from the order's {}; not refunding a transaction that may not be this order's",
                req.xid
            ))
            .into()
        }
        None => return Conclusion::Retry("the bank's answer carries no XID".into()).into(),
    }
    let reversal_method = if req.capture_reversed {
        RefundMethod::CaptureReversalAndReversal
    } else {
        RefundMethod::Reversal
    };
    match state_needs(req, bank, reversal_method) {
        Ok(plan) => Decision::Act(plan),
        Err(conclusion) => Decision::Conclude(conclusion),
    }
}

/// What the bank's state needs once the transaction is known to be this
/// order's: the calls that give the money back, or a conclusion.
fn state_needs(
    req: &RefundRequest,
    bank: &Inquiry,
    reversal_method: RefundMethod,
) -> Result<Plan, Conclusion> {
    if let Some(over) = over_balance(req) {
        return Err(over);
    }
    let agree = || amounts_disagree(req, bank).map_or(Ok(()), Err);
    match &bank.state {
        // Money already back: only refundd's own call on record explains it.
        TxState::AuthCancelled => Err(cancelled_by_us(req, reversal_method)),
        TxState::RefundSettling | TxState::RefundSettled => {
            refund_shown(req, &bank.state).and_then(|()| agree().map(|()| refund_plan(req)))
        }
        TxState::Authorised if lowered_by_us(req, bank) => Err(Conclusion::Refunded {
            method: RefundMethod::Reversal,
            amount: req.refund,
        }),
        // The money is still out: the amounts must agree before anything is sent.
        TxState::Authorised => agree().and_then(|()| {
            Ok(Plan {
                method: reversal_method,
                steps: vec![Step::Reversal {
                    new_auth_amount: left_after_refund(req)?,
                }],
                amount: req.refund,
                completes_capture_reversal: req.capture_reversed,
            })
        }),
        TxState::CapturedNotSettled => agree().and_then(|()| {
            if req.is_full() {
                Ok(Plan {
                    method: RefundMethod::CaptureReversalAndReversal,
                    steps: vec![
                        Step::CaptureReversal,
                        Step::Reversal {
                            new_auth_amount: Money::zero(req.currency),
                        },
                    ],
                    amount: req.refund,
                    completes_capture_reversal: false,
                })
            } else {
                Err(Conclusion::Wait(WaitReason::SettlementPending))
            }
        }),
        TxState::Settled => agree().map(|()| refund_plan(req)),
        TxState::CaptureBatchRunning | TxState::RefundBatchRunning => {
            Err(Conclusion::Wait(WaitReason::BatchRunning))
        }
        TxState::AuthFailed => Err(Conclusion::NeedsPerson(
            "needs a person: the authorisation failed (state -1), there is nothing to refund"
                .into(),
        )),
        TxState::CaptureFailed => Err(Conclusion::NeedsPerson(
            "needs a person: the capture failed (state 13)".into(),
        )),
        TxState::RefundFailed => Err(Conclusion::NeedsPerson(
            "needs a person: a refund failed at the bank (state 23)".into(),
        )),
        TxState::Unknown(code) => Err(Conclusion::NeedsPerson(format!(
            "needs a person: the bank reports state {code:?}, which refundd does not know"
        ))),
    }
}

/// Refunds this request's amount of the settled money (`OrgAmt` the order's).
fn refund_plan(req: &RefundRequest) -> Plan {
    Plan {
        method: RefundMethod::Refund,
        steps: vec![Step::Refund { amount: req.refund }],
        amount: req.refund,
        completes_capture_reversal: false,
    }
}

/// A refund the bank shows (20 to 22): this request's own, done (`Err` with
/// the conclusion); or, for a later refund of the order, its earlier refunds':
/// settling (20) waits, settled (22) lets this one be sent (`Ok`).
fn refund_shown(req: &RefundRequest, state: &TxState) -> Result<(), Conclusion> {
    if !req.others_refunded() {
        return Err(refunded_by_us(req, state));
    }
    let code = state.code();
    // A later refund is sent only on 12 or 22, one refund of the order at a
    // time: a refund settling (20) since is this one's call, as for an
    // order's first refund; settled (22), the earlier ones explain it too.
    match req.own_call(Operation::Refund) {
        Some(c) if c.fate == CallFate::Unknown && *state == TxState::RefundSettled => {
            Err(Conclusion::NeedsPerson(format!(
                "needs a person: the bank shows its refunds settled (state {code}), which the order's earlier refunds explain as well as this refund's call, whose outcome is unknown"
            )))
        }
        Some(_) => Err(refunded_by_us(req, state)),
        None if *state == TxState::RefundSettled => Ok(()),
        None => Err(Conclusion::Wait(WaitReason::EarlierRefundSettling)),
    }
}

/// The balance guard of an order's later refunds: this one and every other
/// that was or may have been accepted never give back more than was authorised.
fn over_balance(req: &RefundRequest) -> Option<Conclusion> {
    let others = req.others?;
    let left = req.balance();
    if left.is_some_and(|left| req.refund.amount() <= left.amount()) {
        return None;
    }
    Some(Conclusion::NeedsPerson(format!(
        "needs a person: this refund of {} is over the order's balance: {} left of the {} authorised once its other refunds ({}, outcomes unknown included) are counted; nothing was sent",
        req.refund.amount(),
        left.map_or(0, Money::amount),
        req.authorised.amount(),
        others.committed.amount()
    )))
}

/// State 0 is ours only when refundd sent a reversal to 0 that may have
/// taken effect, giving back all that was left.
fn cancelled_by_us(req: &RefundRequest, method: RefundMethod) -> Conclusion {
    let ours = req
        .own_call(Operation::Reversal)
        .is_some_and(|c| c.amount.amount() == 0 && req.is_the_rest());
    if ours {
        return Conclusion::Refunded {
            method,
            amount: req.refund,
        };
    }
    Conclusion::NeedsPerson(format!(
        "needs a person: the bank shows the authorisation cancelled (state 0) but refundd sent no reversal of the whole {} for this order; find out who cancelled it before marking the order refunded",
        req.authorised.amount()
    ))
}

/// States 20/22 are ours only when refundd sent a refund, and then the amount
/// is what the bank moved for it, never merely the amount asked now.
fn refunded_by_us(req: &RefundRequest, state: &TxState) -> Conclusion {
    let code = state.code();
    match req.own_call(Operation::Refund).map(|c| c.moved()) {
        Some(moved) if moved == req.refund => Conclusion::Refunded {
            method: RefundMethod::Refund,
            amount: moved,
        },
        Some(moved) => Conclusion::NeedsPerson(format!(
            "needs a person: the bank shows a refund (state {code}) of which refundd's own refund moved {}, but the order asks {}; check the bank's figure before refunding by hand",
            moved.amount(),
            req.refund.amount()
        )),
        None => Conclusion::NeedsPerson(format!(
            "needs a person: the bank shows a refund (state {code}) that refundd did not send; find out who refunded before marking the order refunded"
        )),
    }
}

/// State 1 lowered by exactly the part, by a reversal refundd itself sent.
fn lowered_by_us(req: &RefundRequest, bank: &Inquiry) -> bool {
    let Ok(left) = left_after_refund(req) else {
        return false;
    };
    left.amount() > 0
        && bank.auth_amount.map(|m| m.amount()) == Some(left.amount())
        && req
            .own_call(Operation::Reversal)
            .is_some_and(|c| c.amount == left)
}

/// What stays authorised once the refund is given back by a reversal: the
/// bank's authorisation (the order's, less its other refunds' reversals)
/// less this refund.
fn left_after_refund(req: &RefundRequest) -> Result<Money, Conclusion> {
    let authorised = req.bank_authorised();
    authorised.and_then(|a| a.less(req.refund)).ok_or_else(|| {
        Conclusion::NeedsPerson(format!(
            "invalid row: the refund {} is not a part of the authorised {}",
            req.refund.amount(),
            authorised.map_or(0, Money::amount)
        ))
    })
}

/// The bank's authorised amount must be the order's before money moves.
fn amounts_disagree(req: &RefundRequest, bank: &Inquiry) -> Option<Conclusion> {
    match bank.auth_amount {
        None => Some(Conclusion::Retry(
            "the bank's answer carries no AuthAmt".into(),
        )),
        Some(m) if m.currency_code() != req.currency.code => {
            Some(Conclusion::NeedsPerson(format!(
                "the bank's currency {} differs from the order's {}",
                m.currency_code(),
                req.currency.code
            )))
        }
        Some(m) if Some(m.amount()) != req.bank_authorised().map(Money::amount) => {
            Some(Conclusion::NeedsPerson(format!(
                "the bank's authorised amount {} differs from the order's {}",
                m.amount(),
                expected_authorised(req)
            )))
        }
        Some(_) => None,
    }
}

/// What the bank should show authorised, in words.
fn expected_authorised(req: &RefundRequest) -> String {
    let auth_amount = req.authorised.amount();
    match (req.others, req.bank_authorised()) {
        (Some(o), Some(left)) if o.by_reversal.amount() > 0 => format!(
            "{}: auth_amount {auth_amount} less {} its other refunds' reversals took off",
            left.amount(),
            o.by_reversal.amount()
        ),
        _ => format!("auth_amount {auth_amount}"),
    }
}

/// Whether the bank's state shows a capture reversal took effect: the
/// transaction is out of the capture file (1), or already cancelled (0).
pub fn capture_reversal_took_effect(bank: &Inquiry) -> bool {
    capture_reversal_fate(bank) == Some(true)
}

/// What the bank's state says of a capture reversal of unknown outcome:
/// `Some(true)` out of the capture file (1, 0); `Some(false)` settled or
/// beyond (12, 13, 20 to 23), so it cannot have happened; `None` when the
/// state cannot tell (still in the file, batch running, unknown states).
pub fn capture_reversal_fate(bank: &Inquiry) -> Option<bool> {
    match bank.state {
        TxState::Authorised | TxState::AuthCancelled => Some(true),
        TxState::Settled
        | TxState::CaptureFailed
        | TxState::RefundSettling
        | TxState::RefundBatchRunning
        | TxState::RefundSettled
        | TxState::RefundFailed => Some(false),
        _ => None,
    }
}

/// After a call of unknown outcome and a new inquiry: did that call take effect?
/// `Some(verdict)` to carry on with; `None` when the bank shows it did not
/// happen, so the call must not be sent again in this attempt. The call is
/// among `req.own_calls`, so a state it explains counts as ours.
pub fn after_ambiguous(req: &RefundRequest, step: Step, bank: &Inquiry) -> Option<Decision> {
    let mut req = req.clone();
    if step == Step::CaptureReversal {
        // Only a state that shows it took effect earns the completing
        // reversal its method and its blackout exemption.
        req.capture_reversed = capture_reversal_took_effect(bank);
    }
    match decide(&req, bank) {
        // The plan starts with the same call: it did not happen.
        Decision::Act(plan)
            if plan.steps.first().map(|s| s.operation()) == Some(step.operation()) =>
        {
            None
        }
        other => Some(other),
    }
}

/// After the bank refused a call and a new inquiry: batch running waits, money
/// already back is done, and otherwise the bank's reason goes to a person.
pub fn after_refusal(req: &RefundRequest, bank: &Inquiry, refusal: &str) -> Conclusion {
    match decide(req, bank) {
        Decision::Conclude(
            c @ (Conclusion::Refunded { .. } | Conclusion::Wait(_) | Conclusion::NeedsPerson(_)),
        ) => c,
        Decision::Act(_) | Decision::Conclude(Conclusion::Retry(_)) => {
            Conclusion::NeedsPerson(format!("the bank refused: {refusal}"))
        }
    }
}

/// What a settlement watch inquiry says of a refund the bank accepted: 20 and
/// 21 are on their way, 22 is done, and anything else means the refund will
/// not settle (23) or is gone (reversed at the bank's portal, say). An
/// answer about another authorisation than the refunded one (`xid`) says
/// nothing of this refund: a person looks.
pub fn watch_verdict(bank: &Inquiry, xid: &Xid) -> Settlement {
    if let Some(theirs) = bank.xid.as_ref().filter(|theirs| *theirs != xid) {
        return Settlement::Failed(format!(
            "needs a person: the bank's answer is about the authorisation with XID {theirs}, not the refunded one's ({xid}); check the refund's settlement with the bank"
        ));
    }
    match &bank.state {
        TxState::RefundSettling | TxState::RefundBatchRunning => Settlement::StillSettling,
        TxState::RefundSettled => Settlement::Settled,
        TxState::RefundFailed => Settlement::Failed(
            "refund failed at settlement: the bank reports state 23; a person must check with the bank"
                .into(),
        ),
        other => Settlement::Failed(format!(
            "needs a person: the refund refundd recorded is no longer at the bank (state {}, which cannot follow an accepted refund); check with the bank before refunding again",
            other.code()
        )),
    }
}

/// Outcome of a settlement watch inquiry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "reason", rename_all = "snake_case")]
pub enum Settlement {
    Settled,
    /// The refund will not settle (state 23, or a state that cannot follow an
    /// accepted refund): `refund_failed` with this reason.
    Failed(String),
    StillSettling,
}

#[cfg(test)]
mod later_refund_tests;
#[cfg(test)]
mod tests;
