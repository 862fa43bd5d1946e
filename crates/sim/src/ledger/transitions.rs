//! The protocol document's state table as the simulated bank plays it,
//! written once: the state each money-moving operation is accepted in and the
//! state it leads to, the states where it is a duplicate (the money it would
//! move already moved), and what the capture batch moves. The ledger's code
//! and the tests of it (unit and over HTTP) all read this one table.

use crate::ctbc::types::TxState;
use crate::ctbc::Operation;

/// One money-moving operation's row of the table.
#[derive(Debug)]
pub struct Transition {
    pub operation: Operation,
    /// How refusals name the operation.
    pub name: &'static str,
    /// The one state the operation is accepted in.
    pub from: TxState,
    /// Where an accepted call leads; a reversal that only lowers the
    /// authorisation stays in `from`.
    pub to: TxState,
    /// States where the money the call would move already moved: refused as
    /// a duplicate.
    pub duplicate_in: &'static [TxState],
    /// What such a refusal says.
    pub duplicate_because: &'static str,
    /// A state where a call repeating the last accepted one of its kind is a
    /// duplicate too: lowering the authorisation to where it was lowered,
    /// reversing a refund already reversed.
    pub repeat_in: Option<TxState>,
}

/// The table, one row per money-moving operation (an inquiry moves nothing
/// and is answered in every state).
pub const TRANSITIONS: [Transition; 4] = [
    Transition {
        operation: Operation::Reversal,
        name: "reversal",
        from: TxState::Authorised,
        to: TxState::AuthCancelled,
        duplicate_in: &[TxState::AuthCancelled],
        duplicate_because: "authorisation already cancelled",
        repeat_in: Some(TxState::Authorised),
    },
    Transition {
        operation: Operation::CaptureReversal,
        name: "capture reversal",
        from: TxState::CapturedNotSettled,
        to: TxState::Authorised,
        duplicate_in: &[TxState::Authorised, TxState::AuthCancelled],
        duplicate_because: "not in the capture file (already taken out)",
        repeat_in: None,
    },
    Transition {
        operation: Operation::Refund,
        name: "refund",
        from: TxState::Settled,
        to: TxState::RefundSettling,
        duplicate_in: &[
            TxState::RefundSettling,
            TxState::RefundBatchRunning,
            TxState::RefundSettled,
        ],
        duplicate_because: "already refunded",
        repeat_in: None,
    },
    Transition {
        operation: Operation::RefundReversal,
        name: "refund reversal",
        from: TxState::RefundSettling,
        to: TxState::Settled,
        duplicate_in: &[],
        duplicate_because: "",
        repeat_in: Some(TxState::Settled),
    },
];

/// The operation's row; `None` for an inquiry.
pub fn transition(operation: Operation) -> Option<&'static Transition> {
    TRANSITIONS.iter().find(|t| t.operation == operation)
}

/// One move of the capture batch: a capture's state and a refund's.
#[derive(Debug)]
pub struct BatchStep {
    pub capture: (TxState, TxState),
    pub refund: (TxState, TxState),
}

/// The capture batch starting: 10 -> 11 and 20 -> 21.
pub const BATCH_START: BatchStep = BatchStep {
    capture: (TxState::CapturedNotSettled, TxState::CaptureBatchRunning),
    refund: (TxState::RefundSettling, TxState::RefundBatchRunning),
};

/// The capture batch finishing: 11 -> 12 and 21 -> 22.
pub const BATCH_FINISH: BatchStep = BatchStep {
    capture: (TxState::CaptureBatchRunning, TxState::Settled),
    refund: (TxState::RefundBatchRunning, TxState::RefundSettled),
};

/// Whether the running batch locks a transaction in this state against every
/// money-moving call.
pub fn batch_locked(state: &TxState) -> bool {
    *state == BATCH_START.capture.1 || *state == BATCH_START.refund.1
}
