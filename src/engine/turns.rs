//! Turns at the bank. `worker.concurrency` bounds the calls in flight to the
//! bank, not the orders in hand: a pass works twice as many orders as it has
//! turns, so that while one order commits its intent or its ending another's
//! call holds the turn, and the bank sees that many calls whenever orders are
//! ready to call. A money-moving call takes its turn after its intent is
//! committed, and is sent only while the lease that commit renewed is
//! certainly still this claim's; after a long wait the lease is renewed
//! first, or the call is not sent at all.

use super::pass::Engine;
use crate::store::{Lease, StoreError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Orders worked at once for each turn at the bank.
pub(super) const ORDERS_PER_TURN: usize = 2;

/// The turns at the bank one engine shares between its orders.
#[derive(Debug, Clone)]
pub(super) struct Turns(Arc<Semaphore>);

impl Turns {
    pub(super) fn new(calls_at_once: usize) -> Self {
        Self(Arc::new(Semaphore::new(calls_at_once.max(1))))
    }

    /// Waits for a turn, first come first served; the call ends it by
    /// dropping it. `None` cannot happen: the turns are never closed.
    pub(super) async fn take(&self) -> Option<SemaphorePermit<'_>> {
        self.0.acquire().await.ok()
    }
}

/// Whether a lease renewed `since_renewal` ago, for `lease`, is certainly
/// still live, with a tenth of it to spare for the request to leave.
pub(super) fn still_live(since_renewal: Duration, lease: Duration) -> bool {
    since_renewal.saturating_add(lease / 10) < lease
}

impl Engine {
    /// Before a money-moving call, with its turn in hand: the lease renewed
    /// by the intent's commit (begun at `renewed`) must still be live. After
    /// a long wait for the turn it is renewed once more (fenced to this
    /// claim); when that fails the order is given up as a lost lease, its
    /// intent left of unknown outcome for an inquiry.
    pub(super) async fn lease_live_for_call(
        &self,
        lease: &Lease,
        renewed: Instant,
    ) -> Result<(), StoreError> {
        if still_live(renewed.elapsed(), self.settings.lease) {
            return Ok(());
        }
        let asked = Instant::now();
        let renewed_now = self
            .store
            .renew_leases(&[(lease.id, lease.token)], self.settings.lease)
            .await?;
        if renewed_now.contains(&lease.id) && still_live(asked.elapsed(), self.settings.lease) {
            Ok(())
        } else {
            Err(StoreError::LeaseLost)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_sent_only_while_the_lease_is_certainly_live() {
        let ms = Duration::from_millis;
        assert!(still_live(ms(0), ms(120_000)));
        assert!(still_live(ms(107_999), ms(120_000)));
        assert!(!still_live(ms(108_000), ms(120_000)), "a tenth to spare");
        assert!(!still_live(ms(500_000), ms(120_000)));
        assert!(!still_live(Duration::MAX, ms(120_000)), "no overflow");
    }
}
