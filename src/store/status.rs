// Read-only views of the queue for progress, `refundd status` and health checks.

use super::StoreError;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// Orders a pass that started at `due_by` would work.
pub async fn count_due(pool: &PgPool, due_by: DateTime<Utc>) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM orders
          WHERE (status = 'refund_requested'
                 OR (status = 'refunding' AND (lease_expires_at IS NULL OR lease_expires_at < now())))
            AND (next_attempt_at IS NULL OR next_attempt_at <= $1)",
    )
    .bind(due_by)
    .fetch_one(pool)
    .await?)
}
