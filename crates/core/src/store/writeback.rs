//! Writing an outcome back to the shop's tables with the shop's own statements
//! (`shop.on_refunded`, `shop.on_failed`), in the transaction that records it in
//! refundd's schema. If the shop's database refuses the write (a constraint, a
//! trigger of the shop's), refundd's record of the money still commits, and the
//! write-back is kept as pending and tried again on later passes.

use super::endings::{refusal, Ending};
use super::{Store, StoreError};
use crate::domain::words::{RefundMethod, RefundStatus};
use sqlx::PgConnection;

/// How the shop's statement went, within its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ShopWrite {
    /// It changed the order's row.
    Done,
    /// Refused by the shop's database, or it changed no row or several:
    /// nothing of it may be kept.
    Refused(String),
}

/// Why a write-back that ran without error is still refused.
fn changed_rows(setting: &str, rows: u64) -> String {
    format!(
        "{setting} changed {rows} rows for this order; it must change exactly the order's row (check its WHERE: $1 is the order number as shop.requests returns it)"
    )
}

/// Which refund the shop is told of: the order number as its requests gave
/// it (`$1` of every write-back) and the refund's id (`$4`, NULL for an
/// order's only refund).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ShopKeys {
    order_no: String,
    refund_id: Option<String>,
}

impl ShopKeys {
    pub(super) fn new(order_no: String, refund_id: String) -> Self {
        let refund_id = (!refund_id.is_empty()).then_some(refund_id);
        Self {
            order_no,
            refund_id,
        }
    }
}

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
    pub refund_id: String,
    /// `Refunded` or `RefundFailed`: which statement of the shop's to run.
    #[sqlx(try_from = "String")]
    pub writeback: RefundStatus,
    pub refunded_amount: Option<i64>,
    #[sqlx(try_from = "super::word_columns::MaybeText")]
    pub refund_method: Option<RefundMethod>,
    pub refund_error: Option<String>,
}

impl PendingWriteBack {
    /// What to tell the shop. `None` for a refunded record without its
    /// method or amount, which the ending that set `writeback` always writes.
    fn ending(&self) -> Option<Ending> {
        if self.writeback == RefundStatus::Refunded {
            Some(Ending::Refunded {
                method: self.refund_method?,
                amount: self.refunded_amount?,
                watch_days: None,
            })
        } else if self.writeback == RefundStatus::Cancelled {
            Some(Ending::Cancelled {
                amount: self.refunded_amount?,
                reason: self.refund_error.clone().unwrap_or_default(),
            })
        } else {
            Some(Ending::Failed {
                reason: self.refund_error.clone().unwrap_or_default(),
                refunded_amount: None,
            })
        }
    }
}

impl Store {
    /// Runs the shop's statement for `ending` (`on_refunded`, or `on_failed`
    /// if there is one) on `conn`, exactly as written, with `$4` the refund's
    /// id whichever of `$1` to `$3` it uses. It must change exactly the
    /// order's row: a statement the shop's database refuses, or one that
    /// changes no row or several, is a refused write-back with the reason.
    /// A failure of the connection is an error.
    pub(super) async fn write_back(
        &self,
        conn: &mut PgConnection,
        keys: &ShopKeys,
        ending: &Ending,
    ) -> Result<ShopWrite, sqlx::Error> {
        let (setting, done) = match ending {
            Ending::Refunded { method, amount, .. } => (
                "shop.on_refunded",
                sqlx::query(&self.shop.on_refunded)
                    .bind(&keys.order_no)
                    .bind(amount)
                    .bind(method.as_str())
                    .bind(&keys.refund_id)
                    .execute(conn)
                    .await,
            ),
            Ending::Failed { reason, .. } | Ending::FailedAtSettlement { reason } => {
                let Some(on_failed) = self.shop.on_failed.as_deref() else {
                    return Ok(ShopWrite::Done);
                };
                let done = sqlx::query(on_failed)
                    .bind(&keys.order_no)
                    .bind(reason)
                    .bind(None::<String>)
                    .bind(&keys.refund_id)
                    .execute(conn)
                    .await;
                ("shop.on_failed", done)
            }
            Ending::Cancelled { amount, reason } => {
                let Some(on_cancelled) = self.shop.on_cancelled.as_deref() else {
                    return Ok(ShopWrite::Done);
                };
                let done = sqlx::query(on_cancelled)
                    .bind(&keys.order_no)
                    .bind(amount)
                    .bind(reason)
                    .bind(&keys.refund_id)
                    .execute(conn)
                    .await;
                ("shop.on_cancelled", done)
            }
        };
        match done {
            Ok(d) if d.rows_affected() == 1 => Ok(ShopWrite::Done),
            Ok(d) => Ok(ShopWrite::Refused(changed_rows(setting, d.rows_affected()))),
            Err(sqlx::Error::Database(e)) => Ok(ShopWrite::Refused(refusal(e.as_ref()))),
            Err(other) => Err(other),
        }
    }

    /// Tries a pending write-back once more inside a savepoint: refused
    /// again, it is rolled back alone and stays pending with the new reason;
    /// the connection failing is an error.
    async fn write_back_again(
        &self,
        conn: &mut PgConnection,
        p: &PendingWriteBack,
        ending: &Ending,
    ) -> Result<WriteBack, StoreError> {
        sqlx::query("SAVEPOINT shop_write_back")
            .execute(&mut *conn)
            .await?;
        let keys = ShopKeys::new(p.order_no.clone(), p.refund_id.clone());
        match self.write_back(conn, &keys, ending).await? {
            ShopWrite::Done => {
                // The shop's rows change in this transaction: a reading of
                // its requests counts against the ending only if its snapshot
                // saw this one (`intake`), not the one that ended the work.
                sqlx::query(&self.sql(
                    "UPDATE refundd.refunds SET writeback = NULL, writeback_error = NULL,
                            shop_told_failed = (shop_told_failed OR $2),
                            decided_xid = pg_current_xact_id()
                      WHERE id = $1",
                ))
                .bind(p.id)
                .bind(p.writeback == RefundStatus::RefundFailed && self.shop.on_failed.is_some())
                .execute(&mut *conn)
                .await?;
                Ok(WriteBack::Done)
            }
            ShopWrite::Refused(reason) => {
                sqlx::query("ROLLBACK TO SAVEPOINT shop_write_back")
                    .execute(&mut *conn)
                    .await?;
                self.note_refused_again(conn, p.id, &reason).await?;
                Ok(WriteBack::Refused(reason))
            }
        }
    }

    /// A pending write-back refused once more: its new reason, and a note in
    /// the order's story.
    async fn note_refused_again(
        &self,
        conn: &mut PgConnection,
        id: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(&self.sql(
            "WITH f AS (UPDATE refundd.refunds SET writeback_error = $2
                         WHERE id = $1 RETURNING order_no, refund_id)
             INSERT INTO refundd.refund_events (order_no, refund_id, kind, outcome, message)
             SELECT order_no, refund_id, 'note', 'write_back_refused', $2 FROM f",
        ))
        .bind(id)
        .bind(reason)
        .execute(&mut *conn)
        .await?;
        Ok(())
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
                "SELECT id, order_no, refund_id, writeback, refunded_amount, refund_method, refund_error
                   FROM refundd.refunds WHERE id = $1 AND writeback IS NOT NULL
                    FOR UPDATE SKIP LOCKED",
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(p) = pending else { continue };
            let Some(ending) = p.ending() else { continue };
            let wb = self.write_back_again(&mut tx, &p, &ending).await?;
            let wb = match tx.commit().await {
                Ok(()) => wb,
                // Refused at COMMIT: nothing of it was kept; it stays pending.
                Err(sqlx::Error::Database(e)) => {
                    let reason = refusal(e.as_ref());
                    let mut conn = self.pool.acquire().await?;
                    self.note_refused_again(&mut conn, p.id, &reason).await?;
                    WriteBack::Refused(reason)
                }
                Err(other) => return Err(other.into()),
            };
            done.push((p.order_no, wb));
        }
        Ok(done)
    }
}
