//! `refundd plan` as an operator reads it: one line per refund saying what the
//! next pass would send and why (`A1: state 10 → capture reversal 1500, then
//! reversal`; `N1 (refund A2): ...` for one of an order's several refunds),
//! the refunds it would leave alone and why, the settlement watch, and the
//! totals, the lines grouped by merchant when the plan concerns several; or
//! the same plan as JSON for scripts. Rendering only: the plan itself is
//! `engine::plan`'s.

use super::labels;
use super::local_time::taipei;
use crate::domain::bank::Money;
use crate::domain::decide::Settlement;
use crate::domain::decide::Step;
use crate::domain::next_move::{NextMove, Record, Sending};
use crate::engine::plan::{PassPlan, PlannedOrder, PlannedWatch, Skip};
use std::fmt::Write;

/// The plan as JSON.
pub fn to_json(plan: &PassPlan) -> String {
    serde_json::to_string_pretty(plan).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// The plan for a person.
pub fn render(plan: &PassPlan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plan of a pass started at {} (inquiries only: nothing was sent that moves money, nothing was written)",
        taipei(plan.at)
    );
    if let Some(problem) = &plan.settings_problem {
        let _ = writeln!(out, "a pass now stops before any order: {problem}");
    }
    if let Some(w) = &plan.blackout {
        let _ = writeln!(
            out,
            "inside the blackout window {w} (Asia/Taipei): a pass now reads the shop's requests and works no order"
        );
    }
    let merchants = labels::merchants(
        plan.orders
            .iter()
            .map(|o| o.merchant.as_str())
            .chain(plan.settlement_watch.iter().map(|w| w.merchant.as_str())),
    );
    let by_merchant = (merchants.len() > 1).then_some(merchants.as_slice());
    let (worked, skipped): (Vec<&PlannedOrder>, Vec<&PlannedOrder>) =
        plan.orders.iter().partition(|o| o.skipped.is_none());
    let line = |o: &PlannedOrder| {
        let refund = labels::refund(&o.order_no, o.refund_id.as_deref());
        (o.merchant.clone(), format!("{refund}: {}", order_line(o)))
    };
    let _ = writeln!(out, "\nworks now ({}):", worked.len());
    lines(
        &mut out,
        worked.into_iter().map(line).collect(),
        by_merchant,
    );
    let _ = writeln!(out, "\nskips ({}):", skipped.len());
    lines(
        &mut out,
        skipped.into_iter().map(line).collect(),
        by_merchant,
    );
    if !plan.settlement_watch.is_empty() {
        let _ = writeln!(out, "\nsettlement watch ({}):", plan.settlement_watch.len());
        let watched = plan
            .settlement_watch
            .iter()
            .map(|w| (w.merchant.clone(), watch_line(w)));
        lines(&mut out, watched.collect(), by_merchant);
    }
    if plan.write_backs_pending > 0 {
        let _ = writeln!(
            out,
            "\nthe pass also tries again {} outcome(s) the shop's database refused before (see refundd status)",
            plan.write_backs_pending
        );
    }
    let _ = writeln!(out, "\n{}", totals_line(plan));
    out
}

/// A section's lines, each `(merchant, text)`: `nothing` for none; under a
/// heading per merchant, in `by_merchant`'s order, when the plan concerns several.
fn lines(out: &mut String, lines: Vec<(String, String)>, by_merchant: Option<&[&str]>) {
    if lines.is_empty() {
        let _ = writeln!(out, "  nothing");
    }
    let Some(merchants) = by_merchant else {
        for (_, text) in &lines {
            let _ = writeln!(out, "  {text}");
        }
        return;
    };
    for merchant in merchants {
        let mut of_merchant = lines.iter().filter(|(m, _)| m == merchant).peekable();
        if of_merchant.peek().is_some() {
            let _ = writeln!(out, "  merchant {merchant}:");
        }
        for (_, text) in of_merchant {
            let _ = writeln!(out, "    {text}");
        }
    }
}

/// One refund of the settlement watch: its bank state and the watch's verdict.
fn watch_line(w: &PlannedWatch) -> String {
    let outcome = match &w.outcome {
        Settlement::Settled => "settled".to_string(),
        Settlement::StillSettling if !w.unconfirmed => {
            "still settling, watched again next pass".to_string()
        }
        Settlement::StillSettling => {
            "still settling and the watch's days are over: left unconfirmed".to_string()
        }
        Settlement::Failed(reason) => person(reason),
    };
    let line = match &w.skipped {
        Some(skip) => format!("skipped: {} (then: {outcome})", skip_text(skip)),
        None => outcome,
    };
    let refund = labels::refund(&w.order_no, w.refund_id.as_deref());
    format!("{refund}: {}{line}", state_of(&w.bank_state))
}

fn totals_line(plan: &PassPlan) -> String {
    let t = &plan.totals;
    let methods: Vec<String> = t
        .by_method
        .iter()
        .map(|(m, n)| format!("{m} {n}"))
        .collect();
    let sends = if t.send == 0 {
        "sends for 0".to_string()
    } else {
        format!(
            "sends for {} ({} call{} giving back {}: {})",
            t.send,
            t.calls,
            if t.calls == 1 { "" } else { "s" },
            t.to_give_back,
            methods.join(", ")
        )
    };
    let skips: Vec<String> = t
        .skipped_by_reason
        .iter()
        .map(|(r, n)| format!("{} {n}", r.replace('_', " ")))
        .collect();
    let skips = if skips.is_empty() {
        String::new()
    } else {
        format!(" ({})", skips.join(", "))
    };
    let merchants = if t.worked_by_merchant.len() > 1 {
        let at: Vec<String> = labels::merchants(t.worked_by_merchant.keys().map(String::as_str))
            .into_iter()
            .map(|m| format!("{m} {}", t.worked_by_merchant[m]))
            .collect();
        format!(" (by merchant: {})", at.join(", "))
    } else {
        String::new()
    };
    format!(
        "totals: works {} order(s){merchants} ({} new request(s)): {sends}, records refunded {}, waits {}, retries later {}, needs a person {}; skips {}{skips}; watches {}; {} inquiries sent",
        t.worked,
        t.new_requests,
        t.record_refunded,
        t.wait,
        t.retry_later,
        t.needs_person,
        t.skipped,
        t.watched,
        t.inquiries
    )
}

/// `state 10 → capture reversal 1500, then reversal`, and the like.
fn order_line(o: &PlannedOrder) -> String {
    let new = if o.new_request { "new request, " } else { "" };
    let asked = match (&o.bank_state, o.inquiry_error) {
        (Some(_), _) => state_of(&o.bank_state),
        (None, Some(kind)) => format!("inquiry {kind} → "),
        (None, None) => String::new(),
    };
    let action = o.action.as_ref().map(action_text);
    let what = match (&o.skipped, action) {
        (None, Some(a)) => a,
        (None, None) => "nothing".to_string(),
        (Some(skip), Some(a)) => format!("skipped: {} (then: {a})", skip_text(skip)),
        (Some(skip), None) => format!("skipped: {}", skip_text(skip)),
    };
    format!("{new}{asked}{what}")
}

fn state_of(state: &Option<String>) -> String {
    state
        .as_ref()
        .map(|s| format!("state {s} → "))
        .unwrap_or_default()
}

fn action_text(a: &NextMove) -> String {
    match a {
        NextMove::Send(Sending { plan, authorised }) => {
            let after_capture_reversal = plan.steps.len() > 1;
            plan.steps
                .iter()
                .map(|c| call_text(*c, *authorised, after_capture_reversal))
                .collect::<Vec<_>>()
                .join(", then ")
        }
        NextMove::Record(Record::Refunded { method, amount }) => format!(
            "records refunded ({method}, {}) without a call: the bank shows refundd's own earlier call took effect",
            amount.amount()
        ),
        NextMove::Record(Record::Wait { reason }) => {
            format!("waits for a later pass: {}", reason.as_str())
        }
        NextMove::Record(Record::RetryLater {
            reason,
            attempt,
            max_attempts,
        }) => format!("tries again later (failed attempt {attempt} of {max_attempts}): {reason}"),
        NextMove::Record(Record::NeedsPerson { reason }) => person(reason),
    }
}

/// `refund_failed` with its reason, said once.
fn person(reason: &str) -> String {
    let reason = reason.strip_prefix("needs a person: ").unwrap_or(reason);
    format!("needs a person: {reason}")
}

/// A call as the plan prints it, its amounts in minor units.
fn call_text(c: Step, authorised: Money, after_capture_reversal: bool) -> String {
    let authorised = authorised.amount();
    match c {
        Step::CaptureReversal => format!("capture reversal {authorised}"),
        Step::Reversal { new_auth_amount } => match new_auth_amount.amount() {
            0 if after_capture_reversal => "reversal".to_string(),
            0 => format!("reversal {authorised}"),
            left => format!(
                "reversal {} (the authorisation lowered from {authorised} to {left})",
                authorised - left,
            ),
        },
        Step::Refund { amount } => format!("refund {}", amount.amount()),
    }
}

fn skip_text(s: &Skip) -> String {
    match s {
        Skip::Blackout { window } => format!("blackout window {window} (Asia/Taipei)"),
        Skip::RecheckDelay {
            operation,
            left_secs,
        } => format!(
            "the outcome of an earlier {} is unknown and the recheck delay has {left_secs} s to run; the pass after it inquires again",
            operation.as_str().replace('_', " ")
        ),
        Skip::NotDue {
            next_attempt_at,
            last_error,
        } => {
            let at = next_attempt_at.map(taipei).unwrap_or_else(|| "?".into());
            match last_error {
                Some(e) => format!("not due until {at} (last: {e})"),
                None => format!("not due until {at}"),
            }
        }
        Skip::Held { until } => format!(
            "another worker holds it until {}",
            until.map(taipei).unwrap_or_else(|| "?".into())
        ),
        Skip::Withdrawn => {
            "the shop no longer lists it and nothing was sent: the pass withdraws it".to_string()
        }
        Skip::RefundedAlready { refunded_amount } => format!(
            "refunded already ({}); the shop asks again, and an order is refunded once",
            refunded_amount.map_or("?".to_string(), |a| a.to_string())
        ),
        Skip::WaitsForEarlierRefund { earlier } => {
            let earlier = earlier.as_ref().map(|id| format!(" {id}")).unwrap_or_default();
            format!("waits for the order's earlier refund{earlier} (an order's refunds go one at a time, oldest first)")
        }
    }
}
