//! What the daemon knows about its own liveness, shared between the scheduler
//! (which reports heartbeats and finished passes) and the health endpoint and
//! systemd watchdog (which read them). No I/O here.

use crate::engine::summary::PassSummary;
use crate::sync::lock;
use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the scheduler may stay silent before it counts as stuck, unless
/// set with [`Health::with_liveness`].
pub const DEFAULT_LIVENESS: Duration = Duration::from_secs(120);

/// Liveness of one process: the scheduler's last heartbeat and the last pass.
#[derive(Debug)]
pub struct Health {
    liveness: Duration,
    last_beat: Mutex<Option<Instant>>,
    last_pass: Mutex<Option<FinishedPass>>,
}

/// The last pass this process finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedPass {
    pub at: DateTime<Utc>,
    pub summary: PassSummary,
}

impl Health {
    pub fn new() -> Arc<Health> {
        Self::with_liveness(DEFAULT_LIVENESS)
    }

    /// The scheduler counts as alive while it beat within `liveness`.
    pub fn with_liveness(liveness: Duration) -> Arc<Health> {
        Arc::new(Health {
            liveness,
            last_beat: Mutex::new(None),
            last_pass: Mutex::new(None),
        })
    }

    /// The window `/healthz` uses for [`Health::scheduler_alive`].
    pub fn liveness(&self) -> Duration {
        self.liveness
    }

    /// Called by the scheduler loop on every tick or heartbeat.
    pub fn scheduler_beat(&self) {
        *lock(&self.last_beat) = Some(Instant::now());
    }

    pub fn pass_finished(&self, at: DateTime<Utc>, summary: &PassSummary) {
        *lock(&self.last_pass) = Some(FinishedPass {
            at,
            summary: summary.clone(),
        });
        metrics::gauge!("refundd_last_pass_timestamp_seconds").set(at.timestamp() as f64);
    }

    /// Whether the scheduler beat within `within`; never, before its first beat.
    pub fn scheduler_alive(&self, within: Duration) -> bool {
        self.since_beat().is_some_and(|d| d <= within)
    }

    /// Time since the last heartbeat, if there was one.
    pub fn since_beat(&self) -> Option<Duration> {
        lock(&self.last_beat).map(|at| at.elapsed())
    }

    pub fn last_pass(&self) -> Option<FinishedPass> {
        lock(&self.last_pass).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheduler_is_alive_only_after_a_beat_and_within_the_window() {
        let h = Health::new();
        assert!(!h.scheduler_alive(Duration::from_secs(60)));
        h.scheduler_beat();
        assert!(h.scheduler_alive(Duration::from_secs(60)));
    }

    #[test]
    fn the_last_pass_is_kept() {
        let h = Health::new();
        assert!(h.last_pass().is_none());
        let s = PassSummary {
            outcome: crate::domain::words::PassOutcome::Completed,
            claimed: 3,
            ..Default::default()
        };
        let at = Utc::now();
        h.pass_finished(at, &s);
        assert_eq!(h.last_pass(), Some(FinishedPass { at, summary: s }));
    }
}
