//! Orders as a shop's code writes them into the built-in orders table (`paid`,
//! with the authorisation's details), for the demo and rehearsals. refundd
//! itself never creates orders.

use super::{Store, StoreError};

impl Store {
    /// Inserts a `paid` order into the built-in orders table.
    pub async fn insert_paid_order(
        &self,
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
