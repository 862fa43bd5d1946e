//! Progress of a long pass for `refundd once`: a bar with done/total, rate and
//! ETA on a terminal; a progress log line every few seconds when the logs are
//! JSON lines, so a large backlog is visible in journald or docker logs too.

use crate::engine::summary::PassCounters;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often a progress line is logged in JSON mode.
pub const LOG_EVERY: Duration = Duration::from_secs(5);
/// How often the bar is redrawn.
const DRAW_EVERY: Duration = Duration::from_millis(200);

/// A running progress display; `finish` (or dropping it) stops it.
pub struct ProgressHandle {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
    bar: Option<ProgressBar>,
}

/// Starts showing the pass's progress: a bar when `json` is false and stderr
/// is a terminal, otherwise a log line every [`LOG_EVERY`].
pub fn spawn_progress(counters: Arc<PassCounters>, json: bool) -> ProgressHandle {
    let stop = CancellationToken::new();
    if !json && std::io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} orders {per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        let task = tokio::spawn(draw(counters, bar.clone(), stop.clone()));
        ProgressHandle {
            stop,
            task: Some(task),
            bar: Some(bar),
        }
    } else {
        let task = tokio::spawn(log_lines(counters, stop.clone(), LOG_EVERY));
        ProgressHandle {
            stop,
            task: Some(task),
            bar: None,
        }
    }
}

/// Done and total of a pass; the total never reads less than what is done
/// (orders requested while the pass runs are claimed too).
pub fn done_of_total(counters: &PassCounters) -> (u64, u64) {
    let done = counters.done.load(Ordering::Relaxed);
    let total = counters.backlog.load(Ordering::Relaxed).max(done);
    (done, total)
}

async fn draw(counters: Arc<PassCounters>, bar: ProgressBar, stop: CancellationToken) {
    let mut tick = tokio::time::interval(DRAW_EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (done, total) = done_of_total(&counters);
        bar.set_length(total);
        bar.set_position(done);
    }
}

/// Logs `event="progress"` lines with done, total and rate until stopped.
pub async fn log_lines(counters: Arc<PassCounters>, stop: CancellationToken, every: Duration) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(every);
    tick.tick().await; // the first tick is immediate: nothing to say yet
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let (done, total) = done_of_total(&counters);
        let secs = started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let rate_per_sec = (rate * 10.0).round() / 10.0;
        tracing::info!(
            event = "progress",
            done,
            total,
            rate_per_sec,
            "pass progress: {done}/{total} orders, {rate_per_sec}/s"
        );
    }
}

impl ProgressHandle {
    /// Stops the display and clears the bar.
    pub fn finish(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Drop for ProgressHandle {
    fn drop(&mut self) {
        self.shut();
    }
}
