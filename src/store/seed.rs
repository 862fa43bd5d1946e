// Orders as a shop's code writes them (`paid`, with the authorisation's
// details), for the demo and rehearsals. refundd itself never creates orders.

use super::StoreError;
use sqlx::PgPool;

/// Inserts a `paid` order.
pub async fn insert_paid_order(
    pool: &PgPool,
    order_no: &str,
    xid: Option<&str>,
    auth_code: &str,
    auth_amount: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO orders (order_no, xid, auth_code, auth_amount, status)
         VALUES ($1, $2, $3, $4, 'paid')",
    )
    .bind(order_no)
    .bind(xid)
    .bind(auth_code)
    .bind(auth_amount)
    .execute(pool)
    .await?;
    Ok(())
}
