//! The statements behind `refundd cancel-refund`: a lease on one refund of
//! refundd's (so neither the settlement watch nor a second cancellation
//! touches it meanwhile), where the bank filed it, the cancellation's intent
//! committed before its call, and what came of the call. The ending itself
//! (`cancelled`, with the shop's `on_cancelled`) is one of `endings`.

use super::order_rows::ReadOrder;
use super::refunds::{claimed_columns, fenced_sql, fenced_template, fenced_update, KeyedEvents};
use super::{Store, StoreError};
use crate::domain::record::{GatewayEvent, Lease, OrderRecord};
use crate::domain::refund_id::RefundId;
use std::time::Duration;
use uuid::Uuid;

/// A refund taken for its cancellation, and where the bank filed it.
#[derive(Debug, Clone)]
pub struct RefundToCancel {
    pub record: OrderRecord,
    /// `BatchID` and `BatchSeq` of the bank's answer accepting refundd's
    /// refund; `None` when refundd holds no accepted refund with them.
    pub filed_at: Option<(String, String)>,
}

/// What a cancellation found when it asked for the refund.
#[derive(Debug)]
pub enum CancelClaim {
    /// refundd has no record of this refund.
    NoSuchRefund,
    /// Another worker holds it under a live lease (a pass, the settlement
    /// watch, another cancellation): try again once it is done.
    Held,
    Taken(Box<RefundToCancel>),
}

impl Store {
    /// Takes a lease of `lease` on the refund (`order_no`, `refund_id`) for
    /// its cancellation, whatever its status (the caller judges it).
    pub async fn claim_for_cancel(
        &self,
        (order_no, refund_id): (&str, &RefundId),
        worker: Uuid,
        lease: Duration,
    ) -> Result<CancelClaim, StoreError> {
        let sql = format!(
            "WITH due AS (
                 SELECT id, lease_expires_at AS lapsed_at FROM refundd.refunds
                  WHERE order_no = $1 AND refund_id = $2
                    AND (lease_expires_at IS NULL OR lease_expires_at < now())
                    FOR UPDATE)
             UPDATE refundd.refunds o
                SET lease_owner = $3, lease_token = gen_random_uuid(),
                    lease_expires_at = now() + make_interval(secs => $4)
               FROM due WHERE o.id = due.id
             RETURNING {}",
            claimed_columns()
        );
        let taken: Option<ReadOrder> = sqlx::query_as(&self.sql(&sql))
            .bind(order_no)
            .bind(refund_id.as_str())
            .bind(worker)
            .bind(lease.as_secs_f64())
            .fetch_optional(&self.pool)
            .await?;
        let Some(ReadOrder(record)) = taken else {
            return self.why_not_taken(order_no, refund_id).await;
        };
        let filed_at = self.filed_at(record.id).await?;
        Ok(CancelClaim::Taken(Box::new(RefundToCancel {
            record,
            filed_at,
        })))
    }

    async fn why_not_taken(
        &self,
        order_no: &str,
        refund_id: &RefundId,
    ) -> Result<CancelClaim, StoreError> {
        let exists: bool = sqlx::query_scalar(&self.sql(
            "SELECT EXISTS (SELECT 1 FROM refundd.refunds WHERE order_no = $1 AND refund_id = $2)",
        ))
        .bind(order_no)
        .bind(refund_id.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(if exists {
            CancelClaim::Held
        } else {
            CancelClaim::NoSuchRefund
        })
    }

    /// Where the bank filed the refund refundd's call got accepted (the
    /// latest such answer of the record's story).
    async fn filed_at(&self, id: i64) -> Result<Option<(String, String)>, StoreError> {
        Ok(sqlx::query_as(&self.sql(
            "SELECT e.batch_id, e.batch_seq
               FROM refundd.refunds f
               JOIN refundd.refund_events e ON e.order_no = f.order_no AND e.refund_id = f.refund_id
              WHERE f.id = $1 AND e.kind = 'outcome' AND e.operation = 'refund'
                AND e.outcome IN ('accepted', 'amount_mismatch')
                AND e.batch_id IS NOT NULL AND e.batch_seq IS NOT NULL
              ORDER BY e.id DESC LIMIT 1",
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Right before the refund reversal: the inquiry it was decided on and
    /// its intent in the story, the call marked of unknown outcome until its
    /// outcome is recorded, the lease renewed to outlast it.
    pub async fn record_cancel_intent(
        &self,
        lease: &Lease,
        events: &[GatewayEvent],
        lease_for: Duration,
    ) -> Result<(), StoreError> {
        fenced_update!(
            self,
            &self.pool,
            lease,
            events,
            "unknown_operation = 'refund_reversal', unknown_since = now(),
             lease_expires_at = now() + make_interval(secs => $4)",
            "AND status = 'refunded' AND lease_expires_at > now()",
            lease_for.as_secs_f64(),
        )
        .map(|_| ())
    }

    /// The cancellation ends without cancelling: the story told why, the
    /// lease given back; the refund reversal's outcome stays unknown
    /// (`keep_unknown`) until an inquiry settles it, or is cleared.
    pub async fn cancel_not_done(
        &self,
        lease: &Lease,
        events: &[GatewayEvent],
        keep_unknown: bool,
    ) -> Result<(), StoreError> {
        fenced_update!(
            self,
            &self.pool,
            lease,
            events,
            "unknown_operation = CASE WHEN $4 THEN unknown_operation END,
             unknown_since = CASE WHEN $4 THEN unknown_since END,
             lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL",
            "",
            keep_unknown,
        )
        .map(|_| ())
    }
}
