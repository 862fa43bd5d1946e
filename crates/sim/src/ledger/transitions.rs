//! The protocol document's state table as the simulated bank plays it,
//! written once: the states each money-moving operation is accepted in and
//! the state it leads to, the states where it is a duplicate (the money it
//! would move already moved, or the call looks like one resent), and what the
//! capture batch moves. The ledger's code and the tests of it (unit and over
//! HTTP) all read this one table.

use crate::ctbc::types::TxState;
use crate::ctbc::Operation;

/// One money-moving operation's row of the table.
#[derive(Debug)]
pub struct Transition {
    pub operation: Operation,
    /// How refusals name the operation.
    pub name: &'static str,
    /// The states the operation is accepted in (a refund: settled, or
    /// settled again after earlier refunds, while the balance allows it).
    pub accepted_in: &'static [TxState],
    /// Where an accepted call leads. A reversal that only lowers the
    /// authorisation stays where it was; a refund reversal that leaves
    /// another refund settling stays in 20, and one whose transaction has
    /// refunds settled before leads where the batch left them
    /// (`BATCH_FINISH`, 22).
    pub to: TxState,
    /// States where the call is refused as a duplicate: the money it would
    /// move already moved, or (a refund while an earlier one is settling)
    /// the call is what a resent one looks like to the bank.
    pub duplicate_in: &'static [TxState],
    /// What such a refusal says.
    pub duplicate_because: &'static str,
    /// States where a call repeating an accepted one of its kind is a
    /// duplicate too: lowering the authorisation to where it was lowered,
    /// reversing a refund already reversed.
    pub repeat_in: &'static [TxState],
}

/// The table, one row per money-moving operation (an inquiry moves nothing
/// and is answered in every state).
pub const TRANSITIONS: [Transition; 4] = [REVERSAL, CAPTURE_REVERSAL, REFUND, REFUND_REVERSAL];

/// A reversal: cancels (or lowers) an authorisation not in the capture file.
pub const REVERSAL: Transition = Transition {
    operation: Operation::Reversal,
    name: "reversal",
    accepted_in: &[TxState::Authorised],
    to: TxState::AuthCancelled,
    duplicate_in: &[TxState::AuthCancelled],
    duplicate_because: "authorisation already cancelled",
    repeat_in: &[TxState::Authorised],
};

/// A capture reversal: takes a capture back out of the capture file.
pub const CAPTURE_REVERSAL: Transition = Transition {
    operation: Operation::CaptureReversal,
    name: "capture reversal",
    accepted_in: &[TxState::CapturedNotSettled],
    to: TxState::Authorised,
    duplicate_in: &[TxState::Authorised, TxState::AuthCancelled],
    duplicate_because: "not in the capture file (already taken out)",
    repeat_in: &[],
};

/// A refund of settled money, within the balance.
pub const REFUND: Transition = Transition {
    operation: Operation::Refund,
    name: "refund",
    accepted_in: &[TxState::Settled, TxState::RefundSettled],
    to: TxState::RefundSettling,
    duplicate_in: &[TxState::RefundSettling, TxState::RefundBatchRunning],
    duplicate_because: "an earlier refund of this transaction is still settling",
    repeat_in: &[],
};

/// A refund reversal: cancels a refund that is still settling.
pub const REFUND_REVERSAL: Transition = Transition {
    operation: Operation::RefundReversal,
    name: "refund reversal",
    accepted_in: &[TxState::RefundSettling],
    to: TxState::Settled,
    duplicate_in: &[],
    duplicate_because: "",
    repeat_in: &[
        TxState::Settled,
        TxState::RefundSettling,
        TxState::RefundSettled,
    ],
};

/// The operation's row; `None` for an inquiry.
pub fn transition(operation: Operation) -> Option<&'static Transition> {
    TRANSITIONS.iter().find(|t| t.operation == operation)
}

/// One move of the capture batch: a capture's state and a refund's.
#[derive(Debug)]
pub struct BatchStep {
    pub capture: (TxState, TxState),
    pub refund: (TxState, TxState),
    /// The refunds of a transaction it moves are settled: no refund
    /// reversal can cancel them any more.
    pub settles_refunds: bool,
}

/// The capture batch starting: 10 -> 11 and 20 -> 21.
pub const BATCH_START: BatchStep = BatchStep {
    capture: (TxState::CapturedNotSettled, TxState::CaptureBatchRunning),
    refund: (TxState::RefundSettling, TxState::RefundBatchRunning),
    settles_refunds: false,
};

/// The capture batch finishing: 11 -> 12 and 21 -> 22, its refunds settled.
pub const BATCH_FINISH: BatchStep = BatchStep {
    capture: (TxState::CaptureBatchRunning, TxState::Settled),
    refund: (TxState::RefundBatchRunning, TxState::RefundSettled),
    settles_refunds: true,
};

/// Whether the running batch locks a transaction in this state against every
/// money-moving call.
pub fn batch_locked(state: &TxState) -> bool {
    *state == BATCH_START.capture.1 || *state == BATCH_START.refund.1
}
