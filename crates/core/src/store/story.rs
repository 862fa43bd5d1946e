//! Each order's story as the database tells it: its row and the events appended
//! in a span of time. The demo reads it to show what each pass did.

use super::{Store, StoreError};
use crate::ctbc::Operation;
use crate::domain::words::{CallOutcome, EventKind, RefundMethod, RefundStatus, SettlementState};
use chrono::{DateTime, Utc};

/// One appended event.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoryEvent {
    pub order_no: String,
    /// Which refund of the order the event belongs to ('' for its only one).
    pub refund_id: String,
    pub at: DateTime<Utc>,
    #[sqlx(try_from = "String")]
    pub kind: EventKind,
    #[sqlx(try_from = "super::word_columns::MaybeText")]
    pub operation: Option<Operation>,
    #[sqlx(try_from = "super::word_columns::MaybeText")]
    pub outcome: Option<CallOutcome>,
    #[sqlx(try_from = "super::word_columns::MaybeText")]
    pub to_status: Option<RefundStatus>,
    pub bank_state: Option<String>,
    pub message: Option<String>,
}

/// Where an order ended up.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OrderOutcomeRow {
    pub order_no: String,
    /// Which refund of the order ('' for its only one).
    pub refund_id: String,
    /// The merchant the order was paid to, as the shop named it; `None`: the default.
    pub merchant: Option<String>,
    pub auth_amount: Option<i64>,
    pub refund_amount: Option<i64>,
    #[sqlx(try_from = "String")]
    pub status: RefundStatus,
    #[sqlx(try_from = "super::word_columns::MaybeText")]
    pub refund_method: Option<RefundMethod>,
    pub refunded_amount: Option<i64>,
    pub refund_error: Option<String>,
    #[sqlx(try_from = "super::word_columns::MaybeText")]
    pub settlement: Option<SettlementState>,
    pub last_error: Option<String>,
}

impl Store {
    /// Events appended at or after `from` and before `to`, oldest first.
    pub async fn events_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoryEvent>, StoreError> {
        Ok(sqlx::query_as(&self.sql(
            "SELECT order_no, refund_id, at, kind, operation, outcome, to_status, bank_state, message
               FROM refundd.refund_events WHERE at >= $1 AND at < $2 ORDER BY id",
        ))
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn all_orders(&self) -> Result<Vec<OrderOutcomeRow>, StoreError> {
        Ok(sqlx::query_as(&self.sql(
            "SELECT order_no, refund_id, merchant, auth_amount, refund_amount, status, refund_method,
                    refunded_amount, refund_error, settlement, last_error
               FROM refundd.refunds ORDER BY order_no, id",
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    /// What the database says was given back: the sum of `refunded_amount` of refunded orders.
    pub async fn refunded_total(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(&self.sql("SELECT COALESCE(sum(refunded_amount), 0)::bigint FROM refundd.refunds WHERE status = 'refunded'"),
        )
        .fetch_one(&self.pool)
        .await?)
    }
}
