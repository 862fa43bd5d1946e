//! What a pass did, counted while it runs (so progress can be shown) and
//! summarised at its end in one log line and in `refund_passes.summary`.

use crate::domain::words::{PassOutcome, RefundMethod};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// How one order's attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderOutcome {
    Refunded(RefundMethod),
    /// Waits for a later pass or a backoff.
    Deferred,
    /// A money-moving call's outcome is unknown; rechecked later.
    Unknown,
    Failed,
    /// Given back unstarted (shutdown or a blackout window reached).
    Released,
    /// Another worker took the order over.
    LeaseLost,
    /// The shop withdrew the request before anything was sent.
    Withdrawn,
}

impl OrderOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderOutcome::Refunded(m) => m.as_str(),
            OrderOutcome::Deferred => "deferred",
            OrderOutcome::Unknown => "outcome_unknown",
            OrderOutcome::Failed => "failed",
            OrderOutcome::Released => "released",
            OrderOutcome::LeaseLost => "lease_lost",
            OrderOutcome::Withdrawn => "withdrawn",
        }
    }
}

/// Live counters of a running pass.
#[derive(Debug, Default)]
pub struct PassCounters {
    pub backlog: AtomicU64,
    pub claimed: AtomicU64,
    pub done: AtomicU64,
    pub refunded_reversal: AtomicU64,
    pub refunded_capture_reversal: AtomicU64,
    pub refunded_refund: AtomicU64,
    pub deferred: AtomicU64,
    pub unknown: AtomicU64,
    pub failed: AtomicU64,
    pub released: AtomicU64,
    pub lease_lost: AtomicU64,
    pub withdrawn: AtomicU64,
    pub watched: AtomicU64,
    pub settled: AtomicU64,
    pub settlement_failed: AtomicU64,
    /// Why the pass stopped before working any order, when the operator must fix something.
    pub problem: std::sync::Mutex<Option<String>>,
}

impl PassCounters {
    pub fn count(&self, outcome: OrderOutcome) {
        let c = match outcome {
            OrderOutcome::Refunded(RefundMethod::Reversal) => &self.refunded_reversal,
            OrderOutcome::Refunded(RefundMethod::CaptureReversalAndReversal) => {
                &self.refunded_capture_reversal
            }
            OrderOutcome::Refunded(RefundMethod::Refund) => &self.refunded_refund,
            OrderOutcome::Deferred => &self.deferred,
            OrderOutcome::Unknown => &self.unknown,
            OrderOutcome::Failed => &self.failed,
            OrderOutcome::Released => &self.released,
            OrderOutcome::LeaseLost => &self.lease_lost,
            OrderOutcome::Withdrawn => &self.withdrawn,
        };
        c.fetch_add(1, Ordering::Relaxed);
        self.done.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("refundd_orders_total", "outcome" => outcome.as_str()).increment(1);
    }

    /// A number that changes whenever the pass gets anything done (an order
    /// claimed or finished, a settlement looked at): the scheduler tells a pass
    /// that moves from one stuck on a single statement by it.
    pub fn progress(&self) -> u64 {
        [
            &self.backlog,
            &self.claimed,
            &self.done,
            &self.watched,
            &self.settled,
            &self.settlement_failed,
        ]
        .iter()
        .fold(0u64, |sum, a| sum.wrapping_add(a.load(Ordering::Relaxed)))
    }

    pub fn snapshot(&self, outcome: PassOutcome, elapsed_ms: u64) -> PassSummary {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PassSummary {
            outcome,
            claimed: g(&self.claimed),
            refunded_reversal: g(&self.refunded_reversal),
            refunded_capture_reversal: g(&self.refunded_capture_reversal),
            refunded_refund: g(&self.refunded_refund),
            deferred: g(&self.deferred),
            outcome_unknown: g(&self.unknown),
            failed: g(&self.failed),
            released: g(&self.released),
            lease_lost: g(&self.lease_lost),
            withdrawn: g(&self.withdrawn),
            watched: g(&self.watched),
            settled: g(&self.settled),
            settlement_failed: g(&self.settlement_failed),
            elapsed_ms,
            problem: crate::sync::lock(&self.problem).clone(),
        }
    }
}

/// A finished pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PassSummary {
    /// completed | stopped | blackout
    pub outcome: PassOutcome,
    pub claimed: u64,
    pub refunded_reversal: u64,
    pub refunded_capture_reversal: u64,
    pub refunded_refund: u64,
    pub deferred: u64,
    pub outcome_unknown: u64,
    pub failed: u64,
    pub released: u64,
    pub lease_lost: u64,
    /// Requests the shop withdrew before anything was sent.
    #[serde(default)]
    pub withdrawn: u64,
    pub watched: u64,
    pub settled: u64,
    pub settlement_failed: u64,
    pub elapsed_ms: u64,
    /// A settings problem that stopped the pass before any order (a mapping
    /// mistake): what to fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl PassSummary {
    pub fn refunded(&self) -> u64 {
        self.refunded_reversal + self.refunded_capture_reversal + self.refunded_refund
    }

    /// The one-line summary `refundd once` prints.
    pub fn line(&self) -> String {
        format!(
            "pass {}: claimed {}, refunded {} (reversal {}, capture reversal + reversal {}, refund {}), deferred {}, outcome unknown {}, failed {}, released {}, withdrawn {}, settlement watched {} (settled {}, failed {}), {} ms",
            self.outcome,
            self.claimed,
            self.refunded(),
            self.refunded_reversal,
            self.refunded_capture_reversal,
            self.refunded_refund,
            self.deferred,
            self.outcome_unknown,
            self.failed,
            self.released,
            self.withdrawn,
            self.watched,
            self.settled,
            self.settlement_failed,
            self.elapsed_ms
        )
    }
}
