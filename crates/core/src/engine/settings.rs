//! What the engine needs from the settings, read once from `config::Settings`:
//! the worker's limits, the lease, retries, the settlement watch, the blackout
//! windows. Handed to the pass, the plan and the decision path alike.

use crate::config::Settings;
use crate::domain::blackout::Blackout;
use crate::domain::next_move::AttemptRules;
use std::time::Duration;

/// What the engine needs from the settings.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub concurrency: usize,
    pub batch_size: i64,
    pub lease: Duration,
    pub max_attempts: u32,
    pub recheck: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub settlement_watch_days: u32,
    pub blackout: Blackout,
    /// An unknown outcome older than this raises `refund.needs_attention`.
    pub attention_after: Duration,
}

impl EngineSettings {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            concurrency: s.worker.concurrency,
            batch_size: s.worker.batch_size,
            lease: s.worker.lease,
            max_attempts: s.worker.max_attempts,
            recheck: s.worker.recheck,
            backoff_base: s.worker.backoff_base,
            backoff_max: s.worker.backoff_max,
            settlement_watch_days: s.worker.settlement_watch_days,
            blackout: s.schedule.blackout.clone(),
            attention_after: s.notify.attention_after,
        }
    }
}

impl EngineSettings {
    /// What the decision path reads of these settings.
    pub fn attempt_rules(&self) -> AttemptRules {
        AttemptRules {
            max_attempts: self.max_attempts,
            recheck: self.recheck,
        }
    }
}
