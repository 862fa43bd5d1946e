// The statements behind `refundd request` and `refundd retry`: lock one order,
// then move it into the queue. The caller checks the locked row between the
// two, inside one transaction, so nobody changes the order in between.

use super::StoreError;
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

/// Locks the order (`FOR UPDATE`) until the transaction ends.
pub async fn lock_order(
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

/// `paid` -> `refund_requested` for `amount` (NULL: all of it). The database
/// stamps `refund_requested_at` and records the status change.
pub async fn mark_requested(
    conn: &mut PgConnection,
    id: i64,
    amount: Option<i64>,
    note: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE orders SET status = 'refund_requested', refund_amount = $2
          WHERE id = $1 AND status = 'paid'",
    )
    .bind(id)
    .bind(amount)
    .execute(&mut *conn)
    .await?;
    append_note(conn, id, note).await
}

/// `refund_failed` -> `refund_requested`; the database resets the attempts
/// and stamps `refund_requested_at`.
pub async fn mark_retry(conn: &mut PgConnection, id: i64, note: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE orders SET status = 'refund_requested'
          WHERE id = $1 AND status = 'refund_failed'",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    append_note(conn, id, note).await
}

async fn append_note(conn: &mut PgConnection, id: i64, note: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refund_events (order_no, kind, message)
         SELECT order_no, 'note', $2 FROM orders WHERE id = $1",
    )
    .bind(id)
    .bind(note)
    .execute(conn)
    .await?;
    Ok(())
}
