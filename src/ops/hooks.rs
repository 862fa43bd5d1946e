//! Connects the scheduler to what operators watch: the health endpoint learns
//! that the scheduler is alive and when passes finish, systemd learns when the
//! daemon is ready and when it is stopping.

use super::health::Health;
use super::systemd;
use crate::engine::schedule::RunHooks;
use crate::engine::summary::PassSummary;
use chrono::{DateTime, Utc};
use std::sync::Arc;

pub(crate) struct OpsHooks {
    pub health: Arc<Health>,
}

impl RunHooks for OpsHooks {
    fn ready(&self) {
        self.health.scheduler_beat();
        systemd::ready();
    }

    fn beat(&self) {
        self.health.scheduler_beat();
    }

    fn pass_finished(&self, at: DateTime<Utc>, summary: &PassSummary) {
        self.health.pass_finished(at, summary);
    }

    fn stopping(&self) {
        systemd::stopping();
    }
}
