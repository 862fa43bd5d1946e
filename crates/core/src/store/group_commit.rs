//! Group commit: writes that many orders make in the same moment (their
//! intents, their endings) are committed together, in one statement and one
//! transaction, instead of one commit each. Each caller still waits for its
//! own write's commit before it goes on, so no call to the bank is sent on an
//! intent that is not committed; only the wait is shared. This module holds
//! the queueing and knows no SQL: each kind of write says how a batch of it
//! is run (`Batch`).
//!
//! A lane has no task of its own between bursts: the first write to arrive at
//! an idle lane starts a flusher on the caller's runtime, which takes all
//! writes waiting, runs them as one batch, answers each, and goes on until
//! nothing waits. While a batch runs, the next one gathers. At most
//! `FLUSHERS` batches of a lane run at once, each on its own connection.

use super::{Store, StoreError};
use crate::sync::lock;
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Batches of one lane that may run at once.
const FLUSHERS: usize = 1;

/// The most writes committed in one batch.
const MAX_BATCH: usize = 256;

/// A kind of write that can be committed for many orders at once.
pub(super) trait Batch: Sized + Send + 'static {
    type Answer: Send + 'static;

    /// Runs `jobs` and gives one answer per job, in the same order. A batch
    /// that fails as a whole must run its jobs again one by one, so that one
    /// order's trouble is that order's answer only.
    fn run(
        store: &Store,
        jobs: Vec<Self>,
    ) -> impl Future<Output = Vec<Result<Self::Answer, StoreError>>> + Send;
}

type Waiting<J> = (J, oneshot::Sender<Result<<J as Batch>::Answer, StoreError>>);

/// The writes of one kind waiting to be committed together.
pub(super) struct Lane<J: Batch> {
    inner: Arc<LaneInner<J>>,
}

struct LaneInner<J: Batch> {
    waiting: Mutex<Vec<Waiting<J>>>,
    flushers: AtomicUsize,
}

impl<J: Batch> Default for Lane<J> {
    fn default() -> Self {
        Lane {
            inner: Arc::new(LaneInner {
                waiting: Mutex::new(Vec::new()),
                flushers: AtomicUsize::new(0),
            }),
        }
    }
}

impl<J: Batch> Clone for Lane<J> {
    fn clone(&self) -> Self {
        Lane {
            inner: self.inner.clone(),
        }
    }
}

impl<J: Batch> std::fmt::Debug for Lane<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("waiting", &lock(&self.inner.waiting).len())
            .field("flushers", &self.inner.flushers.load(Ordering::Relaxed))
            .finish()
    }
}

impl<J: Batch> Lane<J> {
    /// Queues `job` and waits until the batch that holds it is committed (or
    /// has failed).
    pub(super) async fn submit(&self, store: &Store, job: J) -> Result<J::Answer, StoreError> {
        let (answer, answered) = oneshot::channel();
        lock(&self.inner.waiting).push((job, answer));
        if let Some(place) = take_place(&self.inner) {
            tokio::spawn(flush(place, store.clone()));
        }
        answered.await.unwrap_or(Err(StoreError::GroupCommitLost))
    }
}

/// A running flusher's place; given back when dropped, so a flusher that
/// panics or is cancelled with its runtime leaves its place free.
struct Place<J: Batch>(Arc<LaneInner<J>>);

impl<J: Batch> Drop for Place<J> {
    fn drop(&mut self) {
        self.0.flushers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Takes a flusher's place, if one of the `FLUSHERS` is free.
fn take_place<J: Batch>(lane: &Arc<LaneInner<J>>) -> Option<Place<J>> {
    let mut n = lane.flushers.load(Ordering::Acquire);
    while n < FLUSHERS {
        match lane
            .flushers
            .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return Some(Place(lane.clone())),
            Err(now) => n = now,
        }
    }
    None
}

/// Runs batches until none waits. Leaving, it checks once more after giving
/// up its place, so a job queued while it left is never stranded.
async fn flush<J: Batch>(mut place: Place<J>, store: Store) {
    let lane = place.0.clone();
    loop {
        let batch = take_batch(&lane);
        if batch.is_empty() {
            drop(place);
            if lock(&lane.waiting).is_empty() {
                return;
            }
            match take_place(&lane) {
                Some(again) => place = again,
                None => return,
            }
            continue;
        }
        let (jobs, answers): (Vec<J>, Vec<_>) = batch.into_iter().unzip();
        let results = J::run(&store, jobs).await;
        for (answer, result) in answers.into_iter().zip(results) {
            // A caller that stopped waiting (its pass was dropped) needs no answer.
            let _ = answer.send(result);
        }
    }
}

fn take_batch<J: Batch>(lane: &LaneInner<J>) -> Vec<Waiting<J>> {
    let mut waiting = lock(&lane.waiting);
    let n = waiting.len().min(MAX_BATCH);
    waiting.drain(..n).collect()
}

/// What a batch that failed as a whole answers, unless its jobs must run
/// again one by one (`None`): that is when the fault may be one order's data
/// (a value PostgreSQL cannot store, a constraint or a trigger of one row), or
/// when PostgreSQL rolled the batch back to break a deadlock or a
/// serialization conflict (SQLSTATE class 40), as the statement that failed
/// committed nothing. A fault of the connection or the server is every job's:
/// each gets it, and none runs again, since a commit that failed to answer
/// may have been made.
pub(super) fn after_failure<A>(e: sqlx::Error, jobs: usize) -> Option<Vec<Result<A, StoreError>>> {
    if jobs == 1 {
        return Some(vec![Err(e.into())]);
    }
    if super::about_one_order(&e) {
        return None;
    }
    let shared = Arc::new(e);
    Some(
        (0..jobs)
            .map(|_| Err(StoreError::Shared(shared.clone())))
            .collect(),
    )
}

/// One claim of one record: its id and the claim's lease token. Answers are
/// given per claim, since one worker may hold a record under two claims (it
/// claimed it again after the first one's lease ran out).
pub(super) type Claim = (i64, uuid::Uuid);

/// A write whose batch is one statement that gives the claims it wrote
/// (those whose lease held).
pub(super) trait OneStatement: Sized + Sync {
    /// The claim the job writes under.
    fn claim(&self) -> Claim;
    fn statement(
        store: &Store,
        jobs: &[Self],
    ) -> impl Future<Output = Result<HashSet<Claim>, sqlx::Error>> + Send;
}

/// A batch of one statement answers whether each job's claim was written.
/// If the statement fails on one order's data, each job runs alone.
impl<J: OneStatement + Send + 'static> Batch for J {
    type Answer = bool;

    async fn run(store: &Store, jobs: Vec<J>) -> Vec<Result<bool, StoreError>> {
        let e = match J::statement(store, &jobs).await {
            Ok(ids) => return jobs.iter().map(|j| Ok(ids.contains(&j.claim()))).collect(),
            Err(e) => e,
        };
        if let Some(answers) = after_failure(e, jobs.len()) {
            return answers;
        }
        let mut answers = Vec::with_capacity(jobs.len());
        for job in jobs.chunks(1) {
            let ids = J::statement(store, job).await;
            answers.push(
                ids.map(|ids| ids.contains(&job[0].claim()))
                    .map_err(Into::into),
            );
        }
        answers
    }
}
