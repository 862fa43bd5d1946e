//! Turns at the bank. `worker.concurrency` bounds the calls in flight to the
//! bank, not the orders in hand: a pass works twice as many orders as it has
//! turns, so that while one order commits its intent or its ending another's
//! call holds the turn, and the bank sees that many calls whenever orders are
//! ready to call. A money-moving call takes its turn after its intent is
//! committed, and is sent only while the lease that commit renewed certainly
//! outlasts the whole call (its wait for the rate limit and its timeout), so
//! no other claim can take the order while it may still be on its way; after
//! a long wait the lease is renewed first, or the call is not sent at all.

use crate::domain::record::outlasts;
use crate::domain::record::Lease;
use crate::store::{Store, StoreError};
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

/// Whether a money-moving call may leave now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Door {
    Open,
    /// The lease was renewed, yet it cannot outlast one call (a lease
    /// shorter than the call's timeout and wait): the call is not sent.
    LeaseTooShort(Duration),
}

/// Before a money-moving call, with its turn in hand: the lease renewed
/// by the intent's commit (begun at `renewed`) must certainly outlast the
/// call, rate-limit wait and timeout included, so no other claim can take
/// the order while the call may still be on its way. Otherwise it is
/// renewed once more (fenced to this claim); when that fails the order is
/// given up as a lost lease, its intent left of unknown outcome for an
/// inquiry.
pub(super) async fn lease_outlasts_call(
    store: &Store,
    lease: &Lease,
    renewed: Instant,
    (lease_for, call): (Duration, Duration),
) -> Result<Door, StoreError> {
    if outlasts(renewed.elapsed(), call, lease_for) {
        return Ok(Door::Open);
    }
    let asked = Instant::now();
    let renewed_now = store
        .renew_leases(&[(lease.id, lease.token)], lease_for)
        .await?;
    if !renewed_now.contains(&lease.id) {
        return Err(StoreError::LeaseLost);
    }
    if outlasts(asked.elapsed(), call, lease_for) {
        Ok(Door::Open)
    } else {
        Ok(Door::LeaseTooShort(call))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_sent_only_while_the_lease_certainly_outlasts_it() {
        let ms = Duration::from_millis;
        let lease = ms(120_000);
        assert!(outlasts(ms(0), ms(30_000), lease));
        assert!(outlasts(ms(77_999), ms(30_000), lease));
        assert!(
            !outlasts(ms(78_000), ms(30_000), lease),
            "the call and a tenth to spare"
        );
        // The settings the lease rule at start-up lets through can still
        // leave late after a renewal: 64 calls waiting at 5 a second.
        assert!(!outlasts(ms(100_000), ms(42_800), lease));
        assert!(
            !outlasts(ms(0), ms(120_000), lease),
            "a call as long as the lease"
        );
        assert!(!outlasts(Duration::MAX, ms(1), lease), "no overflow");
        assert!(!outlasts(ms(1), Duration::MAX, lease), "no overflow");
    }
}
