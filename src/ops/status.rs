//! `refundd status`: the refund queue at a glance for an operator (a table) or
//! a script (`--json`): counts per status, the oldest waiting request, orders
//! waiting on backoff, calls of unknown outcome, refunds still settling,
//! failures with their reasons, and the last pass. A refund of an order with
//! several is named with its id (`N1 (refund A2)`) beside what the order has
//! had back in all; with several merchants, the counts are given per merchant
//! and every list names each refund's merchant. The last reconciliation with
//! the bank and the mismatches no one has resolved close it.

use super::labels;
use super::local_time::{taipei, taipei_or_dash};
use super::table::Table;
use crate::domain::words::PassOutcome;
use crate::engine::summary::PassSummary;
use crate::store::passes::PassRecord;
use crate::store::status::{QueueView, RefundOf};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt::Write;

/// Everything `refundd status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    #[serde(flatten)]
    pub queue: QueueView,
    pub last_pass: Option<LastPass>,
    /// Events not yet delivered to the webhook, and dead ones.
    pub events: crate::store::outbox::DeliveryState,
    /// Whether a webhook takes the events: without one they are kept, not awaited.
    pub webhook: Webhook,
    /// The last reconciliation with the bank and its mismatches still open.
    pub reconciliation: Reconciliation,
}

/// `refundd reconcile` as status shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Reconciliation {
    pub last_run: Option<LastReconcile>,
    pub open_mismatches: Vec<crate::store::reconcile::OpenMismatch>,
}

/// The last run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct LastReconcile {
    pub run: i64,
    pub finished_at: DateTime<Utc>,
    pub matched: i32,
    pub expected: i32,
    pub mismatch: i32,
    pub unchecked: i32,
}

/// Whether `notify.webhook_url` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Webhook {
    Set,
    /// The outbox keeps every event; nothing is delivered, and nothing is late.
    NotSet,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastPass {
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<PassOutcome>,
    /// `refund_passes.summary` as recorded.
    pub summary: serde_json::Value,
}

impl From<PassRecord> for LastPass {
    fn from(p: PassRecord) -> Self {
        Self {
            started_at: p.started_at,
            finished_at: p.finished_at,
            outcome: p.outcome,
            summary: p.summary,
        }
    }
}

pub async fn report(store: &Store, webhook: Webhook) -> Result<StatusReport, StoreError> {
    let queue = store.queue_view().await?;
    let last_pass = store.last_finished_pass().await?.map(LastPass::from);
    let events = store.delivery_state().await?;
    let last_run = store.last_reconcile_run().await?.map(|r| LastReconcile {
        run: r.id,
        finished_at: r.finished_at,
        matched: r.matched,
        expected: r.expected,
        mismatch: r.mismatch,
        unchecked: r.unchecked,
    });
    let reconciliation = Reconciliation {
        last_run,
        open_mismatches: store.open_mismatches().await?,
    };
    Ok(StatusReport {
        queue,
        last_pass,
        events,
        webhook,
        reconciliation,
    })
}

impl StatusReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The report for people: one table per list, times on the merchant's
    /// clock (`ops::local_time`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "refund queue at {}\n", taipei(self.queue.at));
        self.render_counts(&mut out);
        self.render_calls(&mut out);
        self.render_failed(&mut out);
        self.render_shop_side(&mut out);
        self.render_events(&mut out);
        self.render_last_pass(&mut out);
        self.render_reconciliation(&mut out);
        out
    }
}

impl StatusReport {
    /// Orders per status, those due now, and the oldest waiting request.
    fn render_counts(&self, out: &mut String) {
        let q = &self.queue;
        // With several merchants, a column of each one's beside the whole.
        let several = self.several_merchants();
        let mut header = vec!["status", "orders"];
        if several {
            header.extend(q.merchants.iter().map(|m| m.merchant.as_str()));
        }
        let mut t = Table::new(&header);
        for (i, c) in q.counts.iter().enumerate() {
            let mut cells = vec![c.status.to_string(), c.count.to_string()];
            if several {
                cells.extend(q.merchants.iter().map(|m| {
                    m.counts
                        .get(i)
                        .map_or_else(String::new, |c| c.count.to_string())
                }));
            }
            t.row(cells);
        }
        let mut due = vec!["due now".into(), q.due_now.to_string()];
        if several {
            due.extend(q.merchants.iter().map(|m| m.due_now.to_string()));
        }
        t.row(due);
        t.render(out);
        let _ = writeln!(out);
        let _ = match &q.oldest_request {
            Some(o) => writeln!(
                out,
                "oldest refund_requested: {}{} waiting {} (since {})",
                labels::refund(&o.order_no, o.refund.refund_id.as_deref()),
                if several {
                    format!(" at merchant {}", o.refund.merchant)
                } else {
                    String::new()
                },
                human_age(o.age_secs),
                taipei_or_dash(o.refund_requested_at)
            ),
            None => writeln!(out, "oldest refund_requested: none waiting"),
        };
    }

    /// Calls of unknown outcome, orders waiting for a later attempt, and
    /// refunds the bank has not settled yet.
    fn render_calls(&self, out: &mut String) {
        let q = &self.queue;
        let title = "outcome unknown (a person may need to look)";
        section(out, title, q.unknown_total, q.unknown.len());
        let c = self.columns(q.unknown.iter().map(|u| &u.refund));
        let mut t = c.table(&["order", "operation", "since", "last error"]);
        for u in &q.unknown {
            let since = taipei_or_dash(u.since);
            c.row(
                &mut t,
                &u.order_no,
                &u.refund,
                vec![u.operation.to_string(), since, text(&u.last_error)],
            );
        }
        table_of(out, t, q.unknown.len());

        let title = "waiting for a later attempt (backoff, recheck)";
        section(out, title, q.waiting_total, q.waiting.len());
        let c = self.columns(q.waiting.iter().map(|w| &w.refund));
        let mut t = c.table(&["order", "status", "attempts", "next attempt", "last error"]);
        for w in &q.waiting {
            let (attempts, next) = (w.attempts.to_string(), taipei_or_dash(w.next_attempt_at));
            let rest = vec![w.status.to_string(), attempts, next, text(&w.last_error)];
            c.row(&mut t, &w.order_no, &w.refund, rest);
        }
        table_of(out, t, q.waiting.len());

        let title = "refunds awaiting settlement at the bank";
        section(out, title, q.settling_total, q.settling.len());
        let c = self.columns(q.settling.iter().map(|s| &s.refund));
        let mut t = c.table(&["order", "refunded", "refunded at", "settlement"]);
        for s in &q.settling {
            let amount = s
                .refunded_amount
                .map_or_else(String::new, |a| a.to_string());
            let at = taipei_or_dash(s.refunded_at);
            let rest = vec![amount, at, s.settlement.to_string()];
            c.row(&mut t, &s.order_no, &s.refund, rest);
        }
        table_of(out, t, q.settling.len());
    }

    /// `refund_failed` orders, latest first, with their reasons.
    fn render_failed(&self, out: &mut String) {
        let q = &self.queue;
        let title = "refund_failed, latest first (needs a person)";
        section(out, title, q.failed_total, q.failed.len());
        let c = self.columns(q.failed.iter().map(|f| &f.refund));
        let mut t = c.table(&["order", "failed at", "reason"]);
        for f in &q.failed {
            let rest = vec![taipei(f.failed_at), text(&f.refund_error)];
            c.row(&mut t, &f.order_no, &f.refund, rest);
        }
        table_of(out, t, q.failed.len());
    }

    fn render_last_pass(&self, out: &mut String) {
        let _ = match &self.last_pass {
            None => writeln!(out, "\nlast pass: none recorded yet"),
            Some(p) => {
                let line = serde_json::from_value::<PassSummary>(p.summary.clone())
                    .map(|s| s.line())
                    .unwrap_or_else(|_| p.summary.to_string());
                writeln!(
                    out,
                    "\nlast pass: finished {} ({})\n  {}",
                    taipei_or_dash(p.finished_at),
                    p.outcome.map_or("?", PassOutcome::as_str),
                    line
                )
            }
        };
    }
}

impl StatusReport {
    /// The last reconciliation and the mismatches a person has still to resolve.
    fn render_reconciliation(&self, out: &mut String) {
        let r = &self.reconciliation;
        let _ = match &r.last_run {
            None => writeln!(out, "\nlast reconciliation: none yet (refundd reconcile)"),
            Some(l) => writeln!(
                out,
                "\nlast reconciliation: run {} finished {}: matched {}, expected {} ({} not checked), mismatch {}",
                l.run,
                taipei(l.finished_at),
                l.matched,
                l.expected,
                l.unchecked,
                l.mismatch
            ),
        };
        if r.open_mismatches.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "open mismatches ({}; close each with refundd reconcile resolve ORDER_NO --reason TEXT):",
            r.open_mismatches.len()
        );
        for m in &r.open_mismatches {
            let merchant = m
                .merchant
                .as_deref()
                .unwrap_or(crate::domain::merchant::MerchantName::DEFAULT_LABEL);
            let _ = writeln!(
                out,
                "  {} [{merchant}] since {}: {}",
                m.order_no,
                taipei(m.first_seen_at),
                m.reason
            );
        }
    }

    /// The webhook's events: undelivered (some held behind a dead event of
    /// their order, which must be delivered first) and dead.
    fn render_events(&self, out: &mut String) {
        let e = &self.events;
        if self.webhook == Webhook::NotSet {
            let _ = writeln!(
                out,
                "\nno webhook set (notify.webhook_url): {} kept in the outbox",
                events(e.undelivered + e.dead)
            );
            return;
        }
        let _ = writeln!(
            out,
            "\nevents for the webhook: {} undelivered{}{}, {} dead (refundd notify redeliver --dead)",
            e.undelivered,
            e.oldest_undelivered_secs
                .map(|s| format!(" (oldest {})", human_age(s as i64)))
                .unwrap_or_default(),
            match e.held {
                0 => String::new(),
                n => format!(", {n} of them held behind a dead event of their order"),
            },
            e.dead
        );
    }

    /// What the shop's side needs to know: write-backs its database refused,
    /// and orders it asked again after their refund.
    fn render_shop_side(&self, out: &mut String) {
        let q = &self.queue;
        let n = q.shop_writes.len();
        section(
            out,
            "outcomes the shop's database refused (retried every pass)",
            n as i64,
            n,
        );
        let c = self.columns(q.shop_writes.iter().map(|w| &w.refund));
        let mut t = c.table(&["order", "outcome", "since", "error"]);
        for w in &q.shop_writes {
            let since = taipei(w.since);
            let rest = vec![w.writeback.to_string(), since, text(&w.writeback_error)];
            c.row(&mut t, &w.order_no, &w.refund, rest);
        }
        table_of(out, t, n);
        let n = q.asked_again.len();
        section(
            out,
            "requested again after its refund (never refunded twice)",
            n as i64,
            n,
        );
        let c = self.columns(q.asked_again.iter().map(|a| &a.refund));
        let mut t = c.table(&["order", "refunded", "asked again at"]);
        for a in &q.asked_again {
            let amount = a
                .refunded_amount
                .map_or_else(String::new, |x| x.to_string());
            let rest = vec![amount, taipei_or_dash(a.requested_again_at)];
            c.row(&mut t, &a.order_no, &a.refund, rest);
        }
        table_of(out, t, n);
    }
}

impl StatusReport {
    /// Whether the records are of more than one merchant.
    fn several_merchants(&self) -> bool {
        self.queue.merchants.len() > 1
    }

    /// The columns a list adds after its order: the merchant, with several
    /// merchants; the order's refunded total, when one of its refunds listed
    /// belongs to an order with several.
    fn columns<'a>(&self, listed: impl IntoIterator<Item = &'a RefundOf>) -> RefundColumns {
        RefundColumns {
            merchant: self.several_merchants(),
            order_refunded: listed.into_iter().any(|r| r.order_refunded.is_some()),
        }
    }
}

/// Which columns about the refund a list shows after its first, the refund.
#[derive(Debug, Clone, Copy)]
struct RefundColumns {
    merchant: bool,
    order_refunded: bool,
}

impl RefundColumns {
    /// The list's table, `header[0]` being the refund's column.
    fn table(self, header: &[&str]) -> Table {
        let mut h: Vec<&str> = header.iter().take(1).copied().collect();
        if self.merchant {
            h.push("merchant");
        }
        if self.order_refunded {
            h.push("order refunded");
        }
        h.extend(header.iter().skip(1));
        Table::new(&h)
    }

    /// One refund's row: `N1 (refund A2)`, the columns about it, then `rest`.
    fn row(self, table: &mut Table, order_no: &str, refund: &RefundOf, rest: Vec<String>) {
        let mut cells = vec![labels::refund(order_no, refund.refund_id.as_deref())];
        if self.merchant {
            cells.push(refund.merchant.clone());
        }
        if self.order_refunded {
            cells.push(
                refund
                    .order_refunded
                    .map_or_else(String::new, |a| a.to_string()),
            );
        }
        cells.extend(rest);
        table.row(cells);
    }
}

/// `1 event`, `3 events`.
fn events(n: i64) -> String {
    format!("{n} event{}", if n == 1 { "" } else { "s" })
}

fn section(out: &mut String, title: &str, total: i64, shown: usize) {
    let _ = writeln!(out);
    if total as usize > shown {
        let _ = writeln!(out, "{title}: {total} (latest {shown} shown)");
    } else {
        let _ = writeln!(out, "{title}: {total}");
    }
}

/// A list's table, when it has rows.
fn table_of(out: &mut String, table: Table, rows: usize) {
    if rows > 0 {
        table.render(out);
    }
}

/// An optional text, empty when there is none.
fn text(t: &Option<String>) -> String {
    t.clone().unwrap_or_default()
}

/// `3d 4h`, `2h 5m`, `4m 10s`, `12s`.
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctbc::Operation;
    use crate::domain::words::{RefundStatus, SettlementState};
    use crate::store::outbox::DeliveryState;
    use crate::store::status::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
    }

    /// A queue with rows of every list, cells of different widths.
    fn report() -> StatusReport {
        let t = at("2026-11-28T02:02:13Z");
        let waiting = |order_no: &str, status, attempts, error: &str| WaitingOrder {
            order_no: order_no.into(),
            refund: RefundOf::only(),
            status,
            attempts,
            next_attempt_at: Some(t),
            last_error: Some(error.into()),
        };
        let settling = |order_no: &str, amount, settlement| SettlingRefund {
            order_no: order_no.into(),
            refund: RefundOf::only(),
            refunded_amount: Some(amount),
            refunded_at: Some(t),
            settlement,
        };
        let queue = QueueView {
            at: t,
            counts: vec![
                StatusCount {
                    status: RefundStatus::RefundRequested,
                    count: 7,
                },
                StatusCount {
                    status: RefundStatus::Refunded,
                    count: 12_345,
                },
            ],
            merchants: Vec::new(),
            due_now: 3,
            oldest_request: Some(OldestRequest {
                order_no: "A1".into(),
                refund: RefundOf::only(),
                refund_requested_at: Some(t),
                age_secs: 7500,
            }),
            waiting_total: 2,
            waiting: vec![
                waiting("W1", RefundStatus::Refunding, 2, "bank unavailable"),
                waiting(
                    "W_LONGER_ORDER_0001",
                    RefundStatus::RefundRequested,
                    10,
                    "busy",
                ),
            ],
            unknown_total: 2,
            unknown: vec![
                UnknownOutcome {
                    order_no: "U1".into(),
                    refund: RefundOf::only(),
                    operation: Operation::CaptureReversal,
                    since: Some(t),
                    next_attempt_at: None,
                    last_error: Some("answer lost".into()),
                },
                UnknownOutcome {
                    order_no: "U_LONGER_ORDER_002".into(),
                    refund: RefundOf::only(),
                    operation: Operation::Refund,
                    since: None,
                    next_attempt_at: None,
                    last_error: None,
                },
            ],
            settling_total: 2,
            settling: vec![
                settling("S1", 500, SettlementState::Pending),
                settling(
                    "S_LONGER_ORDER_003",
                    1_200_000,
                    SettlementState::Unconfirmed,
                ),
            ],
            failed_total: 2,
            failed: vec![
                FailedOrder {
                    order_no: "F1".into(),
                    refund: RefundOf::only(),
                    refund_error: Some("needs a person: state 13".into()),
                    failed_at: t,
                },
                FailedOrder {
                    order_no: "F_LONGER_ORDER_004".into(),
                    refund: RefundOf::only(),
                    refund_error: None,
                    failed_at: t,
                },
            ],
            shop_writes: vec![PendingShopWrite {
                order_no: "WB1".into(),
                refund: RefundOf::only(),
                writeback: RefundStatus::Refunded,
                writeback_error: Some("shop.on_refunded changed 0 rows".into()),
                since: t,
            }],
            asked_again: vec![AskedAgain {
                order_no: "TWICE".into(),
                refund: RefundOf::only(),
                requested_again_at: Some(t),
                refunded_amount: Some(500),
            }],
        };
        StatusReport {
            queue,
            last_pass: Some(LastPass {
                started_at: t,
                finished_at: Some(t),
                outcome: Some(PassOutcome::Completed),
                summary: serde_json::json!({}),
            }),
            events: DeliveryState::default(),
            webhook: Webhook::Set,
            reconciliation: Reconciliation {
                last_run: None,
                open_mismatches: Vec::new(),
            },
        }
    }

    #[test]
    fn times_are_the_merchants_with_their_offset() {
        let text = report().render();
        assert!(text.contains("2026-11-28 10:02:13 +08:00"), "{text}");
        assert!(!text.contains("UTC"), "{text}");
        assert!(!text.contains("02:02:13"), "a UTC time: {text}");
        // Every time shown carries the offset.
        for (i, _) in text.match_indices("2026-11-28 ") {
            assert_eq!(&text[i + 19..i + 26], " +08:00", "{}", &text[i..]);
        }
    }

    /// Where each of `cells` starts in `line`, looked for in order.
    fn starts(line: &str, cells: &[&str]) -> Vec<usize> {
        let mut from = 0;
        cells
            .iter()
            .map(|cell| {
                let at = from
                    + line[from..]
                        .find(cell)
                        .unwrap_or_else(|| panic!("{cell:?} not in {line:?}"));
                from = at + cell.len();
                line[..at].chars().count()
            })
            .collect()
    }

    /// Each column starts at the same offset in every row of its table.
    #[test]
    fn the_columns_of_each_table_line_up() {
        let text = report().render();
        let line = |first: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(first))
                .unwrap_or_else(|| panic!("no row {first}:\n{text}"))
        };
        let time = "2026-11-28 10:02:13 +08:00";
        let tables: [&[(&str, &[&str])]; 5] = [
            &[
                ("refund_requested", &["refund_requested", "7"]),
                ("refunded", &["refunded", "12345"]),
                ("due now", &["due now", "3"]),
            ],
            &[
                ("W1 ", &["W1", "refunding", "2", time, "bank unavailable"]),
                (
                    "W_LONGER",
                    &[
                        "W_LONGER_ORDER_0001",
                        "refund_requested",
                        "10",
                        time,
                        "busy",
                    ],
                ),
            ],
            &[
                ("U1 ", &["U1", "capture_reversal", time, "answer lost"]),
                ("U_LONGER", &["U_LONGER_ORDER_002", "refund", "-"]),
            ],
            &[
                ("S1 ", &["S1", "500", time, "pending"]),
                (
                    "S_LONGER",
                    &["S_LONGER_ORDER_003", "1200000", time, "unconfirmed"],
                ),
            ],
            &[
                ("F1 ", &["F1", time, "needs a person"]),
                ("F_LONGER", &["F_LONGER_ORDER_004", time]),
            ],
        ];
        for table in tables {
            let offsets: Vec<Vec<usize>> = table
                .iter()
                .map(|(first, cells)| starts(line(first), cells))
                .collect();
            for o in &offsets {
                assert_eq!(
                    o[..],
                    offsets[0][..o.len().min(offsets[0].len())],
                    "{table:?}:\n{text}"
                );
            }
        }
    }

    /// The report of a queue holding an order refunded in parts and a
    /// second merchant's refunds.
    fn report_of_parts_and_merchants() -> StatusReport {
        let mut r = report();
        let t = at("2026-11-28T02:02:13Z");
        let counts = |requested, refunded| {
            vec![
                StatusCount {
                    status: RefundStatus::RefundRequested,
                    count: requested,
                },
                StatusCount {
                    status: RefundStatus::Refunded,
                    count: refunded,
                },
            ]
        };
        r.queue.merchants = vec![
            MerchantCounts {
                merchant: "default".into(),
                counts: counts(5, 12_000),
                due_now: 2,
            },
            MerchantCounts {
                merchant: "brand".into(),
                counts: counts(2, 345),
                due_now: 1,
            },
        ];
        r.queue.settling[0].refund = RefundOf {
            refund_id: Some("A2".into()),
            merchant: "brand".into(),
            order_refunded: Some(700),
        };
        r.queue.settling[0].order_no = "N1".into();
        r.queue.failed[0].refund = RefundOf {
            refund_id: Some("A3".into()),
            merchant: "brand".into(),
            order_refunded: Some(700),
        };
        r.queue.failed[0].order_no = "N1".into();
        r.queue.failed[0].failed_at = t;
        r
    }

    #[test]
    fn a_refund_of_several_names_its_id_its_merchant_and_its_orders_total() {
        let r = report_of_parts_and_merchants();
        let text = r.render();
        let line = |first: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(first))
                .unwrap_or_else(|| panic!("no row {first}:\n{text}"))
        };
        let time = "2026-11-28 10:02:13 +08:00";
        // The counts per merchant beside the whole.
        assert_eq!(
            starts(line("status"), &["status", "orders", "default", "brand"]),
            starts(
                line("refund_requested"),
                &["refund_requested", "7", "5", "2"]
            ),
        );
        assert!(line("due now")
            .split_whitespace()
            .eq(["due", "now", "3", "2", "1"]));
        // Each list names the refund, its merchant, and the order's total
        // where the order has several refunds.
        let settling_header = text
            .lines()
            .find(|l| l.contains("settlement") && l.trim_start().starts_with("order"))
            .unwrap_or_else(|| panic!("no header of the settling list:\n{text}"));
        assert_eq!(
            starts(
                settling_header,
                &["order", "merchant", "order refunded", "refunded"]
            ),
            starts(
                line("N1 (refund A2)"),
                &["N1 (refund A2)", "brand", "700", "500"]
            ),
            "{text}"
        );
        assert_eq!(
            starts(
                line("S_LONGER"),
                &["S_LONGER_ORDER_003", "default", "", "1200000"]
            )[..2],
            starts(line("N1 (refund A2)"), &["N1 (refund A2)", "brand"])[..],
        );
        let failed_header = text
            .lines()
            .find(|l| l.contains("failed at") && l.trim_start().starts_with("order"))
            .unwrap_or_else(|| panic!("no header of the failed list:\n{text}"));
        assert_eq!(
            starts(
                failed_header,
                &["order", "merchant", "order refunded", "failed at"]
            ),
            starts(
                line("N1 (refund A3)"),
                &["N1 (refund A3)", "brand", "700", time]
            ),
            "{text}"
        );
        assert!(line("F_LONGER").contains("default"), "{text}");
        assert!(
            text.contains("oldest refund_requested: A1 at merchant default waiting"),
            "{text}"
        );
        // The same for scripts.
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        let settling = &json["settling"][0];
        assert_eq!(settling["order_no"], "N1");
        assert_eq!(settling["refund_id"], "A2");
        assert_eq!(settling["merchant"], "brand");
        assert_eq!(settling["order_refunded"], 700);
        let only = &json["settling"][1];
        assert_eq!(only["merchant"], "default");
        assert!(
            only.get("refund_id").is_none() && only.get("order_refunded").is_none(),
            "{only}"
        );
        assert_eq!(json["merchants"][1]["merchant"], "brand");
        assert_eq!(json["merchants"][1]["due_now"], 1);
    }

    #[test]
    fn one_merchant_and_one_refund_per_order_keep_the_plain_tables() {
        let text = report().render();
        assert!(
            !text.contains("merchant") && !text.contains("order refunded"),
            "{text}"
        );
        assert!(
            text.contains("oldest refund_requested: A1 waiting"),
            "{text}"
        );
    }

    #[test]
    fn ages_read_like_a_person_would_say_them() {
        assert_eq!(human_age(12), "12s");
        assert_eq!(human_age(250), "4m 10s");
        assert_eq!(human_age(7500), "2h 5m");
        assert_eq!(human_age(3 * 86_400 + 4 * 3600 + 5), "3d 4h");
        assert_eq!(human_age(-5), "0s");
    }
}
