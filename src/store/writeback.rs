// Writing an outcome back to the shop's tables with the shop's own statements
// (`shop.on_refunded`, `shop.on_failed`), in the transaction that records it in
// refundd's schema. If the shop's database refuses the write (a constraint, a
// trigger of the shop's), refundd's record of the money still commits, and the
// write-back is kept as pending and tried again on later passes.

use super::{Store, StoreError};
use sqlx::PgConnection;

/// What became of a write-back to the shop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteBack {
    Done,
    /// The shop's database refused it: kept pending with this reason.
    Refused(String),
}

/// A write-back still to be done: the order, what to write, and its values.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingWriteBack {
    pub id: i64,
    pub order_no: String,
    /// refunded | refund_failed
    pub writeback: String,
    pub refunded_amount: Option<i64>,
    pub refund_method: Option<String>,
    pub refund_error: Option<String>,
}

impl Store {
    pub(super) async fn write_back_refunded(
        &self,
        conn: &mut PgConnection,
        id: i64,
        order_no: &str,
        amount: i64,
        method: &str,
    ) -> Result<WriteBack, StoreError> {
        let stmt = sqlx::query(&self.shop.on_refunded)
            .bind(order_no)
            .bind(amount)
            .bind(method);
        self.guarded(conn, id, "refunded", stmt).await
    }

    pub(super) async fn write_back_failed(
        &self,
        conn: &mut PgConnection,
        id: i64,
        order_no: &str,
        reason: &str,
    ) -> Result<WriteBack, StoreError> {
        let Some(on_failed) = self.shop.on_failed.as_deref() else {
            return Ok(WriteBack::Done);
        };
        let stmt = sqlx::query(on_failed).bind(order_no).bind(reason);
        let wb = self.guarded(conn, id, "refund_failed", stmt).await?;
        if wb == WriteBack::Done {
            sqlx::query(
                &self.sql("UPDATE refundd.refunds SET shop_told_failed = true WHERE id = $1"),
            )
            .bind(id)
            .execute(&mut *conn)
            .await?;
        }
        Ok(wb)
    }

    /// Runs the shop's statement inside a savepoint: refused, it is rolled
    /// back alone and recorded as pending; the connection failing is an error.
    async fn guarded<'q>(
        &self,
        conn: &mut PgConnection,
        id: i64,
        what: &str,
        stmt: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<WriteBack, StoreError> {
        sqlx::query("SAVEPOINT shop_write_back")
            .execute(&mut *conn)
            .await?;
        match stmt.execute(&mut *conn).await {
            Ok(_) => {
                sqlx::query("RELEASE SAVEPOINT shop_write_back")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(&self.sql(
                    "UPDATE refundd.refunds SET writeback = NULL, writeback_error = NULL
                      WHERE id = $1 AND writeback IS NOT NULL",
                ))
                .bind(id)
                .execute(&mut *conn)
                .await?;
                Ok(WriteBack::Done)
            }
            Err(sqlx::Error::Database(e)) => {
                sqlx::query("ROLLBACK TO SAVEPOINT shop_write_back")
                    .execute(&mut *conn)
                    .await?;
                let reason: String = e.message().chars().filter(|c| !c.is_control()).collect();
                sqlx::query(&self.sql(
                    "WITH f AS (UPDATE refundd.refunds SET writeback = $2, writeback_error = $3
                                 WHERE id = $1 RETURNING order_no)
                     INSERT INTO refundd.refund_events (order_no, kind, outcome, message)
                     SELECT order_no, 'note', 'write_back_refused', $3 FROM f",
                ))
                .bind(id)
                .bind(what)
                .bind(&reason)
                .execute(&mut *conn)
                .await?;
                Ok(WriteBack::Refused(reason))
            }
            Err(other) => Err(other.into()),
        }
    }

    /// How many write-backs the shop refused and are still to be done.
    pub async fn pending_write_backs(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            &self.sql("SELECT count(*) FROM refundd.refunds WHERE writeback IS NOT NULL"),
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Write-backs the shop refused earlier, each tried once more, oldest
    /// first; one another daemon is retrying right now is skipped.
    pub async fn retry_write_backs(
        &self,
        limit: i64,
    ) -> Result<Vec<(String, WriteBack)>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(&self.sql(
            "SELECT id FROM refundd.refunds WHERE writeback IS NOT NULL ORDER BY id LIMIT $1",
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut done = Vec::new();
        for id in ids {
            let mut tx = self.pool.begin().await?;
            let pending: Option<PendingWriteBack> = sqlx::query_as(&self.sql(
                "SELECT id, order_no, writeback, refunded_amount, refund_method, refund_error
                   FROM refundd.refunds WHERE id = $1 AND writeback IS NOT NULL
                    FOR UPDATE SKIP LOCKED",
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(p) = pending else { continue };
            let wb = if p.writeback == "refunded" {
                let amount = p.refunded_amount.unwrap_or(0);
                let method = p.refund_method.as_deref().unwrap_or("");
                self.write_back_refunded(&mut tx, p.id, &p.order_no, amount, method)
                    .await?
            } else {
                let reason = p.refund_error.as_deref().unwrap_or("");
                self.write_back_failed(&mut tx, p.id, &p.order_no, reason)
                    .await?
            };
            tx.commit().await?;
            done.push((p.order_no, wb));
        }
        Ok(done)
    }
}
