//! `refundd status`: the refund queue at a glance for an operator (a table) or
//! a script (`--json`): counts per status, the oldest waiting request, orders
//! waiting on backoff, calls of unknown outcome, refunds still settling,
//! failures with their reasons, and the last pass.

use crate::engine::summary::PassSummary;
use crate::store::passes::PassRecord;
use crate::store::status::QueueView;
use crate::store::vocabulary::PassOutcome;
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
    Ok(StatusReport {
        queue,
        last_pass,
        events,
        webhook,
    })
}

impl StatusReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The human table.
    pub fn render(&self) -> String {
        let q = &self.queue;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "refund queue at {}",
            q.at.format("%Y-%m-%d %H:%M:%S UTC")
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "  {:<18} {:>8}", "status", "orders");
        for c in &q.counts {
            let _ = writeln!(out, "  {:<18} {:>8}", c.status, c.count);
        }
        let _ = writeln!(out, "  {:<18} {:>8}", "due now", q.due_now);
        let _ = writeln!(out);
        match &q.oldest_request {
            Some(o) => {
                let _ = writeln!(
                    out,
                    "oldest refund_requested: {} waiting {} (since {})",
                    o.order_no,
                    human_age(o.age_secs),
                    o.refund_requested_at
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                        .unwrap_or_else(|| "?".into())
                );
            }
            None => {
                let _ = writeln!(out, "oldest refund_requested: none waiting");
            }
        }

        section(
            &mut out,
            "outcome unknown (a person may need to look)",
            q.unknown_total,
            q.unknown.len(),
        );
        for u in &q.unknown {
            let _ = writeln!(
                out,
                "  {:<20} {:<18} since {:<20} {}",
                u.order_no,
                u.operation,
                time(u.since),
                u.last_error.as_deref().unwrap_or("")
            );
        }
        section(
            &mut out,
            "waiting for a later attempt (backoff, recheck)",
            q.waiting_total,
            q.waiting.len(),
        );
        for w in &q.waiting {
            let _ = writeln!(
                out,
                "  {:<20} {:<16} attempts {:<3} next {:<20} {}",
                w.order_no,
                w.status,
                w.attempts,
                time(w.next_attempt_at),
                w.last_error.as_deref().unwrap_or("")
            );
        }
        section(
            &mut out,
            "refunds awaiting settlement at the bank",
            q.settling_total,
            q.settling.len(),
        );
        for s in &q.settling {
            let _ = writeln!(
                out,
                "  {:<20} {:>10} refunded {:<20} {}",
                s.order_no,
                s.refunded_amount.map(|a| a.to_string()).unwrap_or_default(),
                time(s.refunded_at),
                s.settlement
            );
        }
        section(
            &mut out,
            "refund_failed, latest first (needs a person)",
            q.failed_total,
            q.failed.len(),
        );
        for f in &q.failed {
            let _ = writeln!(
                out,
                "  {:<20} {:<20} {}",
                f.order_no,
                f.failed_at.format("%Y-%m-%d %H:%M:%S"),
                f.refund_error.as_deref().unwrap_or("")
            );
        }
        self.render_shop_side(&mut out);
        self.render_events(&mut out);
        let _ = writeln!(out);
        match &self.last_pass {
            None => {
                let _ = writeln!(out, "last pass: none recorded yet");
            }
            Some(p) => {
                let line = serde_json::from_value::<PassSummary>(p.summary.clone())
                    .map(|s| s.line())
                    .unwrap_or_else(|_| p.summary.to_string());
                let _ = writeln!(
                    out,
                    "last pass: finished {} ({})\n  {}",
                    time(p.finished_at),
                    p.outcome.map_or("?", PassOutcome::as_str),
                    line
                );
            }
        }
        out
    }
}

impl StatusReport {
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
        for w in &q.shop_writes {
            let _ = writeln!(
                out,
                "  {:<20} {:<14} since {:<20} {}",
                w.order_no,
                w.writeback,
                w.since.format("%Y-%m-%d %H:%M:%S"),
                w.writeback_error.as_deref().unwrap_or("")
            );
        }
        let n = q.asked_again.len();
        section(
            out,
            "requested again after its refund (never refunded twice)",
            n as i64,
            n,
        );
        for a in &q.asked_again {
            let _ = writeln!(
                out,
                "  {:<20} refunded {:>10}, asked again {}",
                a.order_no,
                a.refunded_amount.map(|x| x.to_string()).unwrap_or_default(),
                time(a.requested_again_at)
            );
        }
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

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
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
    use super::human_age;

    #[test]
    fn ages_read_like_a_person_would_say_them() {
        assert_eq!(human_age(12), "12s");
        assert_eq!(human_age(250), "4m 10s");
        assert_eq!(human_age(7500), "2h 5m");
        assert_eq!(human_age(3 * 86_400 + 4 * 3600 + 5), "3d 4h");
        assert_eq!(human_age(-5), "0s");
    }
}
