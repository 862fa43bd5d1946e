//! `refundd plan`: what a pass started now would do, order by order, worked out
//! with the pass's own rules (`RefundRequest::validate`, `decide`, the recheck
//! delay, backoff, blackout windows, one refund of an order at a time) from a
//! fresh inquiry per order at its own merchant's bank. It holds only
//! `InquiryBanks` (an `InquiryClient` per merchant) and a `PlanReader`: it
//! cannot send a money-moving call (the compiler sees to that) and cannot
//! write (PostgreSQL's READ ONLY transaction does).

use super::clock::Clock;
use super::settings::EngineSettings;
use super::watch::watched_at_bank;
use crate::ctbc::{CtbcError, Operation};
use crate::ctbc::{Inquiry, InquiryBanks};
use crate::domain::decide::watch_verdict;
use crate::domain::decide::Settlement;
use crate::domain::merchant::MerchantName;
use crate::domain::next_move::{decision_after, hold_before, invalid_row, learn_from_inquiry};
use crate::domain::next_move::{needs_person, next_move, Hold, NextMove, Record, Sending};
use crate::domain::record::Lease;
use crate::domain::refund_request::RefundRequest;
use crate::store::plan::{PlanReader, PlanRow, WatchRow};
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use std::collections::BTreeMap;

/// Why the pass leaves an order alone now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Skip {
    /// Inside a blackout window (Asia/Taipei) a pass works no order.
    Blackout { window: String },
    /// A money-moving call of unknown outcome is not sent again before the
    /// recheck delay has passed; the pass leaves the order until then.
    RecheckDelay {
        operation: Operation,
        left_secs: u64,
    },
    /// Its next attempt is not due yet (backoff, a recheck, a later pass).
    NotDue {
        next_attempt_at: Option<DateTime<Utc>>,
        last_error: Option<String>,
    },
    /// Another worker holds it under a live lease.
    Held { until: Option<DateTime<Utc>> },
    /// The shop no longer lists it and nothing was sent: the pass withdraws it.
    Withdrawn,
    /// The shop asks again for an order refundd refunded: it is refunded once.
    RefundedAlready { refunded_amount: Option<i64> },
    /// An earlier refund of the order is requested or under way: an order's
    /// refunds are worked one at a time, oldest first. `earlier` names it,
    /// when the reading shows which.
    WaitsForEarlierRefund {
        #[serde(skip_serializing_if = "Option::is_none")]
        earlier: Option<String>,
    },
}

impl Skip {
    /// A stable name per reason, for the totals.
    pub fn name(&self) -> &'static str {
        match self {
            Skip::Blackout { .. } => "blackout",
            Skip::RecheckDelay { .. } => "recheck_delay",
            Skip::NotDue { .. } => "not_due",
            Skip::Held { .. } => "held",
            Skip::Withdrawn => "withdrawn",
            Skip::RefundedAlready { .. } => "refunded_already",
            Skip::WaitsForEarlierRefund { .. } => "waits_for_earlier_refund",
        }
    }
}

/// One order of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedOrder {
    pub order_no: String,
    /// Which refund of the order it is; left out for an order's only refund.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    /// The merchant whose bank it is asked about at, as the shop names it;
    /// `default` for the `[ctbc]` table's own.
    pub merchant: String,
    /// The shop lists it and refundd has no record of it yet: the pass records it first.
    pub new_request: bool,
    /// Whether the plan asked the bank about it.
    pub inquired: bool,
    /// The bank's state (`CurrentState`), when it answered.
    pub bank_state: Option<String>,
    /// What kind of failure the inquiry met instead (`unknown_order`, `unavailable`, ...).
    pub inquiry_error: Option<&'static str>,
    /// Why the pass leaves it alone now, if it does.
    pub skipped: Option<Skip>,
    /// What the pass does; for a skipped order, what it does once the skip
    /// is over, where the bank's answer already tells.
    pub action: Option<NextMove>,
}

/// One refund of the settlement watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedWatch {
    pub order_no: String,
    /// Which refund of the order it is; left out for an order's only refund.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    /// The merchant whose bank it is asked about at (`default`: the `[ctbc]` table's own).
    pub merchant: String,
    pub bank_state: Option<String>,
    pub skipped: Option<Skip>,
    /// The settlement watch's verdict on the bank's answer (still settling
    /// when the bank gave none).
    pub outcome: Settlement,
    /// The watch's days are over: a refund still settling is left unconfirmed.
    pub unconfirmed: bool,
}

/// Counts over the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlanTotals {
    /// Orders the pass works now.
    pub worked: usize,
    /// Of them, how many at each merchant's bank (`default`: the `[ctbc]` table's own).
    pub worked_by_merchant: BTreeMap<String, usize>,
    /// Orders refunded by money-moving calls.
    pub send: usize,
    /// Money-moving calls the pass would send.
    pub calls: usize,
    /// What those calls give back, in minor units (every currency refundd
    /// knows today is NT$; a second one would need a total per currency).
    pub to_give_back: i64,
    /// Orders to send for, by method.
    pub by_method: BTreeMap<&'static str, usize>,
    pub record_refunded: usize,
    pub wait: usize,
    pub retry_later: usize,
    pub needs_person: usize,
    pub skipped: usize,
    pub skipped_by_reason: BTreeMap<&'static str, usize>,
    /// Requests the shop lists that refundd has not recorded yet.
    pub new_requests: usize,
    /// Refunds the settlement watch inquires.
    pub watched: usize,
    /// Inquiries the plan sent; it sent nothing else.
    pub inquiries: usize,
}

/// What a pass started now would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PassPlan {
    /// The database's clock when the queue was read.
    pub at: DateTime<Utc>,
    /// The blackout window covering now (Asia/Taipei), if one does.
    pub blackout: Option<String>,
    pub orders: Vec<PlannedOrder>,
    pub settlement_watch: Vec<PlannedWatch>,
    /// Outcomes the shop's database refused before; the pass tries them again.
    pub write_backs_pending: i64,
    pub totals: PlanTotals,
    /// Set when the bank answered none of the plan's inquiries.
    #[serde(skip)]
    bank_unreachable: Option<String>,
    /// A mapping mistake (`engine::mapping`): the pass would send nothing,
    /// write nothing back and fail no order; what to fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings_problem: Option<String>,
}

impl PassPlan {
    /// Why the plan means nothing: the bank answered none of its inquiries.
    pub fn bank_unreachable(&self) -> Option<&str> {
        self.bank_unreachable.as_deref()
    }
}

/// How an inquiry went, for telling a bank that cannot be reached at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    No,
    Answered,
    Unavailable,
}

/// Reads the queue, asks each order's merchant's bank about every order the
/// pass would work and every refund it would watch, and decides each as the
/// pass would. Fails only when the database cannot be read.
pub async fn plan(
    reader: &PlanReader,
    banks: &InquiryBanks,
    settings: &EngineSettings,
    clock: &dyn Clock,
) -> Result<PassPlan, StoreError> {
    let reading = reader.read().await?;
    let turns = turns_of_orders(&reading.orders, reading.at);
    // The pass's own judgement of the rows it has not started.
    let not_started: Vec<crate::domain::record::OrderRecord> = reading
        .orders
        .iter()
        .filter(|o| crate::domain::mapping::not_started(&o.row))
        .take(crate::domain::mapping::SAMPLE as usize)
        .map(|o| o.row.clone())
        .collect();
    let settings_problem =
        crate::domain::mapping::mapping_mistake(&not_started).map(|m| m.to_string());
    let window = settings.blackout.window_at(clock.now());
    let width = settings.concurrency.max(1);
    let mut orders: Vec<(PlannedOrder, Asked, Option<String>)> =
        futures::stream::iter(reading.orders.into_iter().zip(turns))
            .map(|(row, turn)| plan_order(row, turn, banks, settings))
            .buffered(width)
            .collect()
            .await;
    let mut watch: Vec<(PlannedWatch, Asked, Option<String>)> =
        futures::stream::iter(reading.watch)
            .map(|row| plan_watch(row, banks))
            .buffered(width)
            .collect()
            .await;
    // A pass inside a blackout window reads the shop's requests and stops.
    if let Some(w) = window {
        let blackout = Skip::Blackout {
            window: w.to_string(),
        };
        for (o, _, _) in orders.iter_mut() {
            let worked = matches!(o.skipped, None | Some(Skip::RecheckDelay { .. }));
            if worked {
                o.skipped = Some(blackout.clone());
            }
        }
        for (w, _, _) in watch.iter_mut() {
            w.skipped = Some(blackout.clone());
        }
    }
    let asked: Vec<(Asked, Option<String>)> = orders
        .iter()
        .map(|(_, a, e)| (*a, e.clone()))
        .chain(watch.iter().map(|(_, a, e)| (*a, e.clone())))
        .filter(|(a, _)| *a != Asked::No)
        .collect();
    let inquiries = asked.len();
    let bank_unreachable =
        if !asked.is_empty() && asked.iter().all(|(a, _)| *a == Asked::Unavailable) {
            asked.into_iter().find_map(|(_, e)| e)
        } else {
            None
        };
    let orders: Vec<PlannedOrder> = orders.into_iter().map(|(o, _, _)| o).collect();
    let watch: Vec<PlannedWatch> = watch.into_iter().map(|(w, _, _)| w).collect();
    let totals = totals(&orders, &watch, inquiries);
    Ok(PassPlan {
        at: reading.at,
        blackout: window.map(|w| w.to_string()),
        orders,
        settlement_watch: watch,
        write_backs_pending: reading.write_backs_pending,
        totals,
        bank_unreachable,
        settings_problem,
    })
}

/// The merchant as the plan names it: as the shop gave it, `default` for none.
fn merchant_label(given: Option<&str>) -> String {
    given.unwrap_or(MerchantName::DEFAULT_LABEL).to_string()
}

/// A refund id as the plan shows it: none for an order's only refund ('').
fn shown_refund_id(refund_id: &str) -> Option<String> {
    (!refund_id.is_empty()).then(|| refund_id.to_string())
}

/// For each row of the reading, whether it waits for an earlier refund of its
/// order, and which (`Some(None)`: one without an id, or one the reading does
/// not show). A recorded
/// request's turn is the claim's rule (`queue_rules::turn_of_order`): not due,
/// though its next attempt is and no lease holds it, it waits for its turn.
/// Requests refundd has not recorded yet know no turn before the intake
/// records them: of an order's several, the claim takes the one recorded
/// first, and the plan takes them in the reading's order.
fn turns_of_orders(rows: &[PlanRow], at: DateTime<Utc>) -> Vec<Option<Option<String>>> {
    use crate::domain::words::RefundStatus::{RefundRequested, Refunding};
    let open = |r: &PlanRow| {
        !r.withdrawn && !r.refunded_already && matches!(r.row.status, RefundRequested | Refunding)
    };
    let due_by_clock = |r: &PlanRow| r.next_attempt_at.is_none_or(|t| t <= at);
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            if !open(r) || r.held {
                return None;
            }
            let siblings = || {
                rows.iter().enumerate().filter(move |(j, s)| {
                    *j != i
                        && open(s)
                        && s.row.order_no == r.row.order_no
                        && s.row.refund_id != r.row.refund_id
                })
            };
            if !r.due && due_by_clock(r) {
                // The claim's rule says it waits; name the refund ahead of it.
                let ahead = siblings().find(|(_, s)| {
                    s.row.status == Refunding
                        || (s.row.id != 0 && (r.row.id == 0 || s.row.id < r.row.id))
                });
                return Some(ahead.and_then(|(_, s)| shown_refund_id(&s.row.refund_id)));
            }
            if !(r.due && r.new_request) {
                return None;
            }
            siblings()
                .find(|(j, s)| *j < i && s.new_request && s.due)
                .map(|(_, s)| shown_refund_id(&s.row.refund_id))
        })
        .collect()
}

/// Why a claim would not take this order now, before anything is asked;
/// `turn`, whether it waits for an earlier refund of its order.
fn not_taken(row: &PlanRow, turn: Option<Option<String>>) -> Option<Skip> {
    if row.withdrawn {
        Some(Skip::Withdrawn)
    } else if row.refunded_already {
        Some(Skip::RefundedAlready {
            refunded_amount: row.row.refunded_amount,
        })
    } else if row.held {
        Some(Skip::Held {
            until: row.lease_expires_at,
        })
    } else if let Some(earlier) = turn {
        Some(Skip::WaitsForEarlierRefund { earlier })
    } else if !row.due {
        Some(Skip::NotDue {
            next_attempt_at: row.next_attempt_at,
            last_error: row.last_error.clone(),
        })
    } else {
        None
    }
}

async fn plan_order(
    row: PlanRow,
    turn: Option<Option<String>>,
    banks: &InquiryBanks,
    settings: &EngineSettings,
) -> (PlannedOrder, Asked, Option<String>) {
    let mut planned = PlannedOrder {
        order_no: row.row.order_no.clone(),
        refund_id: shown_refund_id(&row.row.refund_id),
        merchant: merchant_label(row.row.merchant.as_deref()),
        new_request: row.new_request,
        inquired: false,
        bank_state: None,
        inquiry_error: None,
        skipped: not_taken(&row, turn),
        action: None,
    };
    if planned.skipped.is_some() {
        return (planned, Asked::No, None);
    }
    // A merchant no settings give fails the order, nothing asked or sent.
    let bank = match banks.of_merchant(row.row.merchant.as_deref()) {
        Ok(bank) => bank,
        Err(reason) => {
            planned.action = Some(NextMove::Record(Record::NeedsPerson { reason }));
            return (planned, Asked::No, None);
        }
    };
    // The claim's lease is never taken: the plan writes nothing under it.
    let lease = Lease::unheld(row.row.id);
    let req = match RefundRequest::validate(&row.row, lease) {
        Ok(r) => r,
        Err(problem) => {
            // The pass fails an invalid row without asking the bank.
            let reason = invalid_row(problem, &row.row);
            planned.action = Some(NextMove::Record(Record::NeedsPerson { reason }));
            return (planned, Asked::No, None);
        }
    };
    let answer = bank.inquiry_for(&req.order_no, &req.xid).await;
    planned.inquired = true;
    let (asked, error) = match &answer {
        Ok(b) => {
            planned.bank_state = Some(b.state.code().to_string());
            (Asked::Answered, None)
        }
        Err(e) => {
            planned.inquiry_error = Some(e.kind());
            match e {
                CtbcError::Unavailable { .. } => (Asked::Unavailable, Some(e.to_string())),
                _ => (Asked::Answered, None),
            }
        }
    };
    let (skipped, action) = after_inquiry(req, &answer, settings);
    planned.skipped = skipped;
    planned.action = Some(action);
    (planned, asked, error)
}

/// What the pass does with a valid request once the bank has answered (or
/// failed to), along the pass's own path (`next_move`), without any of its
/// writes: what it learns from the answer, the decision and what is recorded
/// of it, and each step's recheck delay and local checks (`hold_before`).
pub fn after_inquiry(
    mut req: RefundRequest,
    answer: &Result<Inquiry, CtbcError>,
    settings: &EngineSettings,
) -> (Option<Skip>, NextMove) {
    if let Ok(bank) = answer {
        learn_from_inquiry(&mut req, bank);
    }
    let next = next_move(
        &req,
        decision_after(&req, answer),
        &settings.attempt_rules(),
    );
    let NextMove::Send(sending) = &next else {
        return (None, next);
    };
    for step in &sending.plan.steps {
        match hold_before(&req, *step, settings.recheck) {
            Some(Hold::RecheckDelay { operation, left }) => {
                let skip = Skip::RecheckDelay {
                    operation,
                    left_secs: left.as_secs(),
                };
                return (Some(skip), next);
            }
            Some(Hold::Invalid(reason)) => {
                return (None, NextMove::Record(needs_person(&req, reason)))
            }
            None => {}
        }
    }
    (None, next)
}

async fn plan_watch(row: WatchRow, banks: &InquiryBanks) -> (PlannedWatch, Asked, Option<String>) {
    let mut planned = PlannedWatch {
        order_no: row.order_no.clone(),
        refund_id: shown_refund_id(&row.refund_id),
        merchant: merchant_label(row.merchant.as_deref()),
        bank_state: None,
        skipped: None,
        outcome: Settlement::StillSettling,
        unconfirmed: row.watch_over,
    };
    let (order_no, xid) = match watched_at_bank(row.bank_order_no(), row.xid.as_deref()) {
        Ok(asked) => asked,
        Err(e) => {
            planned.outcome = Settlement::Failed(format!(
                "needs a person: the settlement of this refund cannot be watched: invalid row: {e}"
            ));
            return (planned, Asked::No, None);
        }
    };
    let bank = match banks.of_merchant(row.merchant.as_deref()) {
        Ok(bank) => bank,
        Err(e) => {
            planned.outcome = Settlement::Failed(format!(
                "needs a person: the settlement of this refund cannot be watched: {e}"
            ));
            return (planned, Asked::No, None);
        }
    };
    match bank.inquiry_for(&order_no, &xid).await {
        Ok(answer) => {
            planned.bank_state = Some(answer.state.code().to_string());
            planned.outcome = watch_verdict(&answer, &xid);
            (planned, Asked::Answered, None)
        }
        Err(e @ CtbcError::Unavailable { .. }) => {
            let error = e.to_string();
            (planned, Asked::Unavailable, Some(error))
        }
        Err(_) => (planned, Asked::Answered, None),
    }
}

fn totals(orders: &[PlannedOrder], watch: &[PlannedWatch], inquiries: usize) -> PlanTotals {
    let mut t = PlanTotals {
        inquiries,
        ..PlanTotals::default()
    };
    for o in orders {
        t.new_requests += usize::from(o.new_request);
        if let Some(skip) = &o.skipped {
            t.skipped += 1;
            *t.skipped_by_reason.entry(skip.name()).or_default() += 1;
            continue;
        }
        t.worked += 1;
        *t.worked_by_merchant.entry(o.merchant.clone()).or_default() += 1;
        match &o.action {
            Some(NextMove::Send(Sending { plan, .. })) => {
                t.send += 1;
                t.calls += plan.steps.len();
                t.to_give_back += plan.amount.amount();
                *t.by_method.entry(plan.method.as_str()).or_default() += 1;
            }
            Some(NextMove::Record(r)) => match r {
                Record::Refunded { .. } => t.record_refunded += 1,
                Record::Wait { .. } => t.wait += 1,
                Record::RetryLater { .. } => t.retry_later += 1,
                Record::NeedsPerson { .. } => t.needs_person += 1,
            },
            None => {}
        }
    }
    t.watched = watch.iter().filter(|w| w.skipped.is_none()).count();
    t
}

#[cfg(test)]
mod tests;
