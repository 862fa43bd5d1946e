//! Changes made at the bank's own portal, behind refundd's back: a refund or
//! a reversal a colleague makes by hand, a refund that fails at settlement,
//! an amount the bank settled differently, an order the bank forgets, a
//! state the bank shows for reasons of its own. The real bank does all of
//! these without refundd calling; reconciling with the bank is only tested if
//! the simulator can too. A change is applied to the books as the portal
//! would, never logged as a call (the call log and the duplicate count are
//! refundd's), and kept in a list of its own that the ledger report shows.

use chrono::{DateTime, Utc};

use super::operations::{file_refund, lower_authorisation};
use super::transitions::{REFUND, REVERSAL};
use super::{Ledger, PortalApplied, PortalChange, PortalRecord, Tx};
use crate::ctbc::types::TxState;

/// Why the bank's portal did not make a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortalRefusal {
    /// The change itself is wrong, whatever the transaction: an amount that
    /// is not above 0, a state the protocol does not list.
    BadChange(String),
    /// The bank holds no such order.
    UnknownOrder(String),
    /// The transaction's state, or what is left of its money, does not allow
    /// the change; `state` is its `CurrentState` code.
    NotAllowed { state: String, reason: String },
}

/// Every state in which the bank holds captured money: what it can have
/// settled differently.
const CAPTURED: &[TxState] = &[
    TxState::CapturedNotSettled,
    TxState::CaptureBatchRunning,
    TxState::Settled,
    TxState::RefundSettling,
    TxState::RefundBatchRunning,
    TxState::RefundSettled,
    TxState::RefundFailed,
];

/// The states a refund can fail in at settlement: settling, in the batch,
/// or reported failed after it.
const REFUND_MADE: &[TxState] = &[
    TxState::RefundSettling,
    TxState::RefundBatchRunning,
    TxState::RefundSettled,
];

impl PortalChange {
    /// What the change is called in a refusal.
    fn name(&self) -> &'static str {
        match self {
            PortalChange::Refund { .. } => "a refund in the portal",
            PortalChange::Reverse { .. } => "a reversal in the portal",
            PortalChange::FailRefund {} => "a refund failing at settlement",
            PortalChange::SettleAmount { .. } => "settling another amount",
            PortalChange::Forget {} => "forgetting the order",
            PortalChange::SetState { .. } => "showing another state",
        }
    }

    /// The states the change can be made in; `None`: any.
    fn allowed_in(&self) -> Option<&'static [TxState]> {
        match self {
            PortalChange::Refund { .. } => Some(REFUND.accepted_in),
            PortalChange::Reverse { .. } => Some(REVERSAL.accepted_in),
            PortalChange::FailRefund {} => Some(REFUND_MADE),
            PortalChange::SettleAmount { .. } => Some(CAPTURED),
            PortalChange::Forget {} | PortalChange::SetState { .. } => None,
        }
    }

    /// Checks what can be checked without the books: amounts above 0, a
    /// state of the protocol's table.
    fn check(&self) -> Result<(), PortalRefusal> {
        let amount = match self {
            PortalChange::Refund { amount } | PortalChange::SettleAmount { amount } => {
                Some(*amount)
            }
            PortalChange::Reverse { amount } => *amount,
            PortalChange::SetState { state } => return check_state(state),
            PortalChange::FailRefund {} | PortalChange::Forget {} => None,
        };
        match amount {
            Some(a) if a <= 0 => Err(PortalRefusal::BadChange(format!(
                "amount {a}: {} takes a whole number of minor units above 0",
                self.name()
            ))),
            _ => Ok(()),
        }
    }
}

fn check_state(state: &str) -> Result<(), PortalRefusal> {
    match TxState::from_code(state) {
        TxState::Unknown(code) => Err(PortalRefusal::BadChange(format!(
            "state {code:?} is not a CurrentState of the protocol table (-1, 0, 1, 10, 11, 12, 13, 20, 21, 22, 23)"
        ))),
        _ => Ok(()),
    }
}

impl Ledger {
    /// Makes `change` to the transaction of `order_no` as the bank's portal
    /// would, and keeps it in the portal's list; no call is logged. Refused
    /// whole: a refused change changes nothing.
    pub fn portal(
        &mut self,
        now: DateTime<Utc>,
        order_no: &str,
        change: &PortalChange,
    ) -> Result<PortalApplied, PortalRefusal> {
        change.check()?;
        let Some(tx) = self.txs.get_mut(order_no) else {
            return Err(PortalRefusal::UnknownOrder(format!(
                "no transaction {order_no:?}"
            )));
        };
        let state_before = tx.state.code().to_string();
        check_allowed(tx, change)?;
        let returned_delta = match change {
            PortalChange::Forget {} => {
                self.txs.remove(order_no);
                0
            }
            other => make(tx, other, (&mut self.refund_seq, now))?,
        };
        let applied = PortalRecord {
            seq: self.portal.len() as u64 + 1,
            at: now,
            order_no: order_no.to_string(),
            change: change.clone(),
            state_before,
            state_after: self.txs.get(order_no).map(|t| t.state.code().to_string()),
            returned_delta,
        };
        self.portal.push(applied.clone());
        Ok(PortalApplied {
            applied,
            transaction: self.transaction(order_no),
        })
    }

    /// Every change made at the portal, oldest first.
    pub fn portal_changes(&self) -> &[PortalRecord] {
        &self.portal
    }
}

/// Refuses a change the transaction's state does not allow.
fn check_allowed(tx: &Tx, change: &PortalChange) -> Result<(), PortalRefusal> {
    let Some(states) = change.allowed_in() else {
        return Ok(());
    };
    if states.contains(&tx.state) {
        return Ok(());
    }
    let codes: Vec<&str> = states.iter().map(TxState::code).collect();
    Err(not_allowed(
        tx,
        format!(
            "{} is not allowed in state {}: only in {}",
            change.name(),
            tx.state.code(),
            codes.join(", ")
        ),
    ))
}

fn not_allowed(tx: &Tx, reason: String) -> PortalRefusal {
    PortalRefusal::NotAllowed {
        state: tx.state.code().to_string(),
        reason,
    }
}

/// Makes a change its state allows, within the money the transaction
/// holds; returns the money given back.
fn make(
    tx: &mut Tx,
    change: &PortalChange,
    refunds: (&mut u64, DateTime<Utc>),
) -> Result<i64, PortalRefusal> {
    match change {
        PortalChange::Refund { amount } => refund(tx, *amount, refunds),
        PortalChange::Reverse { amount } => reverse(tx, *amount),
        PortalChange::FailRefund {} => {
            tx.state = TxState::RefundFailed;
            Ok(0)
        }
        PortalChange::SettleAmount { amount } => settle_amount(tx, *amount),
        PortalChange::SetState { state } => {
            tx.state = TxState::from_code(state);
            Ok(0)
        }
        PortalChange::Forget {} => Ok(0),
    }
}

/// A refund within the balance the refunds not reversed leave, filed as a
/// refund call's would be.
fn refund(
    tx: &mut Tx,
    amount: i64,
    refunds: (&mut u64, DateTime<Utc>),
) -> Result<i64, PortalRefusal> {
    let left = tx.refund_balance();
    if amount > left {
        return Err(not_allowed(
            tx,
            format!(
                "a refund of {amount} in the portal is over the balance: {left} of the {} captured is left to refund",
                tx.auth_amount
            ),
        ));
    }
    file_refund(tx, amount, &REFUND, refunds);
    Ok(amount)
}

/// Takes `amount` (all of it when `None`) off the authorisation.
fn reverse(tx: &mut Tx, amount: Option<i64>) -> Result<i64, PortalRefusal> {
    let amount = amount.unwrap_or(tx.auth_amount);
    if amount <= 0 || amount > tx.auth_amount {
        return Err(not_allowed(
            tx,
            format!(
                "a reversal of {amount} in the portal: the authorisation stands at {}",
                tx.auth_amount
            ),
        ));
    }
    Ok(lower_authorisation(tx, tx.auth_amount - amount, &REVERSAL))
}

/// The captured amount becomes `amount`: no more than was authorised, and
/// no less than the refunds not reversed gave back already.
fn settle_amount(tx: &mut Tx, amount: i64) -> Result<i64, PortalRefusal> {
    let refunded = tx.refunded();
    if amount > tx.original_amount || amount < refunded {
        return Err(not_allowed(
            tx,
            format!(
                "settling {amount}: the bank can settle from the {refunded} refunded up to the {} authorised",
                tx.original_amount
            ),
        ));
    }
    tx.auth_amount = amount;
    Ok(0)
}

#[cfg(test)]
mod tests;
