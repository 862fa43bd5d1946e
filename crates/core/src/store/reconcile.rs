//! The statements behind `refundd reconcile`: the orders refundd worked in a
//! window, each summed over its refunds as reconciliation compares them with
//! the bank; a run kept with its report; each mismatch kept until a person
//! resolves it, so one found again is not new and its event goes out once.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Connection, PgConnection};

/// One order refundd worked, as its records sum it (minor units of its currency).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WorkedOrder {
    pub order_no: String,
    /// The order number the bank knows it by (`lidm`, else `order_no`).
    pub bank_order_no: String,
    /// The merchant it was paid to; `None`: the default.
    pub merchant: Option<String>,
    pub xid: Option<String>,
    pub currency: String,
    pub authorised: Option<i64>,
    pub reversed: i64,
    pub refunded: i64,
    /// A refund of settled money still in its settlement watch.
    pub settling: bool,
    /// The watch saw every refund of settled money of the order settled.
    pub settled_seen: bool,
    /// refundd's last inquiry about the order: the state it showed, or
    /// `unknown_order` as its outcome; both `None` when it never asked.
    pub last_seen_state: Option<String>,
    pub last_seen_outcome: Option<String>,
    /// The authorised amount that inquiry showed.
    pub last_seen_amount: Option<i64>,
    /// A further refund of the order is requested or under way.
    pub under_way: bool,
    /// How the money went back, each way once ('+' between), or NULL.
    pub methods: Option<String>,
    /// The statuses of its ended refunds, each once.
    pub statuses: String,
    /// When refundd's work on it last ended.
    pub ended_at: DateTime<Utc>,
    /// What its refunds refunded within the window.
    pub refunded_in_window: i64,
}

/// The orders with a refund that ended in `[from, to)`, each summed over all its
/// refunds (an earlier part counts in what the bank should show), with what
/// refundd's last inquiry about it showed.
const WORKED: &str = "WITH ended AS (
     SELECT DISTINCT order_no FROM refundd.refunds
      WHERE status IN ('refunded', 'refund_failed', 'cancelled')
        AND coalesce(refunded_at, updated_at) >= $1 AND coalesce(refunded_at, updated_at) < $2),
  sums AS (
 SELECT r.order_no,
        (array_agg(coalesce(r.lidm, r.order_no) ORDER BY r.id))[1] AS bank_order_no,
        (array_agg(r.merchant ORDER BY r.id))[1] AS merchant,
        (array_agg(r.xid ORDER BY r.id))[1] AS xid,
        (array_agg(r.currency ORDER BY r.id))[1] AS currency,
        max(r.auth_amount) AS authorised,
        coalesce(sum(r.refunded_amount) FILTER (WHERE r.status = 'refunded' AND r.refund_method <> 'refund'), 0)::bigint AS reversed,
        coalesce(sum(r.refunded_amount) FILTER (WHERE r.status = 'refunded' AND r.refund_method = 'refund'), 0)::bigint AS refunded,
        coalesce(bool_or(r.status = 'refunded' AND r.settlement = 'pending'), false) AS settling,
        coalesce(bool_and(r.settlement = 'settled') FILTER (WHERE r.status = 'refunded' AND r.refund_method = 'refund'), false) AS settled_seen,
        coalesce(bool_or(r.status IN ('refund_requested', 'refunding')), false) AS under_way,
        string_agg(DISTINCT r.refund_method, '+') FILTER (WHERE r.status = 'refunded') AS methods,
        string_agg(DISTINCT r.status, '+') FILTER (WHERE r.status IN ('refunded', 'refund_failed', 'cancelled')) AS statuses,
        max(coalesce(r.refunded_at, r.updated_at)) FILTER (WHERE r.status IN ('refunded', 'refund_failed', 'cancelled')) AS ended_at,
        coalesce(sum(r.refunded_amount) FILTER (WHERE r.status = 'refunded' AND r.refunded_at >= $1 AND r.refunded_at < $2), 0)::bigint AS refunded_in_window
   FROM refundd.refunds r JOIN ended USING (order_no)
  GROUP BY r.order_no)
 SELECT s.*, seen.bank_state AS last_seen_state, seen.outcome AS last_seen_outcome,
        seen.amount AS last_seen_amount
   FROM sums s
   LEFT JOIN LATERAL (
        SELECT e.bank_state, e.outcome, e.amount FROM refundd.refund_events e
         WHERE e.order_no = s.order_no AND e.operation = 'inquiry'
           AND e.outcome IN ('accepted', 'unknown_order')
         ORDER BY e.id DESC LIMIT 1) seen ON true
  ORDER BY s.order_no";

/// A run's counts and report, as it is kept.
#[derive(Debug, Clone)]
pub struct RunToKeep<'a> {
    pub started_at: DateTime<Utc>,
    pub window: (DateTime<Utc>, DateTime<Utc>),
    /// Matched, expected, mismatch, not checked.
    pub counts: [i32; 4],
    /// The money refunded in the window, per currency.
    pub refunded_total: &'a Value,
    pub report: &'a Value,
    /// The mismatches (order number, merchant, reason).
    pub mismatches: Vec<(&'a str, Option<&'a str>, &'a str)>,
    /// Orders found matched: an open mismatch of theirs is closed.
    pub matched: Vec<&'a str>,
}

/// A kept run.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeptRun {
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub window_from: DateTime<Utc>,
    pub window_to: DateTime<Utc>,
    pub matched: i32,
    pub expected: i32,
    pub mismatch: i32,
    pub unchecked: i32,
    pub refunded_total: Value,
    pub report: Value,
}

/// A mismatch not resolved yet.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct OpenMismatch {
    pub order_no: String,
    pub merchant: Option<String>,
    pub reason: String,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// Keeps a run's mismatches: one open per order (found again, it is the same
/// one); one a person resolved with the same reason stays resolved; a new one
/// raises `refund.mismatch` on the order's latest refund. Returns the order
/// numbers whose mismatch is new.
const MISMATCHES: &str = "WITH found AS (
     SELECT * FROM unnest($2::text[], $3::text[], $4::text[]) AS f(order_no, merchant, reason)),
  seen AS (
     UPDATE refundd.reconcile_mismatches m
        SET last_run = $1, last_seen_at = now(), reason = f.reason
       FROM found f
      WHERE m.order_no = f.order_no AND m.resolved_at IS NULL
  RETURNING m.order_no),
  accepted AS (
     SELECT DISTINCT m.order_no FROM refundd.reconcile_mismatches m JOIN found f USING (order_no)
      WHERE m.resolved_by IS NOT NULL AND m.reason = f.reason),
  new AS (
     INSERT INTO refundd.reconcile_mismatches (order_no, merchant, reason, first_run, last_run)
     SELECT f.order_no, f.merchant, f.reason, $1, $1 FROM found f
      WHERE f.order_no NOT IN (SELECT order_no FROM seen)
        AND f.order_no NOT IN (SELECT order_no FROM accepted)
  RETURNING order_no, reason)
 SELECT n.order_no,
        (SELECT count(*) FROM (SELECT refundd.outbox_append(r, 'refund.mismatch', NULL, n.reason)
                                 FROM refundd.refunds r WHERE r.order_no = n.order_no
                                ORDER BY r.id DESC LIMIT 1) AS told) AS told
   FROM new n";

/// The turn to reconcile: one worker at a time, however many share the
/// database. Held as a session advisory lock on a connection of its own,
/// which leaves the pool with it: given back, the lock is released; dropped
/// (a stop mid-run), the connection closes and the server releases it.
pub struct ReconcileTurn {
    conn: Option<PgConnection>,
    /// The statement that releases it, in the store's schema.
    unlock: String,
}

impl std::fmt::Debug for ReconcileTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReconcileTurn")
    }
}

/// The lock's keys: the runs table's own identity, and 1.
const TURN: &str = "'refundd.reconcile_runs'::regclass::oid::integer, 1";

impl ReconcileTurn {
    /// Releases the turn and closes its connection.
    pub async fn give_back(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let unlock = sqlx::query_scalar::<_, bool>(&self.unlock)
                .fetch_one(&mut conn)
                .await;
            if unlock.is_ok() {
                let _ = conn.close().await;
            }
        }
    }
}

impl Store {
    /// The turn to reconcile, or `None` while another worker holds it.
    pub async fn take_reconcile_turn(&self) -> Result<Option<ReconcileTurn>, StoreError> {
        let mut conn = self.pool.acquire().await?.detach();
        let sql = format!("SELECT pg_try_advisory_lock({TURN})");
        let taken: bool = sqlx::query_scalar(&self.sql(&sql))
            .fetch_one(&mut conn)
            .await?;
        let unlock = format!("SELECT pg_advisory_unlock({TURN})");
        let turn = ReconcileTurn {
            conn: Some(conn),
            unlock: self.sql(&unlock).into_owned(),
        };
        Ok(taken.then_some(turn))
    }

    /// The orders refundd worked whose work ended in `[from, to)`.
    pub async fn worked_orders(
        &self,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<Vec<WorkedOrder>, StoreError> {
        Ok(sqlx::query_as(&self.sql(WORKED))
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Keeps a run, its mismatches (raising `refund.mismatch` for the new
    /// ones) and closes the open mismatches of orders found matched, in one
    /// transaction. Returns the run's id and the orders whose mismatch is new.
    pub async fn keep_reconcile_run(
        &self,
        run: &RunToKeep<'_>,
    ) -> Result<(i64, Vec<String>), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Two workers' runs keep one after the other, so the second finds the
        // first's mismatches open and tells none of them again.
        sqlx::query(
            &self.sql("LOCK TABLE refundd.reconcile_mismatches IN SHARE ROW EXCLUSIVE MODE"),
        )
        .execute(&mut *tx)
        .await?;
        let [matched, expected, mismatch, unchecked] = run.counts;
        let id: i64 = sqlx::query_scalar(&self.sql(
            "INSERT INTO refundd.reconcile_runs (started_at, window_from, window_to, matched,
                 expected, mismatch, unchecked, refunded_total, report)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        ))
        .bind(run.started_at)
        .bind(run.window.0)
        .bind(run.window.1)
        .bind(matched)
        .bind(expected)
        .bind(mismatch)
        .bind(unchecked)
        .bind(run.refunded_total)
        .bind(run.report)
        .fetch_one(&mut *tx)
        .await?;
        let new: Vec<(String, i64)> = sqlx::query_as(&self.sql(MISMATCHES))
            .bind(id)
            .bind(run.mismatches.iter().map(|m| m.0).collect::<Vec<_>>())
            .bind(run.mismatches.iter().map(|m| m.1).collect::<Vec<_>>())
            .bind(run.mismatches.iter().map(|m| m.2).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?;
        sqlx::query(&self.sql(
            "UPDATE refundd.reconcile_mismatches
                SET resolved_at = now(), resolved_by_run = $1,
                    resolution = 'the bank holds what refundd''s records say'
              WHERE resolved_at IS NULL AND order_no = ANY($2)",
        ))
        .bind(id)
        .bind(&run.matched)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((id, new.into_iter().map(|(o, _)| o).collect()))
    }

    /// The latest run kept, if any.
    pub async fn last_reconcile_run(&self) -> Result<Option<KeptRun>, StoreError> {
        Ok(sqlx::query_as(&self.sql(
            "SELECT id, started_at, finished_at, window_from, window_to, matched, expected,
                    mismatch, unchecked, refunded_total, report
               FROM refundd.reconcile_runs ORDER BY id DESC LIMIT 1",
        ))
        .fetch_optional(&self.pool)
        .await?)
    }

    /// When the latest run kept started (by any worker), if one was.
    pub async fn last_reconcile_started_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(
            sqlx::query_scalar(&self.sql("SELECT max(started_at) FROM refundd.reconcile_runs"))
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The mismatches no person or later run has closed, oldest first.
    pub async fn open_mismatches(&self) -> Result<Vec<OpenMismatch>, StoreError> {
        Ok(sqlx::query_as(&self.sql(
            "SELECT order_no, merchant, reason, first_seen_at, last_seen_at
               FROM refundd.reconcile_mismatches WHERE resolved_at IS NULL ORDER BY id",
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Closes the order's open mismatch, recording who and why; `false`
    /// when it has none. Changes nothing of the order's money or the bank's.
    pub async fn resolve_mismatch(
        &self,
        order_no: &str,
        by: &str,
        why: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(&self.sql(
            "UPDATE refundd.reconcile_mismatches
                SET resolved_at = now(), resolved_by = $2, resolution = $3
              WHERE order_no = $1 AND resolved_at IS NULL",
        ))
        .bind(order_no)
        .bind(by)
        .bind(why)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
