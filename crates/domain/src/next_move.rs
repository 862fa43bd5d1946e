//! What an attempt at an order does next, once the bank has answered its
//! inquiry (or failed to): the one path that `refundd run`/`once` carry out
//! (`engine::pass`, `engine::steps`) and that `refundd plan` prints
//! (`engine::plan`). A rule about what follows an answer is written here, or in
//! `decide`, and nowhere else, so the plan cannot say one thing while the pass
//! does another.
//!
//! Every answer read here is the bank's as it concerns the order's own XID:
//! when the bank holds several records of the order number, the client hands
//! over that record's view (`Client::inquiry_for`, `Inquiry::for_xid`).
//!
//! Pure: no I/O, no clock (the backoff's jittered delay is the pass's).

use super::calls::local_check;
use super::decide::{capture_reversal_fate, on_inquiry_error, Conclusion, Decision, Plan};
use super::decide::{decide, Step, WaitReason};
use super::refund_request::{CallFate, OwnCall, RefundRequest, RowProblem};
use crate::bank::types::serialize_minor_units;
use crate::bank::{CtbcError, Currency, Inquiry, Money, Operation};
use crate::record::OrderRecord;
use crate::words::RefundMethod;
use serde::Serialize;
use std::time::Duration;

/// What the path from an answer to a move reads of the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRules {
    /// Failed attempts (no verdict from the bank) before a person is asked.
    pub max_attempts: u32,
    /// How long a call of unknown outcome waits before it may be resent.
    pub recheck: Duration,
}

/// What happens to an order next, and why: a plan sent, or something recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum NextMove {
    Send(Sending),
    Record(Record),
}

/// Sends the plan's calls in order and, once the bank accepts them, marks
/// the order refunded by the plan's method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename = "send")]
pub struct Sending {
    #[serde(flatten)]
    pub plan: Plan,
    /// The order's authorised amount.
    #[serde(serialize_with = "serialize_minor_units")]
    pub authorised: Money,
}

/// What is recorded of an order without a call to the bank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// Marks the order refunded without a call: the bank shows a call of
    /// refundd's own took effect.
    #[serde(rename = "record_refunded")]
    Refunded {
        method: RefundMethod,
        #[serde(serialize_with = "serialize_minor_units")]
        amount: Money,
    },
    /// Leaves it for a later pass, not counted as a failed attempt.
    Wait {
        #[serde(serialize_with = "wait_reason_text")]
        reason: WaitReason,
    },
    /// No verdict from the bank: failed attempt number `attempt`, tried again
    /// after a backoff.
    RetryLater {
        reason: String,
        attempt: u32,
        max_attempts: u32,
    },
    /// `refund_failed`, with this reason for a person (every call of ours
    /// never confirmed named in it).
    NeedsPerson { reason: String },
}

fn wait_reason_text<S: serde::Serializer>(why: &WaitReason, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(why.as_str())
}

/// Why a step of a plan does not start now, the clock aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// A call of this operation has an unknown outcome and its recheck delay
    /// has this long to run: it is not sent again before.
    RecheckDelay {
        operation: Operation,
        left: Duration,
    },
    /// The call fails its local checks: the order needs a person, nothing is sent.
    Invalid(String),
}

/// What the bank's answer tells about the request itself, before deciding:
/// its auth code when the shop stored none, and the fate of a capture
/// reversal of unknown outcome (returned, for the pass to record).
pub fn learn_from_inquiry(req: &mut RefundRequest, bank: &Inquiry) -> Option<bool> {
    if req.auth_code.is_none() {
        req.auth_code = bank.auth_code.clone();
    }
    if !matches!(req.unknown, Some((Operation::CaptureReversal, _))) {
        return None;
    }
    let took_effect = capture_reversal_fate(bank)?;
    req.capture_reversal_settled(took_effect);
    Some(took_effect)
}

/// The decision an inquiry's outcome leads to (after `learn_from_inquiry`).
pub fn decision_after(req: &RefundRequest, answer: &Result<Inquiry, CtbcError>) -> Decision {
    match answer {
        Ok(bank) => decide(req, bank),
        Err(e) => on_inquiry_error(e).into(),
    }
}

/// What a decision means for this request under the settings: a plan is
/// sent, a conclusion recorded (`record`).
pub fn next_move(req: &RefundRequest, decision: Decision, s: &AttemptRules) -> NextMove {
    match decision {
        Decision::Act(plan) => NextMove::Send(Sending {
            plan,
            authorised: req.authorised,
        }),
        Decision::Conclude(c) => NextMove::Record(record(req, c, s)),
    }
}

/// What is recorded for a conclusion: a retry past the attempts allowed
/// (with no outcome unknown) goes to a person, and a person is told of every
/// call of ours never confirmed.
pub fn record(req: &RefundRequest, conclusion: Conclusion, s: &AttemptRules) -> Record {
    match conclusion {
        Conclusion::Refunded { method, amount } => Record::Refunded { method, amount },
        Conclusion::Wait(reason) => Record::Wait { reason },
        Conclusion::Retry(reason) => {
            let attempt = req.attempts.saturating_add(1);
            if attempt >= s.max_attempts && req.unknown.is_none() {
                let reason = format!("gave up after {attempt} attempts; last error: {reason}");
                needs_person(req, reason)
            } else {
                Record::RetryLater {
                    reason,
                    attempt,
                    max_attempts: s.max_attempts,
                }
            }
        }
        Conclusion::NeedsPerson(reason) => needs_person(req, reason),
    }
}

/// A person is needed: the reason, with every call of ours never confirmed.
pub fn needs_person(req: &RefundRequest, reason: String) -> Record {
    Record::NeedsPerson {
        reason: with_unconfirmed_calls(reason, &req.own_calls),
    }
}

/// Whether `step` must wait or cannot be sent: the recheck delay of a call
/// of its operation with an unknown outcome, then its local checks.
pub fn hold_before(req: &RefundRequest, step: Step, recheck: Duration) -> Option<Hold> {
    if let Some((op, age)) = req.unknown {
        if op == step.operation() && age < recheck {
            return Some(Hold::RecheckDelay {
                operation: op,
                left: recheck - age,
            });
        }
    }
    local_check(req, step).err().map(Hold::Invalid)
}

/// The reason a row that failed validation is failed with, naming every call
/// of ours on its record never confirmed.
pub fn invalid_row(problem: RowProblem, row: &OrderRecord) -> String {
    // The reason shows the calls' amounts in minor units only, so a row
    // whose currency is what failed still names its calls.
    let currency = Currency::parse(&row.currency).unwrap_or(Currency::TWD);
    let calls: Vec<OwnCall> = row
        .own_calls
        .iter()
        .filter_map(|c| OwnCall::from_record(c, currency))
        .collect();
    with_unconfirmed_calls(problem.reason, &calls)
}

/// `reason`, followed by every money-moving call of ours whose outcome was
/// never confirmed, with when it was sent (Asia/Taipei).
pub fn with_unconfirmed_calls(reason: String, calls: &[OwnCall]) -> String {
    let unconfirmed: Vec<String> = calls
        .iter()
        .filter(|c| c.fate == CallFate::Unknown)
        .map(|c| {
            let what = match c.operation {
                Operation::Reversal if c.amount.amount() == 0 => {
                    "a reversal of the whole authorisation".to_string()
                }
                Operation::Reversal => format!(
                    "a reversal lowering the authorisation to {}",
                    c.amount.amount()
                ),
                Operation::Refund => format!("a refund of {}", c.amount.amount()),
                op => format!("a {op}"),
            };
            let at = c.sent_at.with_timezone(&chrono_tz::Asia::Taipei);
            format!(
                "{what} was sent at {} and its outcome is unknown",
                at.format("%Y-%m-%d %H:%M:%S %:z")
            )
        })
        .collect();
    if unconfirmed.is_empty() {
        return reason;
    }
    format!(
        "{reason}; {}; check the bank before refunding by hand",
        unconfirmed.join("; ")
    )
}
