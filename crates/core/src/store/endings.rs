//! How the work on an order ends: `refunded` (with the settlement watch for a
//! refund of settled money) or `refund_failed` for a person, written to
//! refundd's record with its events and back to the shop (`shop.on_refunded`,
//! `shop.on_failed`) in one transaction, fenced to the claim's lease. The
//! endings of all orders that finish in the same moment share that
//! transaction (`group_commit`); if the shop's database refuses one write-back,
//! the batch is rolled back and each ending is written alone, where a refused
//! write-back leaves refundd's record committed and the write-back pending.

use super::group_commit::{after_failure, Batch, Claim};
use super::refunds::KeyedEvents;
use super::writeback::{ShopKeys, ShopWrite, WriteBack};
use super::{Store, StoreError};
use crate::domain::bank::Money;
use crate::domain::record::{GatewayEvent, Lease};
use crate::domain::words::{CallOutcome, EventKind, RefundMethod, RefundStatus};
use sqlx::PgConnection;
use std::collections::{HashMap, HashSet};

/// How the work on an order ends, as refundd records it and tells the shop.
#[derive(Debug, Clone)]
pub(super) enum Ending {
    Refunded {
        method: RefundMethod,
        amount: i64,
        watch_days: Option<i32>,
    },
    Failed {
        reason: String,
        refunded_amount: Option<i64>,
    },
    /// A refund the bank will not settle.
    FailedAtSettlement { reason: String },
    /// A refund of refundd's cancelled before the bank's batch (`amount`
    /// the refund's, no longer given back), at an operator's request.
    Cancelled { amount: i64, reason: String },
}

impl Ending {
    /// The write-back this ending asks of the shop, as `writeback` names it.
    pub(super) fn write_back_kind(&self) -> RefundStatus {
        match self {
            Ending::Refunded { .. } => RefundStatus::Refunded,
            Ending::Failed { .. } | Ending::FailedAtSettlement { .. } => RefundStatus::RefundFailed,
            Ending::Cancelled { .. } => RefundStatus::Cancelled,
        }
    }
}

/// One order's ending, waiting for its batch.
pub(super) struct EndingJob {
    lease: Lease,
    events: Vec<GatewayEvent>,
    ending: Ending,
}

/// Records refunded: the lease and any unknown outcome cleared, the write-back
/// done or pending, the settlement watch set for a refund.
const REFUNDED: &str = "WITH o AS (
     UPDATE refundd.refunds f
        SET writeback = j.writeback, writeback_error = j.writeback_error,
            status = 'refunded', refunded_at = now(), refund_method = j.method, refunded_amount = j.amount,
            lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, unknown_operation = NULL, unknown_since = NULL,
            step = 'done', last_error = NULL, next_attempt_at = now(), requested_again_at = NULL,
            settlement = CASE WHEN j.watch_days IS NULL THEN NULL ELSE 'pending' END,
            watch_until = CASE WHEN j.watch_days IS NULL THEN NULL ELSE now() + make_interval(days => j.watch_days) END
       FROM (SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::int[]) LIMIT cardinality($1))
            AS j(id, token, writeback, writeback_error, method, amount, watch_days)
      WHERE f.id = j.id AND f.lease_token = j.token
     RETURNING f.id, f.order_no, f.refund_id, j.token),
  __EVENTS__
SELECT id, token, order_no, refund_id FROM o";

/// Records cancelled: the money stays with the shop; the settlement watch,
/// the call of unknown outcome and the lease cleared, the reason kept.
const CANCELLED: &str = "WITH o AS (
     UPDATE refundd.refunds f
        SET writeback = j.writeback, writeback_error = j.writeback_error,
            status = 'cancelled', refund_error = j.reason, last_error = NULL,
            settlement = NULL, watch_until = NULL, next_attempt_at = NULL,
            unknown_operation = NULL, unknown_since = NULL,
            lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
       FROM (SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::text[]) LIMIT cardinality($1))
            AS j(id, token, writeback, writeback_error, reason)
      WHERE f.id = j.id AND f.lease_token = j.token AND f.status = 'refunded'
     RETURNING f.id, f.order_no, f.refund_id, j.token),
  __EVENTS__
SELECT id, token, order_no, refund_id FROM o";

/// Records failed, in the queue or at settlement: the reason for a person;
/// an unknown outcome stays on the record, so `status` keeps listing it.
const FAILED: &str = "WITH o AS (
     UPDATE refundd.refunds f
        SET writeback = j.writeback, writeback_error = j.writeback_error, shop_told_failed = j.told_failed,
            status = 'refund_failed', refund_error = j.reason, last_error = j.reason,
            refunded_amount = COALESCE(j.refunded_amount, f.refunded_amount),
            settlement = CASE WHEN j.at_settlement THEN 'failed' ELSE f.settlement END,
            next_attempt_at = CASE WHEN j.at_settlement THEN f.next_attempt_at END,
            retried_by_operator = j.at_settlement AND f.retried_by_operator,
            lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
       FROM (SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::bool[], $6::text[], $7::bigint[], $8::bool[]) LIMIT cardinality($1))
            AS j(id, token, writeback, writeback_error, told_failed, reason, refunded_amount, at_settlement)
      WHERE f.id = j.id AND f.lease_token = j.token
     RETURNING f.id, f.order_no, f.refund_id, j.token),
  __EVENTS__
SELECT id, token, order_no, refund_id FROM o";

impl Store {
    pub(super) fn refunded_sql(&self) -> String {
        self.sql_with_events(REFUNDED, 8)
    }

    pub(super) fn failed_sql(&self) -> String {
        self.sql_with_events(FAILED, 9)
    }

    pub(super) fn cancelled_sql(&self) -> String {
        self.sql_with_events(CANCELLED, 6)
    }

    /// A refund of refundd's is cancelled (the bank took the refund
    /// reversal back): `cancelled`, with who asked and why, and the shop's
    /// `on_cancelled` in the same transaction.
    pub async fn finish_cancelled(
        &self,
        lease: &Lease,
        events: &[GatewayEvent],
        amount: Money,
        reason: &str,
    ) -> Result<WriteBack, StoreError> {
        let ending = Ending::Cancelled {
            amount: amount.amount(),
            reason: reason.to_string(),
        };
        self.end(lease, events, ending).await
    }

    /// The money is back: `refunded`, with the method and amount; a refund of
    /// settled money is then watched until the bank settles it. The shop's
    /// `on_refunded` runs in the same transaction.
    pub async fn finish_refunded(
        &self,
        lease: &Lease,
        events: &[GatewayEvent],
        method: RefundMethod,
        amount: Money,
        watch_days: Option<u32>,
    ) -> Result<WriteBack, StoreError> {
        let ending = Ending::Refunded {
            method,
            amount: amount.amount(),
            watch_days: watch_days.map(|d| i32::try_from(d).unwrap_or(i32::MAX)),
        };
        self.end(lease, events, ending).await
    }

    /// Nothing more refundd can do: `refund_failed` with the reason for a
    /// person, and the shop's `on_failed` in the same transaction. A call whose
    /// outcome is unknown stays on the record, so `status` keeps listing it
    /// until a person has looked.
    pub async fn fail(
        &self,
        lease: &Lease,
        events: &[GatewayEvent],
        reason: &str,
        refunded_amount: Option<Money>,
    ) -> Result<WriteBack, StoreError> {
        let ending = Ending::Failed {
            reason: reason.to_string(),
            refunded_amount: refunded_amount.map(Money::amount),
        };
        self.end(lease, events, ending).await
    }

    /// Ends the work on an order, committed with the endings of other orders;
    /// returns once committed.
    pub(super) async fn end(
        &self,
        lease: &Lease,
        events: &[GatewayEvent],
        ending: Ending,
    ) -> Result<WriteBack, StoreError> {
        let job = EndingJob {
            lease: *lease,
            events: events.to_vec(),
            ending,
        };
        self.endings.submit(self, job).await
    }

    /// Ends a batch in one transaction: refundd's records, then the shop's
    /// write-back of each order whose lease held. `None`: the shop's database
    /// refused a write-back, and nothing was committed.
    async fn end_together(
        &self,
        jobs: &[EndingJob],
    ) -> Result<Option<HashSet<Claim>>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // The batch takes its records' locks in one order (by id) before its
        // statements, so two transactions that lock several records cannot
        // each hold one the other waits for.
        sqlx::query(
            &self.sql("SELECT 1 FROM refundd.refunds WHERE id = ANY($1) ORDER BY id FOR UPDATE"),
        )
        .bind(jobs.iter().map(|j| j.lease.id).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        let recorded = self.record_endings(&mut tx, jobs, None).await?;
        for job in jobs {
            let Some(keys) = recorded.get(&job.claim()) else {
                continue;
            };
            if let ShopWrite::Refused(_) = self.write_back(&mut tx, keys, &job.ending).await? {
                return Ok(None);
            }
        }
        // A rule of the shop's checked only at COMMIT (a deferred constraint)
        // refuses the whole transaction: each ending is then written alone.
        match tx.commit().await {
            Ok(()) => Ok(Some(recorded.into_keys().collect())),
            Err(sqlx::Error::Database(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Ends one order: refundd's record and the shop's write-back in one
    /// transaction. If the shop's database refuses its write, that
    /// transaction is rolled back and the record is written alone with the
    /// write-back kept pending (no savepoint, so the usual case costs one
    /// statement of refundd's and one of the shop's).
    async fn end_alone(&self, job: EndingJob) -> Result<WriteBack, StoreError> {
        let jobs = std::slice::from_ref(&job);
        let mut tx = self.pool.begin().await?;
        let Some(keys) = self
            .record_endings(&mut tx, jobs, None)
            .await?
            .remove(&job.claim())
        else {
            return Err(StoreError::LeaseLost);
        };
        if let ShopWrite::Refused(reason) = self.write_back(&mut tx, &keys, &job.ending).await? {
            tx.rollback().await?;
            return self.end_refused(job, reason).await;
        }
        // Refused at COMMIT (a deferred constraint or constraint trigger of
        // the shop's): nothing of the transaction was kept, so refundd's
        // record is written alone, as for a refusal at the statement.
        match tx.commit().await {
            Ok(()) => Ok(WriteBack::Done),
            Err(sqlx::Error::Database(e)) => self.end_refused(job, refusal(e.as_ref())).await,
            Err(other) => Err(other.into()),
        }
    }

    /// Writes an ending whose write-back the shop's database refused: refundd's
    /// record alone, committed, with the write-back pending and a note of why.
    async fn end_refused(&self, job: EndingJob, reason: String) -> Result<WriteBack, StoreError> {
        let mut with_note = job;
        with_note.events.push(GatewayEvent {
            kind: EventKind::Note,
            outcome: Some(CallOutcome::WriteBackRefused),
            message: Some(reason.clone()),
            ..Default::default()
        });
        let mut conn = self.pool.acquire().await?;
        let jobs = std::slice::from_ref(&with_note);
        let recorded = self.record_endings(&mut conn, jobs, Some(&reason)).await?;
        if recorded.is_empty() {
            return Err(StoreError::LeaseLost);
        }
        Ok(WriteBack::Refused(reason))
    }

    /// Writes how the work ended to refundd's records, with the write-back
    /// to the shop done (`refused` None) or pending with the shop's reason:
    /// the order number of each claim whose lease held.
    async fn record_endings(
        &self,
        conn: &mut PgConnection,
        jobs: &[EndingJob],
        refused: Option<&str>,
    ) -> Result<HashMap<Claim, ShopKeys>, sqlx::Error> {
        let of_kind = |kind: RefundStatus| -> Vec<&EndingJob> {
            jobs.iter()
                .filter(|j| j.ending.write_back_kind() == kind)
                .collect()
        };
        let refunded = of_kind(RefundStatus::Refunded);
        let failed = of_kind(RefundStatus::RefundFailed);
        let cancelled = of_kind(RefundStatus::Cancelled);
        let mut recorded = HashMap::with_capacity(jobs.len());
        if !refunded.is_empty() {
            recorded.extend(self.record_refunded(&mut *conn, &refunded, refused).await?);
        }
        if !cancelled.is_empty() {
            recorded.extend(
                self.record_cancelled(&mut *conn, &cancelled, refused)
                    .await?,
            );
        }
        if !failed.is_empty() {
            recorded.extend(self.record_failed(&mut *conn, &failed, refused).await?);
        }
        Ok(recorded)
    }

    async fn record_refunded(
        &self,
        conn: &mut PgConnection,
        jobs: &[&EndingJob],
        refused: Option<&str>,
    ) -> Result<Vec<(Claim, ShopKeys)>, sqlx::Error> {
        let (mut method, mut amount, mut watch) = (Vec::new(), Vec::new(), Vec::new());
        for j in jobs {
            if let Ending::Refunded {
                method: m,
                amount: a,
                watch_days,
            } = j.ending
            {
                method.push(m.as_str());
                amount.push(a);
                watch.push(watch_days);
            }
        }
        let sql = self.refunded_sql();
        let q = ending_query(&sql, jobs, refused)
            .bind(method)
            .bind(amount)
            .bind(watch);
        ended(q, jobs, conn).await
    }

    async fn record_cancelled(
        &self,
        conn: &mut PgConnection,
        jobs: &[&EndingJob],
        refused: Option<&str>,
    ) -> Result<Vec<(Claim, ShopKeys)>, sqlx::Error> {
        let reason: Vec<&str> = jobs
            .iter()
            .map(|j| match &j.ending {
                Ending::Cancelled { reason, .. } => reason.as_str(),
                _ => "",
            })
            .collect();
        let sql = self.cancelled_sql();
        let q = ending_query(&sql, jobs, refused).bind(reason);
        ended(q, jobs, conn).await
    }

    async fn record_failed(
        &self,
        conn: &mut PgConnection,
        jobs: &[&EndingJob],
        refused: Option<&str>,
    ) -> Result<Vec<(Claim, ShopKeys)>, sqlx::Error> {
        let (mut reason, mut refunded_amount, mut at_settlement) =
            (Vec::new(), Vec::new(), Vec::new());
        for j in jobs {
            match &j.ending {
                Ending::Failed {
                    reason: r,
                    refunded_amount: a,
                } => {
                    reason.push(r.as_str());
                    refunded_amount.push(*a);
                    at_settlement.push(false);
                }
                Ending::FailedAtSettlement { reason: r } => {
                    reason.push(r.as_str());
                    refunded_amount.push(None);
                    at_settlement.push(true);
                }
                Ending::Refunded { .. } | Ending::Cancelled { .. } => {}
            }
        }
        let told_failed = refused.is_none() && self.shop.on_failed.is_some();
        let sql = self.failed_sql();
        let q = ending_query(&sql, jobs, refused)
            .bind(vec![told_failed; jobs.len()])
            .bind(reason)
            .bind(refunded_amount)
            .bind(at_settlement);
        ended(q, jobs, conn).await
    }
}

/// The rows an ending's statement returns: the claim and the shop's keys.
type EndingRow = (i64, uuid::Uuid, String, String);
type EndingQuery<'q> =
    sqlx::query::QueryAs<'q, sqlx::Postgres, EndingRow, sqlx::postgres::PgArguments>;

/// An ending's statement with what every ending binds first (`$1` to `$4`):
/// the claims, the write-backs still to do, the shop's refusal if any.
fn ending_query<'q>(
    sql: &'q str,
    jobs: &[&EndingJob],
    refused: Option<&'q str>,
) -> EndingQuery<'q> {
    sqlx::query_as::<_, EndingRow>(sql)
        .bind(jobs.iter().map(|j| j.lease.id).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.lease.token).collect::<Vec<_>>())
        .bind(pending(jobs, refused))
        .bind(vec![refused; jobs.len()])
}

/// Binds the jobs' events last and runs the ending: the claims it ended,
/// each with the shop's keys for its write-back.
async fn ended<'q>(
    q: EndingQuery<'q>,
    jobs: &'q [&'q EndingJob],
    conn: &mut PgConnection,
) -> Result<Vec<(Claim, ShopKeys)>, sqlx::Error> {
    let events = KeyedEvents::of(jobs.iter().map(|j| (&j.lease, j.events.as_slice())));
    let rows = events.bind_to(q).fetch_all(conn).await?;
    Ok(rows
        .into_iter()
        .map(|(id, t, order_no, refund_id)| ((id, t), ShopKeys::new(order_no, refund_id)))
        .collect())
}

/// The shop's database's reason for refusing a write-back, as refundd keeps it.
pub(super) fn refusal(e: &dyn sqlx::error::DatabaseError) -> String {
    e.message().chars().filter(|c| !c.is_control()).collect()
}

/// The write-back each record keeps pending: none when the shop took it.
fn pending(jobs: &[&EndingJob], refused: Option<&str>) -> Vec<Option<&'static str>> {
    jobs.iter()
        .map(|j| refused.map(|_| j.ending.write_back_kind().as_str()))
        .collect()
}

impl Batch for EndingJob {
    type Answer = WriteBack;

    async fn run(store: &Store, jobs: Vec<Self>) -> Vec<Result<WriteBack, StoreError>> {
        if jobs.len() == 1 {
            let mut jobs = jobs;
            return match jobs.pop() {
                Some(job) => vec![store.end_alone(job).await],
                None => Vec::new(),
            };
        }
        let e = match store.end_together(&jobs).await {
            Ok(Some(ids)) => {
                let answer = |j: &EndingJob| match ids.contains(&j.claim()) {
                    true => Ok(WriteBack::Done),
                    false => Err(StoreError::LeaseLost),
                };
                return jobs.iter().map(answer).collect();
            }
            Ok(None) => return Self::one_by_one(store, jobs).await,
            Err(e) => e,
        };
        match after_failure(e, jobs.len()) {
            Some(answers) => answers,
            None => Self::one_by_one(store, jobs).await,
        }
    }
}

impl EndingJob {
    fn claim(&self) -> Claim {
        (self.lease.id, self.lease.token)
    }

    /// Each ending in a transaction of its own, where a refused write-back is
    /// that order's alone.
    async fn one_by_one(store: &Store, jobs: Vec<Self>) -> Vec<Result<WriteBack, StoreError>> {
        let mut answers = Vec::with_capacity(jobs.len());
        for job in jobs {
            answers.push(store.end_alone(job).await);
        }
        answers
    }
}
