//! A refund request as the engine works it: an order row that passed validation.
//! Validation happens before anything is sent, so a bad row ends in
//! `refund_failed` with its reason instead of reaching the bank.

use crate::bank::types::{
    AmountProblem, AuthCode, Currency, InvalidField, Money, OrderNo, RefundAmounts, Xid,
};
use crate::bank::Operation;
use crate::record::{GatewayEvent, OtherRefundsRecord, OwnCallRecord};
use crate::record::{Lease, OrderRecord};
use crate::refund_id::RefundId;
use crate::words::{CallOutcome, StepReached};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The check a row failed: rows failing alike point at the shop's query or
/// its settings rather than at the orders (`engine::mapping`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RowCheck {
    /// The order number the bank is asked by (`order_no`, or `lidm`).
    OrderNo,
    Xid,
    AuthCode,
    Currency,
    /// `auth_amount` and `refund_amount` together.
    Amounts,
    /// A value of the shop's refundd could not take as it read it: an amount
    /// with a fraction, several rows for one order.
    ShopValue,
    Attempts,
}

impl RowCheck {
    /// The check in an operator's words, with the column it reads.
    pub fn describe(self) -> &'static str {
        match self {
            RowCheck::OrderNo => "the order number sent to the bank (order_no, or lidm)",
            RowCheck::Xid => "xid",
            RowCheck::AuthCode => "auth_code",
            RowCheck::Currency => "currency",
            RowCheck::Amounts => "auth_amount and refund_amount",
            RowCheck::ShopValue => "the values the requests query returns",
            RowCheck::Attempts => "refundd's count of attempts",
        }
    }
}

/// Why a row cannot be worked: the check it failed and the reason, which
/// is what the order records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct RowProblem {
    pub check: RowCheck,
    pub reason: String,
}

impl RowProblem {
    fn new(check: RowCheck, reason: String) -> Self {
        Self { check, reason }
    }
}

/// What became of one of refundd's own money-moving calls, as the order's story tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFate {
    /// Sent, and no answer says whether the bank acted.
    Unknown,
    /// The bank accepted it (or a later inquiry showed it took effect).
    Accepted,
    /// The bank accepted a refund of another amount than asked (its `RefAmt`).
    AcceptedAs(Money),
}

/// A money-moving call refundd itself made for this order: the provenance
/// that lets a bank state count as "already done by us".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnCall {
    pub operation: Operation,
    /// The amount field the call carried (the new authorised amount of a reversal).
    pub amount: Money,
    pub fate: CallFate,
    pub sent_at: DateTime<Utc>,
}

impl OwnCall {
    /// Reads one call of the story, its amounts in the order's currency;
    /// `None` for a call the bank certainly did not act on (refused,
    /// unavailable, never sent) or one refundd cannot read.
    pub fn from_record(r: &OwnCallRecord, currency: Currency) -> Option<OwnCall> {
        let operation = r.operation.filter(|op| op.moves_money())?;
        let money = |amount: Option<i64>| Money::new(currency, amount?).ok();
        let amount = money(r.amount)?;
        let fate = match r.outcome {
            Some(CallOutcome::Accepted | CallOutcome::TookEffect) => CallFate::Accepted,
            Some(CallOutcome::AmountMismatch) => CallFate::AcceptedAs(money(r.moved)?),
            Some(
                CallOutcome::Refused
                | CallOutcome::Unavailable
                | CallOutcome::Invalid
                | CallOutcome::DidNotTakeEffect
                | CallOutcome::NotSent,
            ) => return None,
            // No outcome (a crash), ambiguous, or anything else: it may have happened.
            _ => CallFate::Unknown,
        };
        Some(OwnCall {
            operation,
            amount,
            fate,
            sent_at: r.sent_at,
        })
    }

    /// What the customer got back by this call, if the bank acted on it.
    pub fn moved(&self) -> Money {
        match self.fate {
            CallFate::AcceptedAs(m) => m,
            CallFate::Unknown | CallFate::Accepted => self.amount,
        }
    }
}

/// The order's other refunds, for its second and later refunds (several
/// refunds of one order): what the balance guard and the bank's state are
/// judged against. Every amount is in the order's currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtherRefunds {
    /// What they gave back or may have (a call whose outcome is unknown
    /// counts): the balance guard's sum.
    pub committed: Money,
    /// What refundd's own reversals among them took off the authorisation:
    /// the bank's `AuthAmt` is the order's less this.
    pub by_reversal: Money,
    /// What refundd's own refunds of settled money among them moved: what
    /// explains a refund the bank shows (states 20 to 22) that is not this one's.
    pub by_refund: Money,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The claim this attempt works under: every write names it.
    pub lease: Lease,
    pub order_no: OrderNo,
    /// Which refund of the order this is.
    pub refund_id: RefundId,
    pub xid: Xid,
    pub auth_code: Option<AuthCode>,
    /// The currency of every amount of the request.
    pub currency: Currency,
    /// What the shop recorded as authorised.
    pub authorised: Money,
    /// What is to be given back now; equal to `authorised` for a full refund.
    pub refund: Money,
    /// The order's other refunds; `None` when this is its only one.
    pub others: Option<OtherRefunds>,
    /// A capture reversal of ours is known done (its step is committed or
    /// rides with the next call's intent, or a fresh inquiry showed it took
    /// effect).
    pub capture_reversed: bool,
    /// A money-moving call of ours whose outcome is unknown, and how long ago
    /// (on the database's clock, when the order was claimed) it was about to be sent.
    pub unknown: Option<(Operation, Duration)>,
    /// Failed attempts so far (never negative past validation).
    pub attempts: u32,
    /// Every money-moving call refundd made for this order that may have taken
    /// effect, oldest first; kept up to date as the attempt sends more.
    pub own_calls: Vec<OwnCall>,
    /// What this attempt learned (the bank's answers to inquiries) and has not
    /// yet written: it goes into the order's story with the next write, which
    /// saves a commit; losing it in a crash loses no money rule, since nothing
    /// was sent on it.
    pub unrecorded: Vec<GatewayEvent>,
    /// The step reached by a call before the last that the bank accepted (its
    /// outcome is in `unrecorded`): it goes on record with the intent of the
    /// next call, in the same commit, so the fact is committed before that
    /// call is sent. A crash before that commit leaves the call's outcome
    /// unknown, which the next attempt settles by inquiring.
    pub step_unrecorded: Option<StepReached>,
}

impl RefundRequest {
    /// The events not yet recorded, then `ev`: what the next write appends.
    pub fn story_with(&self, ev: Option<&GatewayEvent>) -> Vec<GatewayEvent> {
        let mut events = self.unrecorded.clone();
        events.extend(ev.cloned());
        events
    }

    pub fn is_full(&self) -> bool {
        self.refund == self.authorised
    }

    /// What the bank should show authorised: the order's amount less what
    /// its other refunds' reversals took off.
    pub fn bank_authorised(&self) -> Option<Money> {
        match &self.others {
            None => Some(self.authorised),
            Some(o) => self.authorised.less(o.by_reversal),
        }
    }

    /// What is left to give back before this refund: the order's amount less
    /// its other refunds (`None` when they already exceed it).
    pub fn balance(&self) -> Option<Money> {
        match &self.others {
            None => Some(self.authorised),
            Some(o) => self.authorised.less(o.committed),
        }
    }

    /// Whether this refund gives back all that is left.
    pub fn is_the_rest(&self) -> bool {
        self.balance() == Some(self.refund)
    }

    /// Whether refunds of settled money of the order's other refunds, all
    /// refundd's, explain a refund the bank shows.
    pub fn others_refunded(&self) -> bool {
        self.others.is_some_and(|o| o.by_refund.amount() > 0)
    }

    /// The last call of `operation` of ours that may have taken effect.
    pub fn own_call(&self, operation: Operation) -> Option<&OwnCall> {
        self.own_calls
            .iter()
            .rev()
            .find(|c| c.operation == operation)
    }

    /// What a fresh inquiry showed of a capture reversal of unknown outcome:
    /// took effect (its call accepted, the completing reversal may follow) or
    /// did not (its call forgotten). Either way the outcome is no longer unknown.
    pub fn capture_reversal_settled(&mut self, took_effect: bool) {
        let op = Operation::CaptureReversal;
        self.unknown = None;
        if took_effect {
            if let Some(c) = self.own_calls.iter_mut().rev().find(|c| c.operation == op) {
                c.fate = CallFate::Accepted;
            }
            self.capture_reversed = true;
        } else {
            self.own_calls.retain(|c| c.operation != op);
        }
    }

    /// Checks a claimed row; the error is the reason stored in `refund_error`,
    /// with the check it failed.
    pub fn validate(row: &OrderRecord, lease: Lease) -> Result<RefundRequest, RowProblem> {
        if let Some(bad) = &row.bad_input {
            return Err(RowProblem::new(RowCheck::ShopValue, bad.clone()));
        }
        let order_no = bank_order_no(row).map_err(|r| RowProblem::new(RowCheck::OrderNo, r))?;
        let invalid = |check: RowCheck| {
            move |e: InvalidField| RowProblem::new(check, format!("invalid row: {e}"))
        };
        let xid = match row.xid.as_deref().map(str::trim) {
            None | Some("") => {
                return Err(RowProblem::new(
                    RowCheck::Xid,
                    "invalid row: xid is missing; the shop's requests must give the authorisation's XID in the column xid".into(),
                ))
            }
            Some(x) => Xid::parse(x).map_err(invalid(RowCheck::Xid))?,
        };
        let auth_code = match row.auth_code.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(a) => Some(AuthCode::parse(a).map_err(invalid(RowCheck::AuthCode))?),
        };
        let currency = Currency::parse(&row.currency).map_err(invalid(RowCheck::Currency))?;
        let wanted = row
            .claimed_amount
            .or(row.refund_amount)
            .or_else(|| rest_of_order(row));
        let RefundAmounts {
            authorised,
            refund: wanted,
        } = RefundAmounts::check(row.auth_amount, wanted)
            .map_err(|p| RowProblem::new(RowCheck::Amounts, row_amount_problem(p)))?;
        let unknown = row.unknown_operation.map(|op| {
            let age_ms = row.unknown_age_ms.unwrap_or(0).max(0) as u64;
            (op, Duration::from_millis(age_ms))
        });
        let attempts = u32::try_from(row.attempts).map_err(|_| {
            RowProblem::new(RowCheck::Attempts, format!(
                "invalid row: attempts is {}; refundd's count of failed attempts cannot be negative (set it to 0)",
                row.attempts
            ))
        })?;
        let money = |amount| {
            Money::new(currency, amount)
                .map_err(|e| RowProblem::new(RowCheck::Amounts, format!("invalid row: {e}")))
        };
        let (authorised, wanted) = (money(authorised)?, money(wanted)?);
        let others = match row.others {
            None => None,
            Some(o) => Some(OtherRefunds {
                committed: money(o.committed)?,
                by_reversal: money(o.by_reversal)?,
                by_refund: money(o.by_refund)?,
            }),
        };
        let capture_reversed = row.step == Some(StepReached::CaptureReversed);
        Ok(RefundRequest {
            lease,
            order_no,
            refund_id: RefundId::of_record(&row.refund_id),
            xid,
            auth_code,
            currency,
            authorised,
            refund: wanted,
            others,
            capture_reversed,
            unknown,
            attempts,
            own_calls: row
                .own_calls
                .iter()
                .filter_map(|c| OwnCall::from_record(c, currency))
                .collect(),
            unrecorded: Vec::new(),
            step_unrecorded: None,
        })
    }
}

/// A later refund of an order that asks no amount (`refund_amount` NULL)
/// gives back what its other refunds left: the authorised amount less what
/// they gave back or may have. Nothing when that is nothing (the balance
/// guard then refuses the whole amount, saying what is left).
fn rest_of_order(row: &OrderRecord) -> Option<i64> {
    let OtherRefundsRecord { committed, .. } = row.others?;
    let rest = row.auth_amount?.checked_sub(committed)?;
    (committed > 0 && rest > 0).then_some(rest)
}

/// The reason stored on a row whose amounts break the refund rule.
fn row_amount_problem(p: AmountProblem) -> String {
    match p {
        AmountProblem::NoAuthorised => {
            "invalid row: auth_amount is missing; set it to the authorised amount".into()
        }
        AmountProblem::AuthorisedNotPositive(a) => format!(
            "invalid row: auth_amount is {a}; it must be the authorised amount, more than 0"
        ),
        AmountProblem::RefundNotPositive { refund, authorised }
        | AmountProblem::RefundOverAuthorised { refund, authorised } => format!(
            "invalid row: refund_amount is {refund}; it must be more than 0 and at most auth_amount ({authorised}), or NULL for the whole amount"
        ),
    }
}

/// The order number the bank knows the order by, checked as a LID-M: the
/// shop's `lidm` when its requests give one, else its `order_no`.
fn bank_order_no(row: &OrderRecord) -> Result<OrderNo, String> {
    OrderNo::parse(row.bank_order_no()).map_err(|e| match row.lidm {
        Some(_) => format!("invalid row: lidm (the order number sent to the bank): {e}"),
        None => format!(
            "invalid row: {e}; if the bank knows the order by another number, return it from shop.requests as the column lidm"
        ),
    })
}
