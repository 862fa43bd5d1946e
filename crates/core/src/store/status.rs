//! Read-only views of the queue for progress, `refundd status`, the metrics
//! and health checks. Every listed refund says which refund of its order it
//! is, at which merchant, and, for an order with several, what the order has
//! had back in all; the counts are also kept per merchant.

use super::{Store, StoreError};
use crate::ctbc::Operation;
use crate::domain::merchant::MerchantName;
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

/// Which refund a listed record is: its id among its order's refunds, its
/// merchant, and what its order has had back when it has several refunds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RefundOf {
    /// The shop's id of this refund; left out for an order's only refund.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    /// The merchant the order was paid to: a `[ctbc.merchants.NAME]` name,
    /// or `default` for the `[ctbc]` table's own.
    pub merchant: String,
    /// For an order with several refunds: the sum of those refundd refunded
    /// (the events' `order_refunded`); left out for an order's only refund.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_refunded: Option<i64>,
}

impl RefundOf {
    /// An order's only refund, at the default merchant.
    pub fn only() -> RefundOf {
        RefundOf {
            refund_id: None,
            merchant: MerchantName::DEFAULT_LABEL.to_string(),
            order_refunded: None,
        }
    }
}

/// The columns of `RefundOf` for record `a` of `refundd.refunds`.
fn refund_of(a: &str) -> String {
    format!(
        "nullif({a}.refund_id, '') AS refund_id,
         coalesce({a}.merchant, '{default}') AS merchant,
         (SELECT CASE WHEN count(*) > 1
                      THEN coalesce(sum(s.refunded_amount) FILTER (WHERE s.status = 'refunded'), 0)::bigint
                 END
            FROM refundd.refunds s WHERE s.order_no = {a}.order_no) AS order_refunded",
        default = MerchantName::DEFAULT_LABEL
    )
}

/// A merchant's records per status, and how many of them are due now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MerchantCounts {
    /// A `[ctbc.merchants.NAME]` name, or `default`.
    pub merchant: String,
    pub counts: Vec<StatusCount>,
    pub due_now: i64,
}

/// The `refund_requested` order waiting longest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct OldestRequest {
    pub order_no: String,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub refund: RefundOf,
    pub refund_requested_at: Option<DateTime<Utc>>,
    pub age_secs: i64,
}

/// An order waiting for its next attempt (backoff, recheck, a later pass).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct WaitingOrder {
    pub order_no: String,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub refund: RefundOf,
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
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub refund: RefundOf,
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
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub refund: RefundOf,
    pub refunded_amount: Option<i64>,
    pub refunded_at: Option<DateTime<Utc>>,
    /// Pending (still watched) or Unconfirmed (the watch ran out).
    #[sqlx(try_from = "String")]
    pub settlement: SettlementState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct FailedOrder {
    pub order_no: String,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub refund: RefundOf,
    pub refund_error: Option<String>,
    pub failed_at: DateTime<Utc>,
}

/// An outcome the shop's database refused to take (`shop.on_refunded` or
/// `shop.on_failed`), tried again on every pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PendingShopWrite {
    pub order_no: String,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub refund: RefundOf,
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
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub refund: RefundOf,
    pub requested_again_at: Option<DateTime<Utc>>,
    pub refunded_amount: Option<i64>,
}

/// The queue at one moment, read in one snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueView {
    pub at: DateTime<Utc>,
    pub counts: Vec<StatusCount>,
    /// The counts of each merchant holding records, the default first.
    pub merchants: Vec<MerchantCounts>,
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
    /// When the latest reconciliation finished, by any worker or command.
    pub last_reconcile_at: Option<DateTime<Utc>>,
    /// The latest reconciliation's orders matched, expected and mismatched.
    pub reconcile_matched: i32,
    pub reconcile_expected: i32,
    pub reconcile_mismatch: i32,
    /// Mismatches no person or later run has closed.
    pub open_mismatches: i64,
}

/// The latest reconciliation kept.
const LAST_RUN: &str = "(SELECT * FROM refundd.reconcile_runs ORDER BY id DESC LIMIT 1) AS last";

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
                        AS last_completed_pass_at,
                    (SELECT finished_at FROM {LAST_RUN}) AS last_reconcile_at,
                    coalesce((SELECT matched FROM {LAST_RUN}), 0) AS reconcile_matched,
                    coalesce((SELECT expected FROM {LAST_RUN}), 0) AS reconcile_expected,
                    coalesce((SELECT mismatch FROM {LAST_RUN}), 0) AS reconcile_mismatch,
                    (SELECT count(*) FROM refundd.reconcile_mismatches WHERE resolved_at IS NULL)
                        AS open_mismatches
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
        let counts: Vec<StatusCount> = sqlx::query_as(&self.sql(&format!(
            "SELECT s.status, count(o.id) AS count
               FROM {STATUSES} LEFT JOIN refundd.refunds o ON o.status = s.status
              GROUP BY s.status, s.n ORDER BY s.n"
        )))
        .fetch_all(&mut *tx)
        .await?;
        let merchants = self.merchant_counts(&mut tx).await?;
        let due_now: i64 = sqlx::query_scalar(&self.sql(&format!(
            "SELECT count(*) FROM refundd.refunds f WHERE {}",
            worked_by_a_pass("now()")
        )))
        .fetch_one(&mut *tx)
        .await?;
        let oldest_request: Option<OldestRequest> = sqlx::query_as(&self.sql(&format!(
            "SELECT f.order_no, {}, f.requested_at AS refund_requested_at,
                    COALESCE(extract(epoch FROM now() - f.requested_at), 0)::bigint AS age_secs
               FROM refundd.refunds f WHERE f.status = 'refund_requested'
              ORDER BY f.requested_at, f.id LIMIT 1",
            refund_of("f")
        )))
        .fetch_optional(&mut *tx)
        .await?;

        const WAITING: &str =
            "f.status IN ('refund_requested', 'refunding') AND f.next_attempt_at > now()";
        let waiting_total = self.count_of(&mut tx, WAITING).await?;
        let waiting: Vec<WaitingOrder> = self
            .list(
                &mut tx,
                "f.status, f.attempts, f.next_attempt_at, f.last_error",
                WAITING,
                "f.next_attempt_at, f.id",
            )
            .await?;
        const UNKNOWN: &str = "f.unknown_operation IS NOT NULL";
        let unknown_total = self.count_of(&mut tx, UNKNOWN).await?;
        let unknown: Vec<UnknownOutcome> = self
            .list(
                &mut tx,
                "f.unknown_operation AS operation, f.unknown_since AS since, f.next_attempt_at, f.last_error",
                UNKNOWN,
                "f.unknown_since NULLS FIRST, f.id",
            )
            .await?;
        const SETTLING: &str =
            "f.status = 'refunded' AND f.settlement IN ('pending', 'unconfirmed')";
        let settling_total = self.count_of(&mut tx, SETTLING).await?;
        let settling: Vec<SettlingRefund> = self
            .list(
                &mut tx,
                "f.refunded_amount, f.refunded_at, f.settlement",
                SETTLING,
                "f.refunded_at NULLS FIRST, f.id",
            )
            .await?;
        const FAILED: &str = "f.status = 'refund_failed'";
        let failed_total = self.count_of(&mut tx, FAILED).await?;
        let failed: Vec<FailedOrder> = self
            .list(
                &mut tx,
                "f.refund_error, f.updated_at AS failed_at",
                FAILED,
                "f.updated_at DESC, f.id DESC",
            )
            .await?;
        let shop_writes: Vec<PendingShopWrite> = self
            .list(
                &mut tx,
                "f.writeback, f.writeback_error, f.updated_at AS since",
                "f.writeback IS NOT NULL",
                "f.id",
            )
            .await?;
        let asked_again: Vec<AskedAgain> = self
            .list(
                &mut tx,
                "f.requested_again_at, f.refunded_amount",
                "f.status = 'refunded' AND f.requested_again_at IS NOT NULL",
                "f.requested_again_at DESC, f.id",
            )
            .await?;
        tx.commit().await?;
        Ok(QueueView {
            shop_writes,
            asked_again,
            at,
            counts,
            merchants,
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

    /// How many records `condition` (over record `f`) holds.
    async fn count_of(
        &self,
        tx: &mut sqlx::PgConnection,
        condition: &str,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(&self.sql(&format!(
            "SELECT count(*) FROM refundd.refunds f WHERE {condition}"
        )))
        .fetch_one(tx)
        .await?)
    }

    /// The first `LIST_LIMIT` records `condition` holds in `order`: each
    /// record's order number and `RefundOf`, then `columns` (over record `f`).
    async fn list<T>(
        &self,
        tx: &mut sqlx::PgConnection,
        columns: &str,
        condition: &str,
        order: &str,
    ) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        Ok(sqlx::query_as(&self.sql(&format!(
            "SELECT f.order_no, {}, {columns} FROM refundd.refunds f
              WHERE {condition} ORDER BY {order} LIMIT $1",
            refund_of("f")
        )))
        .bind(LIST_LIMIT)
        .fetch_all(tx)
        .await?)
    }

    /// Each merchant's records per status and due now, for the merchants
    /// holding records, the default first.
    async fn merchant_counts(
        &self,
        tx: &mut sqlx::PgConnection,
    ) -> Result<Vec<MerchantCounts>, StoreError> {
        let rows: Vec<MerchantStatus> = sqlx::query_as(&self.sql(&format!(
            "SELECT m.merchant, s.status,
                    count(f.id) FILTER (WHERE f.status = s.status) AS count,
                    count(f.id) FILTER (WHERE f.status = s.status AND {due}) AS due
               FROM (SELECT DISTINCT coalesce(merchant, '{default}') AS merchant FROM refundd.refunds) m
              CROSS JOIN {STATUSES}
               LEFT JOIN refundd.refunds f ON coalesce(f.merchant, '{default}') = m.merchant
              GROUP BY m.merchant, s.status, s.n
              ORDER BY m.merchant <> '{default}', m.merchant, s.n",
            due = worked_by_a_pass("now()"),
            default = MerchantName::DEFAULT_LABEL,
        )))
        .fetch_all(tx)
        .await?;
        let mut merchants: Vec<MerchantCounts> = Vec::new();
        for row in rows {
            if merchants.last().is_none_or(|m| m.merchant != row.merchant) {
                merchants.push(MerchantCounts {
                    merchant: row.merchant.clone(),
                    counts: Vec::new(),
                    due_now: 0,
                });
            }
            if let Some(m) = merchants.last_mut() {
                m.counts.push(StatusCount {
                    status: row.status,
                    count: row.count,
                });
                m.due_now += row.due;
            }
        }
        Ok(merchants)
    }
}

/// One merchant's records in one status, and how many of them are due now.
#[derive(sqlx::FromRow)]
struct MerchantStatus {
    merchant: String,
    #[sqlx(try_from = "String")]
    status: RefundStatus,
    count: i64,
    due: i64,
}

/// Every status a record can be in, in the order `status` shows them, as
/// relation `s(status, n)`.
const STATUSES: &str = "unnest(ARRAY['refund_requested', 'refunding', 'refunded', 'refund_failed', 'withdrawn']) WITH ORDINALITY AS s(status, n)";
