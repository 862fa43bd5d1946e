//! The outbox as refundd reads it: the events its record's changes appended
//! (the database writes them, in the same transaction as the change, see the
//! outbox migration), the attention a person is owed for orders stuck where
//! no status change tells anyone, and what the shop's code and operators see.
//!
//! An order's events reach the webhook in the order they were written, whatever
//! is retried, dead or put back: an event is sent only once every earlier event
//! of its order is delivered. A dead event therefore keeps holding back its
//! order's later events until `refundd notify redeliver --dead` puts it back
//! and the receiver takes it; `delivery_state` counts them as held, for
//! `status` and the metrics.

use super::{Store, StoreError};
use crate::domain::words::NotificationType;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// One event of the outbox.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OutboxEvent {
    pub seq: i64,
    pub id: uuid::Uuid,
    pub order_no: String,
    #[sqlx(rename = "type", try_from = "String")]
    pub kind: NotificationType,
    pub occurred_at: DateTime<Utc>,
    pub body: serde_json::Value,
    pub attempts: i32,
    pub delivered_at: Option<DateTime<Utc>>,
    pub dead_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl OutboxEvent {
    /// An event that stands for no order, for `refundd notify test`.
    pub fn test_event() -> OutboxEvent {
        let id = uuid::Uuid::new_v4();
        let now = Utc::now();
        OutboxEvent {
            seq: 0,
            id,
            order_no: "TEST".into(),
            kind: NotificationType::Test,
            occurred_at: now,
            body: serde_json::json!({
                "id": id.to_string(),
                "type": NotificationType::Test,
                "order_no": "TEST",
                "occurred_at": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            }),
            attempts: 0,
            delivered_at: None,
            dead_at: None,
            last_error: None,
        }
    }
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

/// One event taken for delivery: its row stays locked (SKIP LOCKED for every
/// other daemon) until the delivery's outcome is recorded.
pub struct Delivery {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    pub event: OutboxEvent,
}

/// The outbox's delivery state, for `status` and the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct DeliveryState {
    pub undelivered: i64,
    pub dead: i64,
    /// Undelivered events waiting behind a dead event of their order.
    pub held: i64,
    /// Age of the oldest event not yet delivered (nor dead), in seconds.
    pub oldest_undelivered_secs: Option<f64>,
}

impl Store {
    /// The next event due for delivery: one whose order has no earlier event
    /// still undelivered, dead ones included (events go out in order per
    /// order), not locked by another daemon. The caller records its outcome
    /// with `delivered` or `not_delivered`.
    pub async fn next_delivery(&self) -> Result<Option<Delivery>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let event: Option<OutboxEvent> = sqlx::query_as(&self.sql(
            "SELECT o.seq, o.id, o.order_no, o.type, o.occurred_at, o.body, o.attempts,
                    o.delivered_at, o.dead_at, o.last_error
               FROM refundd.outbox o
              WHERE o.delivered_at IS NULL AND o.dead_at IS NULL AND o.next_attempt_at <= now()
                AND NOT EXISTS (SELECT 1 FROM refundd.outbox e
                                 WHERE e.order_no = o.order_no AND e.seq < o.seq
                                   AND e.delivered_at IS NULL)
              ORDER BY o.seq LIMIT 1
                FOR UPDATE SKIP LOCKED",
        ))
        .fetch_optional(&mut *tx)
        .await?;
        Ok(event.map(|event| Delivery { tx, event }))
    }

    /// The receiver took the event.
    pub async fn delivered(&self, mut d: Delivery) -> Result<(), StoreError> {
        sqlx::query(&self.sql(
            "UPDATE refundd.outbox SET delivered_at = now(), attempts = attempts + 1, last_error = NULL
              WHERE seq = $1",
        ))
        .bind(d.event.seq)
        .execute(&mut *d.tx)
        .await?;
        d.tx.commit().await?;
        Ok(())
    }

    /// The receiver did not take the event: tried again after `retry_in`, or
    /// kept as dead (never dropped) when the schedule is over.
    pub async fn not_delivered(
        &self,
        mut d: Delivery,
        error: &str,
        retry_in: Option<Duration>,
    ) -> Result<(), StoreError> {
        let error: String = error
            .chars()
            .filter(|c| !c.is_control())
            .take(500)
            .collect();
        sqlx::query(&self.sql(
            "UPDATE refundd.outbox
                SET attempts = attempts + 1, last_error = $2,
                    next_attempt_at = CASE WHEN $3::float8 IS NULL THEN next_attempt_at
                                           ELSE now() + make_interval(secs => $3::float8) END,
                    dead_at = CASE WHEN $3::float8 IS NULL THEN now() END
              WHERE seq = $1",
        ))
        .bind(d.event.seq)
        .bind(error)
        .bind(retry_in.map(|r| r.as_secs_f64()))
        .execute(&mut *d.tx)
        .await?;
        d.tx.commit().await?;
        Ok(())
    }

    /// Puts dead events back in line, to be delivered at once.
    pub async fn redeliver_dead(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(&self.sql(
            "UPDATE refundd.outbox SET dead_at = NULL, attempts = 0, next_attempt_at = now()
              WHERE dead_at IS NOT NULL",
        ))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn delivery_state(&self) -> Result<DeliveryState, StoreError> {
        Ok(sqlx::query_as(&self.sql(
            "SELECT count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL) AS undelivered,
                    count(*) FILTER (WHERE dead_at IS NOT NULL) AS dead,
                    (SELECT count(*) FROM refundd.outbox o
                      WHERE o.delivered_at IS NULL AND o.dead_at IS NULL
                        AND EXISTS (SELECT 1 FROM refundd.outbox d
                                     WHERE d.order_no = o.order_no AND d.seq < o.seq
                                       AND d.dead_at IS NOT NULL)) AS held,
                    extract(epoch FROM now() - min(occurred_at)
                        FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL))::float8
                        AS oldest_undelivered_secs
               FROM refundd.outbox",
        ))
        .fetch_one(&self.pool)
        .await?)
    }
}
