//! The demo's report: each order's journey through the passes, the shop's
//! rows as refundd wrote them back, and the bank's totals against refundd's
//! records, as text for a terminal.

use super::scenario::*;
use crate::ctbc::Operation;
use crate::ctbc::TxState;
use crate::domain::words::{CallOutcome, EventKind, RefundMethod, RefundStatus, SettlementState};
use crate::sim::admin::BatchRun;
use crate::sim::LedgerReport;
use crate::store::shop_examples::TutorialOrder;
use crate::store::story::{OrderOutcomeRow, StoryEvent};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The kinds of order whose shop row the demo shows after its passes: one
/// of each way an order ends, in the shop's own statuses.
pub(super) const SHOWN_IN_SHOP: [&str; 7] = [
    "AUTH",
    "CAPT",
    "SETTLED_PART",
    "MAINT_SETTLED",
    "CANCELLED",
    "OTHER_XID",
    "NO_XID",
];

/// What the bank's batch moved, in words: what settled, and how much of it
/// entered the batch only now.
pub(super) fn batch_in_words(run: &BatchRun) -> String {
    let count = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let (started, finished) = (run.started, run.finished);
    format!(
        "{} settled (state 12) and {} settled (state 22); {} and {} of them entered the batch now, the rest were in it already",
        count(finished.captures, "capture"),
        count(finished.refunds, "refund"),
        started.captures,
        started.refunds
    )
}

pub(super) fn by_order(events: Vec<StoryEvent>) -> BTreeMap<String, Vec<StoryEvent>> {
    let mut m: BTreeMap<String, Vec<StoryEvent>> = BTreeMap::new();
    for e in events {
        m.entry(e.order_no.clone()).or_default().push(e);
    }
    m
}

pub(super) fn short_op(op: &str) -> &str {
    match op {
        "inquiry" => "ask",
        "capture_reversal" => "cap-rev",
        "reversal" => "rev",
        "refund_reversal" => "refund-rev",
        other => other,
    }
}

/// What one pass did to one order, from its events: `ask:10, cap-rev ok, rev ok => refunded`.
pub(super) fn pass_story(events: Option<&Vec<StoryEvent>>) -> String {
    let Some(events) = events else {
        return "-".into();
    };
    let mut steps: Vec<String> = Vec::new();
    let mut ending = "";
    for e in events {
        match e.kind {
            EventKind::Outcome => {
                let op = short_op(e.operation.map_or("?", Operation::as_str));
                let outcome = e.outcome.map_or("?", CallOutcome::as_str);
                if op == "ask" {
                    match (outcome, &e.bank_state) {
                        ("accepted", Some(st)) => steps.push(format!("ask:{st}")),
                        _ => steps.push(format!("ask:{outcome}")),
                    }
                } else {
                    let o = if outcome == "accepted" { "ok" } else { outcome };
                    steps.push(format!("{op} {o}"));
                }
            }
            EventKind::Status => match e.to_status {
                Some(RefundStatus::Refunded) => ending = "=> refunded",
                Some(RefundStatus::RefundFailed) => ending = "=> failed",
                Some(RefundStatus::RefundRequested) if !steps.is_empty() => ending = "=> wait",
                _ => {}
            },
            _ => {}
        }
    }
    let story = [steps.join(", "), ending.to_string()]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if story.is_empty() {
        "-".into()
    } else {
        story
    }
}

pub(super) fn bank_at_start(s: &Seed) -> String {
    let code = |st: &TxState| st.code().to_string();
    match &s.at_bank {
        AtBank::State(st) => code(st),
        AtBank::AlreadyBack(st) => format!("{} (back)", code(st)),
        AtBank::Maintenance(st, Maintenance::Html200) => format!("{} +html200", code(st)),
        AtBank::Maintenance(st, Maintenance::Html5xx) => format!("{} +html5xx", code(st)),
        AtBank::OtherXid(st) => format!("{} other XID", code(st)),
        AtBank::Unknown => "unknown".into(),
    }
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

pub(super) fn journey_table(
    seeds: &[Seed],
    orders: &BTreeMap<String, OrderOutcomeRow>,
    p1: &BTreeMap<String, Vec<StoryEvent>>,
    p2: &BTreeMap<String, Vec<StoryEvent>>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<18} {:<15} {:>10} {:<38} {:<32} {:<18} {:<25} {:>8}  why",
        "order", "bank at start", "asked", "pass 1", "pass 2", "final", "method", "refunded"
    );
    let _ = writeln!(out, "{}", "-".repeat(175));
    for s in seeds {
        let o = orders.get(&s.order_no);
        let asked = match s.part {
            Some(p) => format!("{p}/{}", s.amount),
            None => s.amount.to_string(),
        };
        let final_status = match (o.map(|o| o.status), o.and_then(|o| o.settlement)) {
            (Some(RefundStatus::Refunded), Some(SettlementState::Settled)) => {
                "refunded, settled".to_string()
            }
            (Some(RefundStatus::Refunded), Some(SettlementState::Pending)) => {
                "refunded, settling".to_string()
            }
            (Some(st), _) => st.to_string(),
            (None, _) => "?".to_string(),
        };
        let why = o
            .and_then(|o| {
                o.refund_error.clone().or_else(|| {
                    (o.status != RefundStatus::Refunded)
                        .then(|| o.last_error.clone())
                        .flatten()
                })
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<18} {:<15} {:>10} {:<38} {:<32} {:<18} {:<25} {:>8}  {}",
            s.order_no,
            bank_at_start(s),
            asked,
            pass_story(p1.get(&s.order_no)),
            pass_story(p2.get(&s.order_no)),
            final_status,
            o.and_then(|o| o.refund_method)
                .map_or("", RefundMethod::as_str),
            o.and_then(|o| o.refunded_amount)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            truncate(&why, 70)
        );
    }
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for o in orders.values() {
        *by_status.entry(o.status.as_str()).or_default() += 1;
    }
    let _ = writeln!(
        out,
        "\n{} orders: {}",
        orders.len(),
        by_status
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out
}

/// One order of each kind in `SHOWN_IN_SHOP`, then any the shop still asks
/// back (none, when both passes went as planned).
pub(super) fn shown_in_shop(
    seeds: &[Seed],
    orders: &BTreeMap<String, OrderOutcomeRow>,
) -> Vec<String> {
    let mut shown: Vec<String> = SHOWN_IN_SHOP
        .iter()
        .filter_map(|kind| {
            let suffix = format!("_{kind}");
            seeds.iter().find(|s| s.order_no.ends_with(&suffix))
        })
        .map(|s| s.order_no.clone())
        .collect();
    shown.extend(
        orders
            .values()
            .filter(|o| o.status == RefundStatus::RefundRequested)
            .map(|o| o.order_no.clone())
            .filter(|no| !shown.contains(no))
            .take(3)
            .collect::<Vec<_>>(),
    );
    shown
}

/// Pads to `cols` terminal columns, counting a CJK character as two.
pub(super) fn pad_wide(s: &str, cols: usize) -> String {
    let width: usize = s.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum();
    format!("{s}{}", " ".repeat(cols.saturating_sub(width)))
}

/// The shop's own statuses after the passes, and a few of its rows.
pub(super) fn shop_table(statuses: &[(String, i64)], rows: &[TutorialOrder]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nthe shop's own table shop.orders, as refundd wrote it back: {}",
        statuses
            .iter()
            .map(|(status, n)| format!("{status} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "  {:<18} {} {:>6} {:>12} {:<25} note",
        "oid",
        pad_wide("status", 9),
        "total",
        "refund_total",
        "refund_method"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "  {:<18} {} {:>6} {:>12} {:<25} {}",
            r.oid,
            pad_wide(&r.status, 9),
            r.total,
            r.refund_total.map(|a| a.to_string()).unwrap_or_default(),
            r.refund_method.as_deref().unwrap_or_default(),
            truncate(r.note.as_deref().unwrap_or_default(), 60)
        );
    }
    out
}

/// The bank's ledger against the database; the second value says whether the
/// money returned agrees.
pub(super) fn totals(ledger: &LedgerReport, db_total: i64) -> (String, bool) {
    let mut out = String::new();
    let _ = writeln!(out, "\nthe bank's ledger (calls by operation):");
    let _ = writeln!(
        out,
        "  {:<18} {:>6} {:>9} {:>8} {:>14} {:>11} {:>10}",
        "operation", "calls", "accepted", "refused", "not processed", "duplicates", "returned"
    );
    for (op, t) in &ledger.by_operation {
        let _ = writeln!(
            out,
            "  {:<18} {:>6} {:>9} {:>8} {:>14} {:>11} {:>10}",
            op, t.calls, t.accepted, t.refused, t.not_processed, t.duplicates, t.returned
        );
    }
    let _ = writeln!(
        out,
        "  {:<18} {:>6} {:>9} {:>8} {:>14} {:>11} {:>10}",
        "all",
        ledger.calls,
        ledger.accepted,
        ledger.refused,
        ledger.not_processed,
        ledger.duplicates,
        ledger.returned_by_calls
    );
    if !ledger.faults.is_empty() {
        let _ = writeln!(
            out,
            "  answered by a notice page instead of the bank: {}",
            ledger
                .faults
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // refundd records refunded only what its own calls explain; money that was
    // back before the demo went to a person instead.
    let matches = ledger.returned_by_calls == db_total;
    let _ = writeln!(
        out,
        "\nduplicates (money asked back twice): {}",
        ledger.duplicates
    );
    let _ = writeln!(
        out,
        "money returned per the bank:     NT${} by refundd's calls (NT${} in all: the rest was back before the demo, not by refundd, and went to a person)",
        ledger.returned_by_calls, ledger.returned_total
    );
    let _ = writeln!(
        out,
        "money returned per the database: NT${db_total} (sum of refunded_amount of the refunded records, both shops)"
    );
    let _ = writeln!(
        out,
        "{}",
        if matches {
            "totals match."
        } else {
            "TOTALS DIFFER: the bank and the database disagree."
        }
    );
    (out, matches)
}
