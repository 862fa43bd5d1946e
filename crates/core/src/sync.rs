//! One policy for a poisoned lock. refundd's mutexes guard small values that
//! every writer replaces whole (a timestamp, a set of leases held, the
//! simulator's ledger maps), so a panic in another holder cannot leave one
//! half-written: the guard is taken back and work goes on, instead of a
//! second panic, a silent skip or a default that hides the state.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the guard back if a holder panicked.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_poisoned_lock_gives_back_the_last_value_written() {
        let m = Arc::new(Mutex::new(1));
        let held = m.clone();
        let _ = std::thread::spawn(move || {
            let mut g = held.lock().unwrap();
            *g = 2;
            panic!("a holder panics");
        })
        .join();
        assert!(m.is_poisoned());
        assert_eq!(*lock(&m), 2);
    }
}
