//! The statements behind `refundd request` and `refundd retry`: lock one order,
//! then move it into the queue. The caller checks the locked row between the
//! two, inside one transaction, so nobody changes the order in between.
//! `request` writes the built-in orders table (the shop's side); `retry`
//! reopens refundd's own record of a failed refund.

use super::{Store, StoreError};
use sqlx::PgConnection;

/// The fields a request or retry is checked against.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OrderToQueue {
    pub id: i64,
    pub order_no: String,
    pub status: String,
    pub auth_amount: Option<i64>,
    pub refund_amount: Option<i64>,
    pub refund_error: Option<String>,
}

impl Store {
    /// Locks the built-in order (`FOR UPDATE`) until the transaction ends.
    pub async fn lock_builtin_order(
        &self,
        conn: &mut PgConnection,
        order_no: &str,
    ) -> Result<Option<OrderToQueue>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, order_no, status, auth_amount, refund_amount, refund_error
               FROM orders WHERE order_no = $1 FOR UPDATE",
        )
        .bind(order_no)
        .fetch_optional(conn)
        .await?)
    }

    /// `paid` -> `refund_requested` for `amount` (NULL: all of it) in the
    /// built-in orders table; the next pass reads it.
    pub async fn mark_requested(
        &self,
        conn: &mut PgConnection,
        order_no: &str,
        amount: Option<i64>,
        note: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE orders SET status = 'refund_requested', refund_amount = $2,
                    refund_requested_at = now(), refund_error = NULL
              WHERE order_no = $1 AND status = 'paid'",
        )
        .bind(order_no)
        .bind(amount)
        .execute(&mut *conn)
        .await?;
        self.append_note(conn, order_no, note).await
    }

    /// Locks refundd's record of an order (`FOR UPDATE`).
    pub async fn lock_refund(
        &self,
        conn: &mut PgConnection,
        order_no: &str,
    ) -> Result<Option<OrderToQueue>, StoreError> {
        Ok(sqlx::query_as(&self.sql(
            "SELECT id, order_no, status, auth_amount, refund_amount, refund_error
               FROM refundd.refunds WHERE order_no = $1 FOR UPDATE",
        ))
        .bind(order_no)
        .fetch_optional(conn)
        .await?)
    }

    /// `refund_failed` -> `refund_requested` with fresh attempts, due at once,
    /// worked from the request's current values even if the shop's query no
    /// longer lists it; the built-in table shows it requested again too.
    pub async fn reopen(
        &self,
        conn: &mut PgConnection,
        order_no: &str,
        note: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(&self.sql(
            "UPDATE refundd.refunds
                SET status = 'refund_requested', attempts = 0, next_attempt_at = NULL,
                    refund_error = NULL, last_error = NULL, claimed_amount = NULL,
                    retried_by_operator = true, shop_told_failed = false, requested_at = now()
              WHERE order_no = $1 AND status = 'refund_failed'",
        ))
        .bind(order_no)
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
        self.append_note(conn, order_no, note).await
    }

    async fn append_note(
        &self,
        conn: &mut PgConnection,
        order_no: &str,
        note: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(&self.sql(
            "INSERT INTO refundd.refund_events (order_no, kind, message) VALUES ($1, 'note', $2)",
        ))
        .bind(order_no)
        .bind(note)
        .execute(conn)
        .await?;
        Ok(())
    }
}
