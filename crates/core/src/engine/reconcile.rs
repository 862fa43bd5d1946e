//! `refundd reconcile`: asks the bank again about every order refundd worked in
//! a window and classifies each against refundd's records (`domain::reconcile`),
//! then keeps the run, so a mismatch is told once and the latest report can be
//! printed without asking the bank. It holds only `InquiryBanks`: it cannot
//! send a money-moving call, and the compiler sees to that.
//!
//! ```compile_fail
//! // Reconciliation asks through inquiry-only clients: a client that can move
//! // money is not one.
//! async fn run(store: &refundd_core::store::Store, bank: &refundd_core::ctbc::Merchants) {
//!     let window = refundd_core::engine::reconcile::Window::last(chrono::Utc::now(), std::time::Duration::from_secs(60));
//!     let _ = refundd_core::engine::reconcile::reconcile(store, bank, window, 4).await;
//! }
//! ```

use crate::ctbc::types::{OrderNo, TxState, Xid};
use crate::ctbc::{CtbcError, InquiryBanks};
use crate::domain::merchant::MerchantName;
use crate::domain::reconcile::{reconcile as classify, BankSide, Class, OwnSide, Verdict};
use crate::domain::words::CallOutcome;
use crate::store::reconcile::{RunToKeep, WorkedOrder};
use crate::store::{Store, StoreError};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Taipei;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tracing::{info, warn};

/// The window of a run: orders whose work ended in `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Window {
    /// The default: the last seven days.
    pub const DEFAULT_SPAN: Duration = Duration::from_secs(7 * 24 * 3600);

    /// The `span` before `now`.
    pub fn last(now: DateTime<Utc>, span: Duration) -> Window {
        let span = chrono::Duration::from_std(span).unwrap_or(chrono::Duration::MAX);
        Window {
            from: now
                .checked_sub_signed(span)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
            to: now,
        }
    }

    /// `--since 7d`, `--since 36h`: the span before `now`.
    pub fn since(now: DateTime<Utc>, text: &str) -> Result<Window, String> {
        let span = humantime::parse_duration(text.trim()).map_err(|e| {
            format!("--since {text:?} is not a duration ({e}); give one such as 7d or 36h")
        })?;
        if span.is_zero() {
            return Err(format!(
                "--since {text:?} is no time at all; give one such as 7d or 36h"
            ));
        }
        Ok(Window::last(now, span))
    }

    /// `--from DATE --to DATE`: whole days in the merchant's time zone
    /// (Asia/Taipei), both included.
    pub fn days(from: &str, to: &str) -> Result<Window, String> {
        let day = |flag: &str, text: &str| {
            NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                .map_err(|e| format!("{flag} {text:?} is not a date ({e}); give it as 2026-12-01"))
        };
        let (first, last) = (day("--from", from)?, day("--to", to)?);
        if last < first {
            return Err(format!("--to {to} is before --from {from}"));
        }
        let midnight = |d: NaiveDate| {
            let local = d.and_hms_opt(0, 0, 0).unwrap_or_default();
            Taipei
                .from_local_datetime(&local)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| format!("{d} has no midnight in Asia/Taipei"))
        };
        let after_last = last.succ_opt().ok_or("--to is too far in the future")?;
        Ok(Window {
            from: midnight(first)?,
            to: midnight(after_last)?,
        })
    }
}

/// "from 2026-12-01 07:30 to 2026-12-08 07:30 (Asia/Taipei)".
impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let local = |t: DateTime<Utc>| t.with_timezone(&Taipei).format("%Y-%m-%d %H:%M");
        write!(
            f,
            "from {} to {} (Asia/Taipei)",
            local(self.from),
            local(self.to)
        )
    }
}

/// One order of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRow {
    pub order_no: String,
    /// The merchant's name (`default` for the `[ctbc]` table's own).
    pub merchant: String,
    /// How refundd gave the money back (`reversal`, `refund`, ...), if it did.
    pub method: Option<String>,
    /// What refundd's records say went back, in minor units.
    pub refundd_amount: i64,
    pub currency: String,
    /// The bank's authorised amount and state, when it answered.
    pub bank_amount: Option<i64>,
    pub bank_state: Option<String>,
    pub class: Class,
    pub reason: String,
    /// The bank did not answer: the next run asks again.
    pub unchecked: bool,
    /// When refundd's work on the order ended.
    pub ended_at: DateTime<Utc>,
    /// What the order's refunds refunded within the window.
    #[serde(default)]
    pub refunded_in_window: i64,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The run as it was kept (`None` before it is).
    pub run: Option<i64>,
    pub started_at: DateTime<Utc>,
    pub window: Window,
    pub totals: BTreeMap<Class, usize>,
    /// Orders the bank did not answer for (counted as expected).
    pub unchecked: usize,
    /// The money refundd refunded in the window, per currency (minor units).
    pub refunded_total: BTreeMap<String, i64>,
    /// Orders whose mismatch this run found first.
    pub new_mismatches: Vec<String>,
    pub rows: Vec<ReportRow>,
}

/// Asks the bank about every order refundd worked in `window`, `width` at a
/// time (the clients keep the rate limit), classifies each and keeps the run.
pub async fn reconcile(
    store: &Store,
    banks: &InquiryBanks,
    window: Window,
    width: usize,
) -> Result<Report, ReconcileError> {
    reconcile_counted(store, banks, window, width, &AtomicU64::new(0)).await
}

/// `reconcile`, adding one to `asked` for each order the bank was asked
/// about: the scheduler tells a run that moves from one that is stuck.
pub async fn reconcile_counted(
    store: &Store,
    banks: &InquiryBanks,
    window: Window,
    width: usize,
    asked_so_far: &AtomicU64,
) -> Result<Report, ReconcileError> {
    let started_at = Utc::now();
    let worked = store.worked_orders((window.from, window.to)).await?;
    let asked = worked.len();
    let rows: Vec<ReportRow> = futures::stream::iter(worked)
        .map(|o| async {
            let row = reconcile_order(o, banks).await;
            asked_so_far.fetch_add(1, Ordering::Relaxed);
            row
        })
        .buffered(width.max(1))
        .collect()
        .await;
    if let Some(why) = banks.keys_look_wrong() {
        return Err(ReconcileError::Bank(why));
    }
    if asked > 0 && rows.iter().all(|r| r.unchecked) {
        return Err(ReconcileError::Bank(format!(
            "the bank answered none of the {asked} inquiries (first: {}); check ctbc.base_url and the network, then run refundd reconcile again",
            rows[0].reason
        )));
    }
    let mut report = Report::of(started_at, window, rows);
    keep(store, &mut report).await?;
    Ok(report)
}

/// Keeps the run; the report learns its id and which mismatches are new.
async fn keep(store: &Store, report: &mut Report) -> Result<(), StoreError> {
    let json = serde_json::to_value(&report.rows).unwrap_or_default();
    let total = serde_json::to_value(&report.refunded_total).unwrap_or_default();
    let count = |c: Class| report.totals.get(&c).copied().unwrap_or(0) as i32;
    let mismatches = report.rows.iter().filter(|r| r.class == Class::Mismatch);
    let kept = RunToKeep {
        started_at: report.started_at,
        window: (report.window.from, report.window.to),
        counts: [
            count(Class::Matched),
            count(Class::Expected),
            count(Class::Mismatch),
            report.unchecked as i32,
        ],
        refunded_total: &total,
        report: &json,
        mismatches: mismatches
            .map(|r| {
                (
                    r.order_no.as_str(),
                    merchant_of(&r.merchant),
                    r.reason.as_str(),
                )
            })
            .collect(),
        matched: (report.rows.iter())
            .filter(|r| r.class == Class::Matched)
            .map(|r| r.order_no.as_str())
            .collect(),
    };
    let (id, new) = store.keep_reconcile_run(&kept).await?;
    report.run = Some(id);
    report.new_mismatches = new;
    Ok(())
}

fn merchant_of(label: &str) -> Option<&str> {
    (label != MerchantName::DEFAULT_LABEL).then_some(label)
}

impl Report {
    /// The run in the log, as `refundd run` tells it: one summary line, and a
    /// warning for each mismatch found first, since a person must look.
    pub fn log(&self) {
        let count = |c: Class| self.totals.get(&c).copied().unwrap_or(0);
        info!(
            event = "reconcile_summary",
            run = self.run,
            matched = count(Class::Matched),
            expected = count(Class::Expected),
            mismatch = count(Class::Mismatch),
            unchecked = self.unchecked,
            new_mismatches = self.new_mismatches.len(),
            "reconciled {} orders worked {}: {} matched, {} expected, {} mismatch ({} new){}",
            self.rows.len(),
            self.window,
            count(Class::Matched),
            count(Class::Expected),
            count(Class::Mismatch),
            self.new_mismatches.len(),
            if self.unchecked > 0 {
                format!(", {} not checked", self.unchecked)
            } else {
                String::new()
            }
        );
        let new = self
            .rows
            .iter()
            .filter(|r| self.new_mismatches.contains(&r.order_no));
        for row in new {
            warn!(
                event = "reconcile_mismatch",
                order_no = %row.order_no,
                merchant = %row.merchant,
                reason = %row.reason,
                "a person must look: the bank does not hold what refundd recorded ({}); see refundd reconcile --last, and close it with refundd reconcile resolve {} --reason TEXT",
                row.reason,
                row.order_no
            );
        }
    }

    fn of(started_at: DateTime<Utc>, window: Window, rows: Vec<ReportRow>) -> Report {
        let mut totals: BTreeMap<Class, usize> = Class::ALL.iter().map(|c| (*c, 0)).collect();
        let mut refunded_total: BTreeMap<String, i64> = BTreeMap::new();
        for r in &rows {
            *totals.entry(r.class).or_default() += 1;
            *refunded_total.entry(r.currency.clone()).or_default() += r.refunded_in_window;
        }
        Report {
            run: None,
            started_at,
            window,
            totals,
            unchecked: rows.iter().filter(|r| r.unchecked).count(),
            refunded_total,
            new_mismatches: Vec::new(),
            rows,
        }
    }
}

/// The latest run as it was kept, without asking the bank.
pub async fn last_run(store: &Store) -> Result<Option<Report>, ReconcileError> {
    let Some(kept) = store.last_reconcile_run().await? else {
        return Ok(None);
    };
    let rows: Vec<ReportRow> = serde_json::from_value(kept.report).map_err(|e| {
        ReconcileError::Kept(format!(
            "the kept report of run {} cannot be read: {e}",
            kept.id
        ))
    })?;
    let window = Window {
        from: kept.window_from,
        to: kept.window_to,
    };
    let report = Report::of(kept.started_at, window, rows);
    Ok(Some(Report {
        run: Some(kept.id),
        ..report
    }))
}

/// One order: its records against a fresh inquiry at its merchant's bank.
async fn reconcile_order(o: WorkedOrder, banks: &InquiryBanks) -> ReportRow {
    let own = OwnSide {
        authorised: o.authorised,
        reversed: o.reversed,
        refunded: o.refunded,
        settling: o.settling,
        settled_seen: o.settled_seen,
        last_seen: last_seen(&o),
        under_way: o.under_way,
    };
    let mut row = ReportRow {
        order_no: o.order_no.clone(),
        merchant: o
            .merchant
            .clone()
            .unwrap_or(MerchantName::DEFAULT_LABEL.to_string()),
        method: o.methods.clone(),
        refundd_amount: own.given_back(),
        currency: o.currency.clone(),
        bank_amount: None,
        bank_state: None,
        class: Class::Expected,
        reason: String::new(),
        unchecked: false,
        ended_at: o.ended_at,
        refunded_in_window: o.refunded_in_window,
    };
    match ask(&o, banks).await {
        Ok(bank) => {
            if let BankSide::Holds { state, auth_amount } = &bank {
                row.bank_state = Some(state.code().to_string());
                row.bank_amount = *auth_amount;
            }
            let Verdict { class, reason } = classify(&own, &bank);
            (row.class, row.reason) = (class, reason);
        }
        Err(why) => {
            row.unchecked = true;
            row.reason = format!("not checked: {why}; the next run asks again");
        }
    }
    row
}

/// What refundd's last inquiry about the order showed, as the bank's side.
fn last_seen(o: &WorkedOrder) -> Option<BankSide> {
    match (&o.last_seen_state, o.last_seen_outcome.as_deref()) {
        (Some(code), _) => Some(BankSide::Holds {
            state: TxState::from_code(code),
            auth_amount: o.last_seen_amount,
        }),
        (None, Some(outcome)) if outcome == CallOutcome::UnknownOrder.as_str() => {
            Some(BankSide::UnknownOrder)
        }
        _ => None,
    }
}

/// The bank's side of one order, or why it could not be had.
async fn ask(o: &WorkedOrder, banks: &InquiryBanks) -> Result<BankSide, String> {
    let order_no = OrderNo::parse(&o.bank_order_no)
        .map_err(|e| format!("the order number cannot be asked about ({e})"))?;
    let bank = banks.of_merchant(o.merchant.as_deref())?;
    let xid = o.xid.as_deref().and_then(|x| Xid::parse(x.trim()).ok());
    let answer = match &xid {
        Some(xid) => bank.inquiry_for(&order_no, xid).await,
        None => bank.inquiry(&order_no).await,
    };
    match answer {
        Ok(a) => Ok(BankSide::Holds {
            state: a.state.clone(),
            auth_amount: a.auth_amount.map(|m| m.amount()),
        }),
        Err(CtbcError::UnknownOrder { .. }) => Ok(BankSide::UnknownOrder),
        Err(e) => Err(e.to_string()),
    }
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The bank could not be asked at all: no run is kept.
    #[error("no reconciliation: {0}")]
    Bank(String),
    /// A kept run that cannot be read back.
    #[error("{0}")]
    Kept(String),
}

#[cfg(test)]
mod tests;
