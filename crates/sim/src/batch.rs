//! The capture batch on a clock: the bank settles once a period, and for a
//! while transactions in the batch are locked (11/21). The admin API can run the
//! same two steps by hand; this runs them on a timer until the server stops.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{lock, Shared};

/// Every `every`: start the batch (10 -> 11, 20 -> 21), wait `duration`,
/// finish it (11 -> 12, 21 -> 22).
pub(crate) fn spawn_clock(
    shared: Arc<Shared>,
    every: Duration,
    duration: Duration,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let started = lock(&shared.ledger).batch_start();
            tracing::info!(
                captures = started.captures,
                refunds = started.refunds,
                "capture batch started"
            );
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(duration) => {}
            }
            let finished = lock(&shared.ledger).batch_finish();
            tracing::info!(
                captures = finished.captures,
                refunds = finished.refunds,
                "capture batch finished"
            );
        }
    })
}
