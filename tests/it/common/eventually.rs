//! Waiting for something another task or process makes happen: `eventually`
//! polls a condition until it holds or the deadline passes, and then fails
//! naming what was awaited. Tests wait on the condition itself, never on a
//! sleep that hopes it has come true.

use std::fmt::Display;
use std::future::Future;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

/// How long to wait between two looks: short at first, so a test is not
/// slower than what it waits for, then at most this.
const FIRST_POLL: Duration = Duration::from_millis(5);
const SLOWEST_POLL: Duration = Duration::from_millis(100);

/// What a condition says: `true`/`false`, or `Some(value)` once there is one.
pub trait Holds {
    type Value;
    fn holds(self) -> Option<Self::Value>;
}

impl Holds for bool {
    type Value = ();
    fn holds(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Holds for Option<T> {
    type Value = T;
    fn holds(self) -> Option<T> {
        self
    }
}

/// Polls `condition` until it holds, and returns its value; panics with
/// "`what` did not happen within `within`" if it does not hold in time (a
/// look that itself hangs past the deadline counts as not holding).
pub async fn eventually<C, F, H>(within: Duration, what: impl Display, mut condition: C) -> H::Value
where
    C: FnMut() -> F,
    F: Future<Output = H>,
    H: Holds,
{
    let deadline = Instant::now() + within;
    let mut pause = FIRST_POLL;
    loop {
        if let Ok(look) = tokio::time::timeout_at(deadline, condition()).await {
            if let Some(value) = look.holds() {
                return value;
            }
        }
        let now = Instant::now();
        if now >= deadline {
            panic!("waited {within:?} for {what}; it did not happen");
        }
        tokio::time::sleep_until((now + pause).min(deadline)).await;
        pause = (pause * 2).min(SLOWEST_POLL);
    }
}

/// A description of what was awaited, followed by what a process logged to
/// `log` (read when the wait fails, so it shows the process's last words).
pub struct WithLog<'a> {
    pub what: &'a str,
    pub log: &'a Path,
}

impl Display for WithLog<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let said = std::fs::read_to_string(self.log).unwrap_or_default();
        write!(f, "{}; the process logged:\n{said}", self.what)
    }
}
