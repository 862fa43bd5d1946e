//! When passes run: on `schedule.cron` (Asia/Taipei) with tokio-cron-scheduler,
//! never two at once in one process, one at start-up if the recorded passes
//! say one is due, and a clean stop on SIGTERM/SIGINT that finishes the order
//! in hand within the shutdown grace. The daily reconciliation
//! (`reconcile.cron`) takes its turn between passes, never beside one, so it
//! never adds to a pass's wait at the bank. Business rules live elsewhere.

use super::pass::Engine;
use super::reconcile;
use super::summary::{PassCounters, PassSummary};
use crate::ctbc::InquiryBanks;
use crate::domain::blackout::Blackout;
use crate::domain::cron::CronSchedule;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use chrono_tz::Asia::Taipei;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
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
fn termination() -> impl Future<Output = ()> + Send + 'static {
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

/// What `run` does and when: passes on `schedule.cron`, and a reconciliation
/// on `reconcile.cron` when one is set.
pub struct Schedule {
    pub passes: CronSchedule,
    pub reconcile: Option<ScheduledReconcile>,
    /// How long the orders in hand may take to finish on a stop.
    pub grace: Duration,
}

/// The reconciliation `run` does on its own (`[reconcile]`): never at once
/// with a pass, never inside a blackout window.
pub struct ScheduledReconcile {
    pub cron: CronSchedule,
    /// How far back each run looks.
    pub window: Duration,
    pub banks: InquiryBanks,
    /// Inquiries at once (`worker.concurrency`).
    pub width: usize,
    pub blackout: Blackout,
}

/// Runs passes (and reconciliations) on the schedule until `shutdown` is
/// cancelled. A pass in progress then stops claiming and finishes the orders
/// in hand; if that takes longer than the grace, this returns anyway and the
/// leases expire on their own. A reconciliation in progress is dropped: it
/// keeps nothing until its end, and the next start runs it again.
pub async fn run(
    engine: Engine,
    schedule: Schedule,
    shutdown: CancellationToken,
    hooks: Arc<dyn RunHooks>,
) -> Result<(), ScheduleError> {
    let mut scheduler = JobScheduler::new()
        .await
        .map_err(ScheduleError::Scheduler)?;
    let (pass_tick, mut pass_ticks) = ticks(&mut scheduler, &schedule.passes).await?;
    let (reconcile_tick, mut reconcile_ticks) = match &schedule.reconcile {
        Some(r) => ticks(&mut scheduler, &r.cron).await?,
        // Never sent: the channel stays open and empty.
        None => mpsc::channel(1),
    };
    scheduler.start().await.map_err(ScheduleError::Scheduler)?;

    let last = engine.store().last_started_pass().await?;
    if pass_due(&schedule.passes, last, Utc::now()) {
        info!("a pass is due by the recorded passes: running one now");
        let _ = pass_tick.try_send(());
    }
    if schedule.reconcile.is_some() {
        // Checked again when it comes: due or not is the recorded runs' to say.
        let _ = reconcile_tick.try_send(());
    }
    hooks.ready();
    info!(cron = schedule.passes.as_str(), reconcile = schedule.reconcile.as_ref().map(|r| r.cron.as_str()), worker = %engine.worker(), "refundd is running; passes follow schedule.cron, reconciliations reconcile.cron (Asia/Taipei)");

    // Often enough for a systemd watchdog of a few seconds.
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut beats = Beats {
        heartbeat: &mut heartbeat,
        hooks: &*hooks,
        shutdown: &shutdown,
    };
    while !shutdown.is_cancelled() {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {}
            _ = beats.heartbeat.tick() => hooks.beat(),
            Some(()) = pass_ticks.recv() => {
                if let Some(summary) = pass(&engine, schedule.grace, &mut beats).await {
                    hooks.pass_finished(Utc::now(), &summary);
                }
            }
            Some(()) = reconcile_ticks.recv() => {
                if let Some(r) = &schedule.reconcile {
                    reconcile_if_due(engine.store(), r, &mut beats).await;
                }
            }
        }
    }
    hooks.stopping();
    let _ = scheduler.shutdown().await;
    info!("refundd stopped");
    Ok(())
}

/// A job of `scheduler` firing on `cron` (Asia/Taipei), and the channel its
/// ticks come on. Ticks coalesce: while one waits, at most one more does.
async fn ticks(
    scheduler: &mut JobScheduler,
    cron: &CronSchedule,
) -> Result<(mpsc::Sender<()>, mpsc::Receiver<()>), ScheduleError> {
    let (tick, ticks) = mpsc::channel::<()>(1);
    let tx = tick.clone();
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
    Ok((tick, ticks))
}

/// The scheduler's pulse while it works: what it beats with, whom it tells,
/// and the stop it listens for.
struct Beats<'a> {
    heartbeat: &'a mut tokio::time::Interval,
    hooks: &'a dyn RunHooks,
    shutdown: &'a CancellationToken,
}

impl Beats<'_> {
    /// Drives `work` to its end, beating while `progress` moves: work stuck
    /// on a single statement (a lock held by someone else, a connection that
    /// never answers) goes silent, /healthz says so and systemd's watchdog is
    /// no longer pinged. `None`: a stop came first, and `work` is unfinished.
    async fn drive<F: Future>(
        &mut self,
        mut work: Pin<&mut F>,
        progress: impl Fn() -> u64,
    ) -> Option<F::Output> {
        let mut seen = progress();
        loop {
            tokio::select! {
                r = &mut work => return Some(r),
                _ = self.heartbeat.tick() => {
                    let now = progress();
                    if now != seen {
                        seen = now;
                        self.hooks.beat();
                    }
                }
                _ = self.shutdown.cancelled() => return None,
            }
        }
    }
}

/// One pass; on a stop, the orders in hand get `grace` to finish.
async fn pass(engine: &Engine, grace: Duration, beats: &mut Beats<'_>) -> Option<PassSummary> {
    let counters = Arc::new(PassCounters::default());
    let pass_stop = beats.shutdown.child_token();
    let pass = engine.run_pass(&pass_stop, counters.clone());
    tokio::pin!(pass);
    let outcome = match beats.drive(pass.as_mut(), || counters.progress()).await {
        Some(r) => r,
        None => {
            info!(
                grace_secs = grace.as_secs(),
                "stopping: finishing the orders in hand"
            );
            match tokio::time::timeout(grace, pass).await {
                Ok(r) => r,
                Err(_) => {
                    warn!("shutdown grace over with a call to the bank still open; its order keeps its lease and the next pass resumes it by inquiring");
                    return None;
                }
            }
        }
    };
    match outcome {
        Ok(summary) => Some(summary),
        Err(e) => {
            error!(error = %e, "the pass could not finish: database lost; the next tick tries again");
            None
        }
    }
}

/// A reconciliation, when the recorded runs say one is due (no worker ran
/// one since `reconcile.cron` last fired), no other worker is making one and
/// no blackout window is on. Its trouble is logged, never the scheduler's:
/// the next firing tries again.
async fn reconcile_if_due(store: &Store, r: &ScheduledReconcile, beats: &mut Beats<'_>) {
    let now = Utc::now();
    if let Some(w) = r.blackout.window_at(now) {
        info!(window = %w, "no reconciliation now: inside the blackout window (Asia/Taipei); the next firing of reconcile.cron runs it");
        return;
    }
    let turn = match store.take_reconcile_turn().await {
        Ok(Some(turn)) => turn,
        Ok(None) => {
            info!("no reconciliation here: another worker is making one");
            return;
        }
        Err(e) => {
            error!(error = %e, "no reconciliation: the database is away; the next firing tries again");
            return;
        }
    };
    match store.last_reconcile_started_at().await {
        Ok(last) if pass_due(&r.cron, last, now) => reconcile_now(store, r, beats).await,
        Ok(_) => {}
        Err(e) => {
            error!(error = %e, "no reconciliation: the database did not say when the last one ran; the next firing tries again")
        }
    }
    turn.give_back().await;
}

/// One reconciliation over the window before now, logged.
async fn reconcile_now(store: &Store, r: &ScheduledReconcile, beats: &mut Beats<'_>) {
    let now = Utc::now();
    let asked = AtomicU64::new(0);
    let window = reconcile::Window::last(now, r.window);
    info!(%window, "reconciliation: asking the bank about the orders refundd worked");
    let run = reconcile::reconcile_counted(store, &r.banks, window, r.width, &asked);
    tokio::pin!(run);
    match beats.drive(run, || asked.load(Ordering::Relaxed)).await {
        Some(Ok(report)) => report.log(),
        Some(Err(e)) => {
            error!(error = %e, "the reconciliation could not finish; the next firing of reconcile.cron tries again")
        }
        None => info!("stopping: the reconciliation in progress is dropped unkept; the next start runs it again"),
    }
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
