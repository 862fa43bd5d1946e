//! The outcome of a money-moving call that certainly did not happen (refused,
//! unreachable, invalid), or what a fresh inquiry showed of a capture
//! reversal of unknown outcome: the call's unknown outcome is cleared and the
//! step reached committed, with its events, before anything else is sent (an
//! accepted capture reversal's outcome rides with the intent of the reversal
//! that completes it, `intents`). The outcomes of orders that reach
//! this point in the same moment are committed by one statement
//! (`group_commit`).

use super::group_commit::{Claim, OneStatement};
use super::refunds::KeyedEvents;
use super::word_columns::text_of;
use super::{Store, StoreError};
use crate::domain::record::{GatewayEvent, Lease};
use crate::domain::words::StepReached;
use std::collections::HashSet;

/// One order's step outcome, waiting for its batch.
pub(super) struct StepJob {
    lease: Lease,
    events: Vec<GatewayEvent>,
    reached: Option<StepReached>,
}

const STEPS: &str = "WITH o AS (
     UPDATE refundd.refunds f
        SET unknown_operation = NULL, unknown_since = NULL, step = COALESCE(j.reached, f.step)
       FROM (SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[]) LIMIT cardinality($1)) AS j(id, token, reached)
      WHERE f.id = j.id AND f.lease_token = j.token
     RETURNING f.id, f.order_no, f.refund_id, j.token),
  __EVENTS__
SELECT id, token FROM o";

impl Store {
    /// A money-moving call completed (accepted, or certainly not made), with
    /// the step reached if any; returns once committed, so that for a capture
    /// reversal the step is on record before the next call is sent.
    pub async fn record_step_done(
        &self,
        lease: &Lease,
        events: &[GatewayEvent],
        reached: Option<StepReached>,
    ) -> Result<(), StoreError> {
        let job = StepJob {
            lease: *lease,
            events: events.to_vec(),
            reached,
        };
        match self.steps.submit(self, job).await? {
            true => Ok(()),
            false => Err(StoreError::LeaseLost),
        }
    }

    pub(super) fn steps_sql(&self) -> String {
        self.sql_with_events(STEPS, 4)
    }

    /// Records `jobs` in one statement: the ids of the records it updated.
    async fn steps_statement(&self, jobs: &[StepJob]) -> Result<HashSet<Claim>, sqlx::Error> {
        let sql = self.steps_sql();
        let q = sqlx::query_as::<_, Claim>(&sql)
            .bind(jobs.iter().map(|j| j.lease.id).collect::<Vec<_>>())
            .bind(jobs.iter().map(|j| j.lease.token).collect::<Vec<_>>())
            .bind(jobs.iter().map(|j| text_of(j.reached)).collect::<Vec<_>>());
        let events = KeyedEvents::of(jobs.iter().map(|j| (&j.lease, j.events.as_slice())));
        let rows = events.bind_to(q).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().collect())
    }
}

impl OneStatement for StepJob {
    fn claim(&self) -> Claim {
        (self.lease.id, self.lease.token)
    }

    async fn statement(store: &Store, jobs: &[Self]) -> Result<HashSet<Claim>, sqlx::Error> {
        store.steps_statement(jobs).await
    }
}
