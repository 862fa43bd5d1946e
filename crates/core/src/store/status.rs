//! Read-only views of the queue for progress, `refundd status`, the metrics
//! and health checks.

use super::{Store, StoreError};
use crate::ctbc::Operation;
use crate::domain::words::{RefundStatus, SettlementState};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

/// How many rows each list in the status view shows at most.
pub const LIST_LIMIT: i64 = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct StatusCount {
    #[sqlx(try_from = "String")]
    pub status: RefundStatus,
    pub count: i64,
}

/// The `refund_requested` order waiting longest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct OldestRequest {
    pub order_no: String,
    pub refund_requested_at: Option<DateTime<Utc>>,
    pub age_secs: i64,
}

/// An order waiting for its next attempt (backoff, recheck, a later pass).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct WaitingOrder {
    pub order_no: String,
    #[sqlx(try_from = "String")]
    pub status: RefundStatus,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// A money-moving call whose outcome is not known yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct UnknownOutcome {
    pub order_no: String,
    #[sqlx(try_from = "String")]
    pub operation: Operation,
    pub since: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// A refund of settled money the bank has not settled yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SettlingRefund {
    pub order_no: String,
    pub refunded_amount: Option<i64>,
    pub refunded_at: Option<DateTime<Utc>>,
    /// Pending (still watched) or Unconfirmed (the watch ran out).
    #[sqlx(try_from = "String")]
    pub settlement: SettlementState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct FailedOrder {
    pub order_no: String,
    pub refund_error: Option<String>,
    pub failed_at: DateTime<Utc>,
}

/// An outcome the shop's database refused to take (`shop.on_refunded` or
/// `shop.on_failed`), tried again on every pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PendingShopWrite {
    pub order_no: String,
    /// Refunded or RefundFailed: the outcome the shop has not taken.
    #[sqlx(try_from = "String")]
    pub writeback: RefundStatus,
    pub writeback_error: Option<String>,
    pub since: DateTime<Utc>,
}

/// An order the shop asked to refund again after refundd refunded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AskedAgain {
    pub order_no: String,
    pub requested_again_at: Option<DateTime<Utc>>,
    pub refunded_amount: Option<i64>,
}

/// The queue at one moment, read in one snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueView {
    pub at: DateTime<Utc>,
    pub counts: Vec<StatusCount>,
    pub due_now: i64,
    pub oldest_request: Option<OldestRequest>,
    pub waiting_total: i64,
    pub waiting: Vec<WaitingOrder>,
    pub unknown_total: i64,
    pub unknown: Vec<UnknownOutcome>,
    pub settling_total: i64,
    pub settling: Vec<SettlingRefund>,
    pub failed_total: i64,
    pub failed: Vec<FailedOrder>,
    /// Write-backs to the shop still to be done.
    pub shop_writes: Vec<PendingShopWrite>,
    /// Orders asked again after their refund (never refunded twice).
    pub asked_again: Vec<AskedAgain>,
}

/// The queue's numbers `/metrics` shows, read in one statement at each scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct QueueGauges {
    /// Orders a pass started now would work.
    pub due_now: i64,
    /// Orders with a money-moving call whose outcome is not known yet.
    pub outcome_unknown: i64,
    /// Refunds of settled money the bank has not settled yet (pending or unconfirmed).
    pub awaiting_settlement: i64,
    /// Outcomes the shop's database refused and refundd still has to write back.
    pub write_backs_pending: i64,
    /// When a pass last completed, by any worker; None before the first.
    pub last_completed_pass_at: Option<DateTime<Utc>>,
}

/// A record a pass started at `by` would claim and work.
fn worked_by_a_pass(by: &str) -> String {
    format!(
        "{} AND {}",
        super::queue_rules::claimable("f"),
        super::queue_rules::due_by("f", by)
    )
}

impl Store {
    /// Orders a pass that started at `due_by` would work.
    pub async fn count_due(&self, due_by: DateTime<Utc>) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(&self.sql(&format!(
            "SELECT count(*) FROM refundd.refunds f WHERE {}",
            worked_by_a_pass("$1")
        )))
        .bind(due_by)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Orders a pass started now would work (for the backlog gauge).
    pub async fn count_due_now(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(&self.sql(&format!(
            "SELECT count(*) FROM refundd.refunds f WHERE {}",
            worked_by_a_pass("now()")
        )))
        .fetch_one(&self.pool)
        .await?)
    }

    /// The numbers the metrics show, read together.
    pub async fn queue_gauges(&self) -> Result<QueueGauges, StoreError> {
        Ok(sqlx::query_as(&self.sql(&format!(
            "SELECT count(*) FILTER (WHERE {}) AS due_now,
                    count(*) FILTER (WHERE unknown_operation IS NOT NULL) AS outcome_unknown,
                    count(*) FILTER (WHERE status = 'refunded' AND settlement IN ('pending', 'unconfirmed'))
                        AS awaiting_settlement,
                    count(*) FILTER (WHERE writeback IS NOT NULL) AS write_backs_pending,
                    (SELECT max(finished_at) FROM refundd.refund_passes WHERE outcome = 'completed')
                        AS last_completed_pass_at
               FROM refundd.refunds f",
            worked_by_a_pass("now()")
        )))
        .fetch_one(&self.pool)
        .await?)
    }

    /// Whether the database answers `SELECT 1` within `within`.
    pub async fn ping(&self, within: Duration) -> Result<(), StoreError> {
        let probe = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&self.pool);
        match tokio::time::timeout(within, probe).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Connect(e)),
            Err(_) => Err(StoreError::NoAnswer(within)),
        }
    }

    /// Reads the queue in one repeatable-read transaction, so the numbers agree.
    pub async fn queue_view(&self) -> Result<QueueView, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&self.sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            .execute(&mut *tx)
            .await?;
        let at: DateTime<Utc> = sqlx::query_scalar(&self.sql("SELECT now()"))
            .fetch_one(&mut *tx)
            .await?;
        let counts: Vec<StatusCount> = sqlx::query_as(&self.sql("SELECT s.status, count(o.id) AS count
               FROM unnest(ARRAY['refund_requested', 'refunding', 'refunded', 'refund_failed', 'withdrawn']) WITH ORDINALITY AS s(status, n)
               LEFT JOIN refundd.refunds o ON o.status = s.status
              GROUP BY s.status, s.n ORDER BY s.n"),
        )
        .fetch_all(&mut *tx)
        .await?;
        let due_now: i64 = sqlx::query_scalar(&self.sql(&format!(
            "SELECT count(*) FROM refundd.refunds f WHERE {}",
            worked_by_a_pass("now()")
        )))
        .fetch_one(&mut *tx)
        .await?;
        let oldest_request: Option<OldestRequest> = sqlx::query_as(&self.sql(
            "SELECT order_no, requested_at AS refund_requested_at,
                    COALESCE(extract(epoch FROM now() - requested_at), 0)::bigint AS age_secs
               FROM refundd.refunds WHERE status = 'refund_requested'
              ORDER BY requested_at, id LIMIT 1",
        ))
        .fetch_optional(&mut *tx)
        .await?;

        const WAITING: &str =
            "status IN ('refund_requested', 'refunding') AND next_attempt_at > now()";
        let waiting_total: i64 = sqlx::query_scalar(&self.sql(&format!(
            "SELECT count(*) FROM refundd.refunds WHERE {WAITING}"
        )))
        .fetch_one(&mut *tx)
        .await?;
        let waiting: Vec<WaitingOrder> = sqlx::query_as(&self.sql(&format!(
            "SELECT order_no, status, attempts, next_attempt_at, last_error FROM refundd.refunds
              WHERE {WAITING} ORDER BY next_attempt_at, id LIMIT $1"
        )))
        .bind(LIST_LIMIT)
        .fetch_all(&mut *tx)
        .await?;

        let unknown_total: i64 = sqlx::query_scalar(
            &self.sql("SELECT count(*) FROM refundd.refunds WHERE unknown_operation IS NOT NULL"),
        )
        .fetch_one(&mut *tx)
        .await?;
        let unknown: Vec<UnknownOutcome> = sqlx::query_as(&self.sql("SELECT order_no, unknown_operation AS operation, unknown_since AS since, next_attempt_at, last_error
               FROM refundd.refunds WHERE unknown_operation IS NOT NULL
              ORDER BY unknown_since NULLS FIRST, id LIMIT $1"),
        )
        .bind(LIST_LIMIT)
        .fetch_all(&mut *tx)
        .await?;

        const SETTLING: &str = "status = 'refunded' AND settlement IN ('pending', 'unconfirmed')";
        let settling_total: i64 = sqlx::query_scalar(&self.sql(&format!(
            "SELECT count(*) FROM refundd.refunds WHERE {SETTLING}"
        )))
        .fetch_one(&mut *tx)
        .await?;
        let settling: Vec<SettlingRefund> = sqlx::query_as(&self.sql(&format!(
            "SELECT order_no, refunded_amount, refunded_at, settlement FROM refundd.refunds
              WHERE {SETTLING} ORDER BY refunded_at NULLS FIRST, id LIMIT $1"
        )))
        .bind(LIST_LIMIT)
        .fetch_all(&mut *tx)
        .await?;

        let failed_total: i64 = sqlx::query_scalar(
            &self.sql("SELECT count(*) FROM refundd.refunds WHERE status = 'refund_failed'"),
        )
        .fetch_one(&mut *tx)
        .await?;
        let failed: Vec<FailedOrder> = sqlx::query_as(&self.sql(
            "SELECT order_no, refund_error, updated_at AS failed_at FROM refundd.refunds
              WHERE status = 'refund_failed' ORDER BY updated_at DESC, id DESC LIMIT $1",
        ))
        .bind(LIST_LIMIT)
        .fetch_all(&mut *tx)
        .await?;
        let shop_writes: Vec<PendingShopWrite> = sqlx::query_as(&self.sql(
            "SELECT order_no, writeback, writeback_error, updated_at AS since FROM refundd.refunds
              WHERE writeback IS NOT NULL ORDER BY id LIMIT $1",
        ))
        .bind(LIST_LIMIT)
        .fetch_all(&mut *tx)
        .await?;
        let asked_again: Vec<AskedAgain> = sqlx::query_as(&self.sql(
            "SELECT order_no, requested_again_at, refunded_amount FROM refundd.refunds
              WHERE status = 'refunded' AND requested_again_at IS NOT NULL
              ORDER BY requested_again_at DESC, id LIMIT $1",
        ))
        .bind(LIST_LIMIT)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(QueueView {
            shop_writes,
            asked_again,
            at,
            counts,
            due_now,
            oldest_request,
            waiting_total,
            waiting,
            unknown_total,
            unknown,
            settling_total,
            settling,
            failed_total,
            failed,
        })
    }
}
