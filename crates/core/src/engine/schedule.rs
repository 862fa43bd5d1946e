//! When passes run: on `schedule.cron` (Asia/Taipei) with tokio-cron-scheduler,
//! never two at once in one process, one at start-up if the recorded passes
//! say one is due, and a clean stop on SIGTERM/SIGINT that finishes the order
//! in hand within the shutdown grace. Business rules live elsewhere.

use super::pass::Engine;
use super::summary::{PassCounters, PassSummary};
use crate::domain::cron::CronSchedule;
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use chrono_tz::Asia::Taipei;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

/// How often the scheduler reports that it is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// What the operations side learns from the scheduler (health, systemd).
pub trait RunHooks: Send + Sync {
    /// Migrations applied, scheduler started.
    fn ready(&self) {}
    /// The scheduler loop is alive: waiting for its next tick, or in a pass
    /// that got something done since the last beat.
    fn beat(&self) {}
    fn pass_finished(&self, _at: DateTime<Utc>, _summary: &PassSummary) {}
    fn stopping(&self) {}
}

/// No hooks.
pub struct NoHooks;
impl RunHooks for NoHooks {}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("the scheduler could not start: {0}")]
    Scheduler(#[source] JobSchedulerError),
    #[error("the scheduler could not take schedule.cron {cron:?}: {source}")]
    Cron {
        cron: String,
        source: JobSchedulerError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether a pass is due now: the cron fired since the last recorded pass
/// started (or no pass was ever recorded).
pub fn pass_due(
    cron: &CronSchedule,
    last_pass_started: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    let Some(last) = last_pass_started else {
        return true;
    };
    cron.next_after(last).is_some_and(|next| next <= now)
}

/// Listens for SIGTERM and SIGINT from now on (so a signal during start-up is
/// not lost) and cancels `token` when one arrives. The listener is a task of
/// `tasks` and ends when `token` is cancelled, by a signal or by its owner.
pub fn cancel_on_termination(tasks: &TaskTracker, token: CancellationToken) {
    let termination = termination();
    tasks.spawn(async move {
        tokio::select! {
            _ = termination => {
                info!("stop requested: no new orders are claimed; finishing the orders in hand");
                token.cancel();
            }
            _ = token.cancelled() => {}
        }
    });
}

/// Registers for SIGTERM and SIGINT at once (Ctrl-C where there are no
/// signals), and gives a future that resolves at the first of them.
fn termination() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let streams = {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::terminate()).and_then(|t| Ok((t, signal(SignalKind::interrupt())?)))
    };
    async move {
        #[cfg(unix)]
        if let Ok((mut term, mut int)) = streams {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs passes on the schedule until `shutdown` is cancelled. A pass in
/// progress then stops claiming and finishes the orders in hand; if that takes
/// longer than `grace`, this returns anyway and the leases expire on their own.
pub async fn run(
    engine: Engine,
    cron: &CronSchedule,
    shutdown: CancellationToken,
    grace: Duration,
    hooks: Arc<dyn RunHooks>,
) -> Result<(), ScheduleError> {
    // Ticks coalesce: while a pass runs, at most one more waits.
    let (tick_tx, mut tick_rx) = mpsc::channel::<()>(1);
    let mut scheduler = JobScheduler::new()
        .await
        .map_err(ScheduleError::Scheduler)?;
    let tx = tick_tx.clone();
    let job = Job::new_async_tz(cron.as_str(), Taipei, move |_id, _lock| {
        let tx = tx.clone();
        Box::pin(async move {
            let _ = tx.try_send(());
        })
    })
    .map_err(|source| ScheduleError::Cron {
        cron: cron.as_str().to_string(),
        source,
    })?;
    scheduler.add(job).await.map_err(ScheduleError::Scheduler)?;
    scheduler.start().await.map_err(ScheduleError::Scheduler)?;

    let last = engine.store().last_started_pass().await?;
    if pass_due(cron, last, Utc::now()) {
        info!("a pass is due by the recorded passes: running one now");
        let _ = tick_tx.try_send(());
    }
    hooks.ready();
    info!(cron = cron.as_str(), worker = %engine.worker(), "refundd is running; passes follow schedule.cron (Asia/Taipei)");

    // Often enough for a systemd watchdog of a few seconds.
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let result = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            _ = heartbeat.tick() => hooks.beat(),
            Some(()) = tick_rx.recv() => {
                let counters = Arc::new(PassCounters::default());
                let pass_stop = shutdown.child_token();
                let pass = engine.run_pass(&pass_stop, counters.clone());
                tokio::pin!(pass);
                let mut progress = counters.progress();
                let outcome = loop {
                    tokio::select! {
                        r = &mut pass => break Some(r),
                        // During a pass the scheduler is alive while the pass
                        // moves: one stuck on a single statement (a lock held
                        // by someone else, a connection that never answers)
                        // goes silent, /healthz says so and systemd's watchdog
                        // is no longer pinged.
                        _ = heartbeat.tick() => {
                            let now = counters.progress();
                            if now != progress {
                                progress = now;
                                hooks.beat();
                            }
                        }
                        _ = shutdown.cancelled() => {
                            info!(grace_secs = grace.as_secs(), "stopping: finishing the orders in hand");
                            break match tokio::time::timeout(grace, &mut pass).await {
                                Ok(r) => Some(r),
                                Err(_) => {
                                    warn!("shutdown grace over with a call to the bank still open; its order keeps its lease and the next pass resumes it by inquiring");
                                    None
                                }
                            };
                        }
                    }
                };
                match outcome {
                    Some(Ok(summary)) => hooks.pass_finished(Utc::now(), &summary),
                    Some(Err(e)) => error!(error = %e, "the pass could not finish: database lost; the next tick tries again"),
                    None => {}
                }
                if shutdown.is_cancelled() {
                    break Ok(());
                }
            }
        }
    };
    hooks.stopping();
    let _ = scheduler.shutdown().await;
    info!("refundd stopped");
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_pass_is_due_when_the_cron_fired_since_the_last_one() {
        let every_two_hours = &CronSchedule::parse("0 0 */2 * * *").unwrap();
        let t = |h, m| {
            Taipei
                .with_ymd_and_hms(2026, 11, 27, h, m, 0)
                .unwrap()
                .with_timezone(&Utc)
        };
        assert!(pass_due(every_two_hours, None, t(10, 0)));
        assert!(!pass_due(every_two_hours, Some(t(10, 0)), t(11, 59)));
        assert!(pass_due(every_two_hours, Some(t(10, 0)), t(12, 0)));
        assert!(pass_due(every_two_hours, Some(t(9, 30)), t(10, 1)));
    }
}
