//! The "about to send" record that every money-moving call waits for: the
//! claim's lease is checked live and renewed, the call is marked of unknown
//! outcome until its outcome is recorded, and the first intent fixes the
//! amount refunded while the shop still asks for it as decided. The intents of
//! all orders ready to send in the same moment are committed by one statement
//! (`group_commit`); each caller learns whether its own was recorded.

use super::group_commit::{Claim, OneStatement};
use super::refunds::KeyedEvents;
use super::word_columns::text_of;
use super::{Store, StoreError};
use crate::ctbc::Operation;
use crate::domain::bank::Money;
use crate::domain::record::{GatewayEvent, Lease};
use crate::domain::words::StepReached;
use std::collections::HashSet;
use std::time::Duration;

/// Whether an intent was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Recorded,
    /// Before anything was sent, the shop stopped asking for this refund or
    /// changed its amounts: nothing may be sent on the old request.
    ShopChanged,
}

/// One order's intent, waiting for its batch.
pub(super) struct IntentJob {
    lease: Lease,
    lease_secs: f64,
    /// The events not yet recorded (the inquiry it was decided on), then the intent.
    events: Vec<GatewayEvent>,
    operation: Option<Operation>,
    /// The step an earlier call of this attempt reached (its outcome is in `events`).
    reached: Option<StepReached>,
    /// The amount refunded, fixed by the first intent.
    amount: i64,
    /// What the plan was decided on, which the shop's request must still say.
    authorised: i64,
    refund: i64,
}

/// The intents of many orders: each record is updated only while its claim
/// holds a live lease and the order is `refunding`, and its first intent only
/// while the shop's requests (`__REQUESTS__`, placed after refundd's names)
/// still list the refund (`__KEY__` its id), once, with the amounts refundd's
/// record holds and the decision was made on (a refund the shop leaves NULL
/// is the whole amount, or for a later refund what is left), or an operator
/// retried it. An order with a call of refundd's on record (a step reached, an
/// outcome unknown) is finished whatever the shop's rows say now.
const INTENTS: &str = "WITH o AS (
     UPDATE refundd.refunds
        SET unknown_operation = j.operation, unknown_since = now(),
            lease_expires_at = now() + make_interval(secs => j.lease_secs),
            claimed_amount = COALESCE(refunds.claimed_amount, j.amount),
            step = COALESCE(j.reached, refunds.step)
       FROM (SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::float8[], $5::bigint[], $6::bigint[], $7::bigint[], $8::text[]) LIMIT cardinality($1))
            AS j(id, token, operation, lease_secs, amount, authorised, refund, reached)
      WHERE refunds.id = j.id AND refunds.lease_token = j.token
        AND refunds.lease_expires_at > now() AND refunds.status = 'refunding'
        AND (refunds.claimed_amount IS NOT NULL OR refunds.retried_by_operator
             OR refunds.step IS NOT NULL OR refunds.unknown_operation IS NOT NULL
             OR (SELECT count(*) = 1
                        AND coalesce(bool_and(r.auth_amount::numeric = j.authorised
                                              AND refunds.auth_amount = j.authorised
                                              AND r.refund_amount::numeric IS NOT DISTINCT FROM refunds.refund_amount
                                              AND coalesce(refunds.refund_amount, j.refund) = j.refund), false)
                   FROM (__REQUESTS__) AS r
                  WHERE r.order_no::text = refunds.order_no AND __KEY__ = refunds.refund_id))
     RETURNING refunds.id, refunds.order_no, refunds.refund_id, j.token),
  __EVENTS__
SELECT id, token FROM o";

impl Store {
    /// Right before a money-moving call: checks on the database that this claim
    /// still holds a live lease, renews it, marks the call's outcome unknown
    /// until it is recorded, and commits the "about to send" event (after the
    /// events not yet recorded, such as the inquiry it was decided on, or the
    /// outcome of the attempt's previous call with the step it `reached`). The first
    /// money-moving intent also fixes the amount refunded, and only while the
    /// shop's requests still list the order with the amounts it was decided on
    /// (`authorised`, `refund`: what the plan was decided on), or an operator
    /// retried it; otherwise nothing is recorded and the answer is `ShopChanged`.
    /// Returns once the intent is committed, with those of other orders.
    pub async fn record_intent(
        &self,
        lease: &Lease,
        lease_for: Duration,
        earlier: &[GatewayEvent],
        reached: Option<StepReached>,
        intent: &GatewayEvent,
        (amount, authorised, refund): (Money, Money, Money),
    ) -> Result<Intent, StoreError> {
        let job = IntentJob {
            lease: *lease,
            lease_secs: lease_for.as_secs_f64(),
            events: [earlier, std::slice::from_ref(intent)].concat(),
            operation: intent.operation,
            reached,
            amount: amount.amount(),
            authorised: authorised.amount(),
            refund: refund.amount(),
        };
        if self.intents.submit(self, job).await? {
            Ok(Intent::Recorded)
        } else {
            self.why_no_intent(lease).await
        }
    }

    /// Tells a lost lease from a request the shop withdrew or changed.
    async fn why_no_intent(&self, lease: &Lease) -> Result<Intent, StoreError> {
        let held: Option<bool> = sqlx::query_scalar(&self.sql(
            "SELECT lease_expires_at > now() AND status = 'refunding' FROM refundd.refunds
              WHERE id = $1 AND lease_token = $2",
        ))
        .bind(lease.id)
        .bind(lease.token)
        .fetch_optional(&self.pool)
        .await?;
        match held {
            Some(true) => Ok(Intent::ShopChanged),
            _ => Err(StoreError::LeaseLost),
        }
    }

    pub(super) fn intents_sql(&self) -> String {
        self.sql_with_events(INTENTS, 9)
            .replace("__KEY__", &super::intake::refund_key("to_jsonb(r)"))
            .replace("__REQUESTS__", &self.shop.requests)
    }

    /// Records `jobs` in one statement: the ids of the records it updated.
    async fn intents_statement(&self, jobs: &[IntentJob]) -> Result<HashSet<Claim>, sqlx::Error> {
        let sql = self.intents_sql();
        let q = sqlx::query_as::<_, Claim>(&sql)
            .bind(jobs.iter().map(|j| j.lease.id).collect::<Vec<_>>())
            .bind(jobs.iter().map(|j| j.lease.token).collect::<Vec<_>>())
            .bind(
                jobs.iter()
                    .map(|j| text_of(j.operation))
                    .collect::<Vec<_>>(),
            )
            .bind(jobs.iter().map(|j| j.lease_secs).collect::<Vec<_>>())
            .bind(jobs.iter().map(|j| j.amount).collect::<Vec<_>>())
            .bind(jobs.iter().map(|j| j.authorised).collect::<Vec<_>>())
            .bind(jobs.iter().map(|j| j.refund).collect::<Vec<_>>())
            .bind(jobs.iter().map(|j| text_of(j.reached)).collect::<Vec<_>>());
        let events = KeyedEvents::of(jobs.iter().map(|j| (&j.lease, j.events.as_slice())));
        let rows = events.bind_to(q).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().collect())
    }
}

impl OneStatement for IntentJob {
    fn claim(&self) -> Claim {
        (self.lease.id, self.lease.token)
    }

    async fn statement(store: &Store, jobs: &[Self]) -> Result<HashSet<Claim>, sqlx::Error> {
        store.intents_statement(jobs).await
    }
}
