//! systemd's service protocol (Type=notify): READY once migrations are done,
//! WATCHDOG pings while the scheduler is alive, STOPPING on shutdown. Every
//! call is a no-op when the process does not run under systemd.

use super::health::Health;
use sd_notify::NotifyState;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn notify(state: NotifyState<'_>, what: &str) {
    // Without NOTIFY_SOCKET this returns Ok without doing anything.
    if let Err(e) = sd_notify::notify(false, &[state]) {
        tracing::warn!(error = %e, "could not tell systemd {what}");
    }
}

/// Start-up is done (settings read, schema migrated, endpoint listening).
pub fn ready() {
    notify(NotifyState::Ready, "READY");
}

/// One watchdog ping: send only while the scheduler is alive.
pub fn watchdog() {
    notify(NotifyState::Watchdog, "WATCHDOG");
}

/// Shutdown has begun.
pub fn stopping() {
    notify(NotifyState::Stopping, "STOPPING");
}

/// `WatchdogSec=` as systemd passed it, if the watchdog is on for this process.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec))
    } else {
        None
    }
}

/// Pings the watchdog at half its interval while the scheduler beat within
/// the interval; stops pinging (so systemd restarts the service) when it goes
/// silent. Nothing is spawned when systemd asked for no watchdog. The task
/// is the caller's tracker's, and ends when `stop` is cancelled.
pub fn spawn_watchdog(tracker: &TaskTracker, health: Arc<Health>, stop: CancellationToken) {
    let Some(interval) = watchdog_interval() else {
        return;
    };
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if health.scheduler_alive(interval) {
                watchdog();
            } else {
                tracing::warn!(
                    "scheduler silent for longer than the systemd watchdog interval; not pinging"
                );
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_systemd_every_call_is_a_no_op() {
        if std::env::var_os("NOTIFY_SOCKET").is_some() {
            return;
        }
        ready();
        watchdog();
        stopping();
        if std::env::var_os("WATCHDOG_USEC").is_none() {
            assert_eq!(watchdog_interval(), None);
        }
    }
}
