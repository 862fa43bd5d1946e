//! The leases one worker holds during a pass, kept alive by a renewer every
//! third of a lease until the pass is over.

use crate::store::Store;
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use uuid::Uuid;

/// The orders this worker holds leases on during a pass, for the renewer.
#[derive(Debug, Clone, Default)]
pub(super) struct Held(Arc<Mutex<HashMap<i64, Uuid>>>);

impl Held {
    pub(super) fn add(&self, leases: impl IntoIterator<Item = (i64, Uuid)>) {
        lock(&self.0).extend(leases);
    }

    pub(super) fn remove(&self, id: i64) {
        lock(&self.0).remove(&id);
    }

    fn leases(&self) -> Vec<(i64, Uuid)> {
        lock(&self.0).iter().map(|(id, t)| (*id, *t)).collect()
    }
}

/// Keeps this worker's leases alive while it works: every third of a lease.
pub(super) async fn renew_leases(
    store: Store,
    lease: Duration,
    held: Held,
    pass_over: CancellationToken,
) {
    let mut tick = tokio::time::interval((lease / 3).max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = pass_over.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = store.renew_leases(&held.leases(), lease).await {
            warn!(error = %e, "could not renew leases");
        }
    }
}
