//! refundd's record of one order as the decision reads it, and what a pass
//! writes about it: the claim's lease, the events of its story, how it waits
//! for a later attempt. The store reads and writes these; the engine and the
//! decision work with them and never with a row of SQL.

use super::bank::{Operation, RefundReferences};
use super::words::{CallOutcome, EventKind, RefundMethod, RefundStatus, StepReached, Word};
use chrono::{DateTime, Utc};
use std::time::Duration;
use uuid::Uuid;

/// An order as the engine reads it from refundd's record.
#[derive(Debug, Clone)]
pub struct OrderRecord {
    pub id: i64,
    pub order_no: String,
    /// Which refund of the order this is ('' for its only one).
    pub refund_id: String,
    /// The merchant the order was paid to, as the shop named it (a
    /// `[ctbc.merchants.NAME]`); `None`: the default merchant.
    pub merchant: Option<String>,
    pub xid: Option<String>,
    pub auth_code: Option<String>,
    pub auth_amount: Option<i64>,
    pub currency: String,
    pub status: RefundStatus,
    pub refund_amount: Option<i64>,
    /// Why the shop's row cannot be worked as it is.
    pub bad_input: Option<String>,
    pub claimed_amount: Option<i64>,
    pub attempts: i32,
    pub step: Option<StepReached>,
    pub unknown_operation: Option<Operation>,
    pub unknown_since: Option<DateTime<Utc>>,
    pub refund_method: Option<RefundMethod>,
    pub refunded_amount: Option<i64>,
    pub watch_until: Option<DateTime<Utc>>,
    /// The claim's token: every write about the order names it.
    pub lease_token: Option<Uuid>,
    /// The order number the bank knows the order by, when the shop's
    /// requests give one (`lidm`); `None`: `order_no`.
    pub lidm: Option<String>,
    /// How long ago, on the database's clock, the unknown call could last
    /// have been on its way to the bank (`unknown_age`).
    pub unknown_age_ms: Option<i64>,
    /// refundd's own money-moving calls for this refund, from its story.
    pub own_calls: Vec<OwnCallRecord>,
    /// The order's other refunds, summed; `None` when this is its only one.
    pub others: Option<OtherRefundsRecord>,
}

/// The order's other refunds as refundd's records sum them (minor units of
/// the order's currency): what they gave back or may have (outcomes unknown
/// included), and how much of it went by reversal and by refund.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub struct OtherRefundsRecord {
    pub committed: i64,
    pub by_reversal: i64,
    pub by_refund: i64,
}

impl OrderRecord {
    /// The order number sent to the bank (LID-M): `lidm` when the shop's
    /// requests give one, else the shop's own `order_no`.
    pub fn bank_order_no(&self) -> &str {
        self.lidm.as_deref().unwrap_or(&self.order_no)
    }

    /// The lease this claim holds on the order.
    pub fn lease(&self, worker: Uuid) -> Lease {
        Lease {
            id: self.id,
            token: self.lease_token.unwrap_or_default(),
            worker,
        }
    }
}

/// One claim's hold on one order: the record, the claim's token, the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub id: i64,
    pub token: Uuid,
    pub worker: Uuid,
}

impl Lease {
    /// No claim's: for reading a record (a plan, a check) without writing
    /// it; every fenced write with it finds no record.
    pub fn unheld(id: i64) -> Lease {
        Lease {
            id,
            token: Uuid::nil(),
            worker: Uuid::nil(),
        }
    }
}

/// One "about to send" event of the order's story and the last outcome or
/// note recorded for it before the next intent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct OwnCallRecord {
    /// `None`: an operation this build does not know (the call is not counted).
    #[serde(deserialize_with = "known_or_none")]
    pub operation: Option<Operation>,
    pub amount: Option<i64>,
    pub sent_at: DateTime<Utc>,
    /// `None`: no outcome recorded (or one this build does not know): it may have happened.
    #[serde(deserialize_with = "known_or_none")]
    pub outcome: Option<CallOutcome>,
    /// The outcome's amount: what the bank said it moved, where it said so.
    pub moved: Option<i64>,
}

/// A word of the story that this build may not know: a call of an unknown
/// operation is not counted as ours, an unknown outcome may have happened.
fn known_or_none<'de, D, W>(d: D) -> Result<Option<W>, D::Error>
where
    D: serde::Deserializer<'de>,
    W: Word,
{
    let text: Option<String> = serde::Deserialize::deserialize(d)?;
    Ok(text.as_deref().and_then(W::parse))
}

/// A call to the bank, as appended to the order's story.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayEvent {
    pub kind: EventKind,
    pub operation: Option<Operation>,
    pub outcome: Option<CallOutcome>,
    pub amount: Option<i64>,
    pub bank_state: Option<String>,
    pub resp_code: Option<String>,
    pub err_code: Option<String>,
    pub message: Option<String>,
    pub elapsed_ms: Option<i32>,
    /// Where the bank filed a refund it accepted (an accepted refund's outcome only).
    pub references: RefundReferences,
}

/// How an order waits for a later attempt.
#[derive(Debug, Clone)]
pub struct Deferral {
    /// Back to `refund_requested` (nothing done yet) or stay `refunding` with the lease released.
    pub back_to_requested: bool,
    pub delay: Duration,
    pub count_attempt: bool,
    pub last_error: String,
    /// Keep the record of a money-moving call whose outcome is unknown.
    pub keep_unknown: bool,
}

impl Deferral {
    /// Waits for the next pass without counting a failed attempt (batch
    /// running, settlement pending, blackout).
    pub fn next_pass(reason: String, keep_unknown: bool) -> Self {
        Self {
            back_to_requested: true,
            delay: Duration::ZERO,
            count_attempt: false,
            last_error: reason,
            keep_unknown,
        }
    }

    /// A failed attempt, retried after `delay`.
    pub fn backoff(delay: Duration, reason: String, keep_unknown: bool) -> Self {
        Self {
            back_to_requested: true,
            delay,
            count_attempt: true,
            last_error: reason,
            keep_unknown,
        }
    }

    /// A money-moving call of unknown outcome: stays `refunding` until a recheck.
    pub fn recheck(delay: Duration, reason: String) -> Self {
        Self {
            back_to_requested: false,
            delay,
            count_attempt: false,
            last_error: reason,
            keep_unknown: true,
        }
    }
}

/// Whether a lease renewed `since_renewal` ago, for `lease`, certainly
/// outlasts a call that may take `call` from now (its wait for the rate limit
/// and its whole timeout), with a tenth of the lease to spare for the
/// request to leave and the clocks to differ.
pub fn outlasts(since_renewal: Duration, call: Duration, lease: Duration) -> bool {
    since_renewal
        .saturating_add(call)
        .saturating_add(lease / 10)
        < lease
}
