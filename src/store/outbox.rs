// The outbox as refundd reads it: the events its record's changes appended
// (the database writes them, in the same transaction as the change, see the
// outbox migration), the attention a person is owed for orders stuck where
// no status change tells anyone, and what the shop's code and operators see.

use super::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// One event of the outbox.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OutboxEvent {
    pub seq: i64,
    pub id: uuid::Uuid,
    pub order_no: String,
    /// refund.succeeded | refund.settled | refund.failed | refund.withdrawn | refund.needs_attention
    #[sqlx(rename = "type")]
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub body: serde_json::Value,
    pub attempts: i32,
    pub delivered_at: Option<DateTime<Utc>>,
    pub dead_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl Store {
    /// Raises `refund.needs_attention`, once per cause and order, for money
    /// whose fate nobody knows yet: a money-moving call whose outcome is still
    /// unknown after `after`, and an order the bank has held in a batch state
    /// (11/21) for more than a day. Returns how many were raised now.
    pub async fn raise_attention(&self, after: Duration) -> Result<u64, StoreError> {
        let raised: i64 = sqlx::query_scalar(&self.sql(
            "WITH unknown AS (
                 SELECT refundd.outbox_append(r, 'refund.needs_attention', 'outcome_unknown',
                        'a ' || r.unknown_operation || ' was sent at ' ||
                        to_char(r.unknown_since AT TIME ZONE 'Asia/Taipei', 'YYYY-MM-DD HH24:MI:SS') ||
                        ' (Asia/Taipei) and its outcome is still unknown; refundd keeps asking the bank')
                   FROM refundd.refunds r
                  WHERE r.unknown_operation IS NOT NULL
                    AND r.unknown_since < now() - make_interval(secs => $1)
                    AND NOT EXISTS (SELECT 1 FROM refundd.outbox o WHERE o.order_no = r.order_no
                                      AND o.type = 'refund.needs_attention' AND o.cause = 'outcome_unknown')),
             held AS (
                 SELECT refundd.outbox_append(r, 'refund.needs_attention', 'held_in_batch',
                        'the bank has held this transaction in a batch state (11 or 21) for more than a day')
                   FROM refundd.refunds r
                  WHERE r.status IN ('refund_requested', 'refunding')
                    AND NOT EXISTS (SELECT 1 FROM refundd.outbox o WHERE o.order_no = r.order_no
                                      AND o.type = 'refund.needs_attention' AND o.cause = 'held_in_batch')
                    AND EXISTS (
                        SELECT 1 FROM refundd.refund_events first
                         WHERE first.order_no = r.order_no AND first.operation = 'inquiry'
                           AND first.bank_state IN ('11', '21') AND first.at < now() - interval '1 day'
                           AND NOT EXISTS (
                               SELECT 1 FROM refundd.refund_events e
                                WHERE e.order_no = r.order_no AND e.operation = 'inquiry' AND e.id > first.id
                                  AND e.bank_state IS NOT NULL AND e.bank_state NOT IN ('11', '21'))))
             SELECT (SELECT count(*) FROM unknown) + (SELECT count(*) FROM held)",
        ))
        .bind(after.as_secs_f64())
        .fetch_one(&self.pool)
        .await?;
        Ok(raised as u64)
    }

    /// The events of one order, oldest first.
    pub async fn events_of(&self, order_no: &str) -> Result<Vec<OutboxEvent>, StoreError> {
        Ok(sqlx::query_as(&self.sql(
            "SELECT seq, id, order_no, type, occurred_at, body, attempts, delivered_at, dead_at, last_error
               FROM refundd.outbox WHERE order_no = $1 ORDER BY seq",
        ))
        .bind(order_no)
        .fetch_all(&self.pool)
        .await?)
    }
}
