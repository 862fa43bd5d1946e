//! The statements behind `refundd request` and `refundd retry`: lock one order,
//! let the caller's check decide on the locked row, then move it into the
//! queue, all in one transaction the store opens and ends, so nobody changes
//! the order in between.
//! `request` writes the built-in orders table (the shop's side); `retry`
//! reopens refundd's own record of a failed refund, and reads the order's
//! request through the shop's query as the next pass will (`shop.requests`).

use super::intake::{RequestColumns, ShopRequest};
use super::{Store, StoreError};
use crate::domain::refund_id::RefundId;
use crate::domain::words::OrderStatus;
use sqlx::{FromRow, PgConnection};

/// The fields a request or retry is checked against.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OrderToQueue {
    pub id: i64,
    pub order_no: String,
    #[sqlx(try_from = "String")]
    pub status: OrderStatus,
    pub auth_amount: Option<i64>,
    pub refund_amount: Option<i64>,
    /// What the order (the built-in table's) or this refund (refundd's record) had back.
    pub refunded_amount: Option<i64>,
    pub refund_error: Option<String>,
    /// Why the request as last read cannot be sent (refundd's record only).
    pub bad_input: Option<String>,
}

/// A reopened order, and its request as the shop's query lists it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reopened {
    pub order: OrderToQueue,
    /// None: the shop's query no longer lists the order, so the next pass
    /// works it from refundd's record.
    pub shop_now: Option<ShopRequestNow>,
}

/// One order's request as the shop's query gives it: its amounts as the
/// shop wrote them, and as a pass reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopRequestNow {
    /// `auth_amount` as the query returned it, as text (`1299.00`).
    pub auth_text: Option<String>,
    /// `refund_amount` as the query returned it, as text (`300.50`).
    pub refund_text: Option<String>,
    /// Whole amounts, as a pass records them, or why the row cannot be sent.
    pub auth_amount: Option<i64>,
    pub refund_amount: Option<i64>,
    pub bad_input: Option<String>,
}

/// The amounts of a row of the shop's query, as text.
#[derive(Debug, FromRow)]
struct AmountsAsGiven {
    auth_amount: Option<String>,
    refund_amount: Option<String>,
}

impl Store {
    /// `refundd request`: locks the built-in order, runs `check` on it, and
    /// only if it passes marks it `refund_requested` for `amount` and commits.
    /// None: no such order. A refused check rolls back and changes nothing.
    pub async fn request_by_hand<E: From<StoreError>>(
        &self,
        order_no: &str,
        amount: Option<i64>,
        note: &str,
        check: impl FnOnce(&OrderToQueue) -> Result<(), E>,
    ) -> Result<Option<OrderToQueue>, E> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let Some(order) = self.lock_builtin_order(&mut tx, order_no).await? else {
            return Ok(None);
        };
        check(&order)?;
        self.mark_requested(&mut tx, &order.order_no, amount, note)
            .await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Some(order))
    }

    /// `refundd retry`: locks refundd's record of the order, runs `check` on
    /// it, and only if it passes reopens it, reads its request through the
    /// shop's query, and commits. None: no record.
    pub async fn retry_by_hand<E: From<StoreError>>(
        &self,
        (order_no, refund_id): (&str, &RefundId),
        note: &str,
        check: impl FnOnce(&OrderToQueue) -> Result<(), E>,
    ) -> Result<Option<Reopened>, E> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let Some(order) = self.lock_refund(&mut tx, order_no, refund_id).await? else {
            return Ok(None);
        };
        check(&order)?;
        self.reopen(&mut tx, &order, refund_id, note).await?;
        let shop_now = self
            .request_now(&mut tx, &order.order_no, refund_id)
            .await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Some(Reopened { order, shop_now }))
    }

    /// The order's request as the shop's query lists it now (after the
    /// reopening, which the built-in table's query sees), read as a pass
    /// reads it (`RequestColumns`), with the amounts as the shop gave them.
    async fn request_now(
        &self,
        conn: &mut PgConnection,
        order_no: &str,
        refund_id: &RefundId,
    ) -> Result<Option<ShopRequestNow>, StoreError> {
        let row = sqlx::query(&self.requests_sql(true))
            .bind(order_no)
            .bind(refund_id.as_str())
            .fetch_optional(conn)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let given = AmountsAsGiven::from_row(&row)?;
        let read = RequestColumns::of(&[ShopRequest::from_row(&row)?]);
        Ok(Some(ShopRequestNow {
            auth_text: given.auth_amount,
            refund_text: given.refund_amount,
            auth_amount: read.auth_amount.first().copied().flatten(),
            refund_amount: read.refund_amount.first().copied().flatten(),
            bad_input: read.bad_input.first().cloned().flatten(),
        }))
    }

    /// Locks the built-in order (`FOR UPDATE`) until the transaction ends.
    async fn lock_builtin_order(
        &self,
        conn: &mut PgConnection,
        order_no: &str,
    ) -> Result<Option<OrderToQueue>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, order_no, status, auth_amount, refund_amount, refunded_amount, refund_error,
                    NULL::text AS bad_input
               FROM orders WHERE order_no = $1 FOR UPDATE",
        )
        .bind(order_no)
        .fetch_optional(conn)
        .await?)
    }

    /// `paid` -> `refund_requested` for `amount` (NULL: all of it) in the
    /// built-in orders table; an order `refunded` in part asks a further
    /// part (NULL: the rest), the order's next refund ("2", "3"...). The
    /// next pass reads it.
    async fn mark_requested(
        &self,
        conn: &mut PgConnection,
        order_no: &str,
        amount: Option<i64>,
        note: &str,
    ) -> Result<(), StoreError> {
        let refund_id: Option<String> = sqlx::query_scalar(&self.sql(
            "UPDATE orders SET status = 'refund_requested', refund_amount = $2,
                    refund_requested_at = now(), refund_error = NULL,
                    refund_id = CASE WHEN status = 'paid' THEN refund_id
                                     ELSE (SELECT (count(*) + 1)::text FROM refundd.refunds
                                            WHERE order_no = $1) END
              WHERE order_no = $1 AND status IN ('paid', 'refunded')
              RETURNING refund_id",
        ))
        .bind(order_no)
        .bind(amount)
        .fetch_optional(&mut *conn)
        .await?
        .flatten();
        let (refund_id, _) = RefundId::from_shop(refund_id.as_deref());
        self.append_note(conn, (order_no, &refund_id), note).await
    }

    /// Locks refundd's record of one refund of an order (`FOR UPDATE`).
    async fn lock_refund(
        &self,
        conn: &mut PgConnection,
        order_no: &str,
        refund_id: &RefundId,
    ) -> Result<Option<OrderToQueue>, StoreError> {
        Ok(sqlx::query_as(&self.sql(
            "SELECT id, order_no, status, auth_amount, refund_amount, refunded_amount, refund_error, bad_input
               FROM refundd.refunds WHERE order_no = $1 AND refund_id = $2 FOR UPDATE",
        ))
        .bind(order_no)
        .bind(refund_id.as_str())
        .fetch_optional(conn)
        .await?)
    }

    /// `refund_failed` -> `refund_requested` with fresh attempts, due at once,
    /// worked from the request's current values even if the shop's query no
    /// longer lists it; the built-in table shows it requested again too.
    async fn reopen(
        &self,
        conn: &mut PgConnection,
        order: &OrderToQueue,
        refund_id: &RefundId,
        note: &str,
    ) -> Result<(), StoreError> {
        let order_no = order.order_no.as_str();
        sqlx::query(&self.sql(
            "UPDATE refundd.refunds
                SET status = 'refund_requested', attempts = 0, next_attempt_at = NULL,
                    refund_error = NULL, last_error = NULL, claimed_amount = NULL,
                    retried_by_operator = true, shop_told_failed = false, requested_at = now()
              WHERE id = $1 AND status = 'refund_failed'",
        ))
        .bind(order.id)
        .execute(&mut *conn)
        .await?;
        if self.shop.is_builtin() {
            sqlx::query(
                "UPDATE orders SET status = 'refund_requested', refund_error = NULL,
                        refund_requested_at = now()
                  WHERE order_no = $1 AND status = 'refund_failed'",
            )
            .bind(order_no)
            .execute(&mut *conn)
            .await?;
        }
        self.append_note(conn, (order_no, refund_id), note).await
    }

    async fn append_note(
        &self,
        conn: &mut PgConnection,
        (order_no, refund_id): (&str, &RefundId),
        note: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(&self.sql(
            "INSERT INTO refundd.refund_events (order_no, refund_id, kind, message) VALUES ($1, $3, 'note', $2)",
        ))
        .bind(order_no)
        .bind(note)
        .bind(refund_id.as_str())
        .execute(conn)
        .await?;
        Ok(())
    }
}
