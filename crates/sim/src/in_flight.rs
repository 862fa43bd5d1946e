//! How many calls the bank is answering at once, and the most it ever was:
//! a bank limits the calls a merchant may have open, so tests check through
//! the ledger report that refundd keeps to `worker.concurrency` of them.

use std::sync::atomic::{AtomicU64, Ordering};

/// The calls being answered now and the most at one moment since the start
/// (or the last reset).
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    now: AtomicU64,
    most: AtomicU64,
}

/// One call being answered; dropping it ends it, however the handler returns.
pub(crate) struct Answering<'a>(&'a InFlight);

impl InFlight {
    pub(crate) fn begin(&self) -> Answering<'_> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        Answering(self)
    }

    pub(crate) fn most(&self) -> u64 {
        self.most.load(Ordering::SeqCst)
    }

    /// Forgets the most so far (calls still being answered count again).
    pub(crate) fn reset(&self) {
        self.most
            .store(self.now.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_most_calls_at_once() {
        let f = InFlight::default();
        let a = f.begin();
        let b = f.begin();
        drop(a);
        let c = f.begin();
        assert_eq!(f.most(), 2);
        drop((b, c));
        let _d = f.begin();
        assert_eq!(f.most(), 2, "the most stays after calls end");
        f.reset();
        assert_eq!(f.most(), 1, "a reset starts from the calls still open");
    }
}
