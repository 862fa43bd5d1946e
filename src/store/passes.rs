// The record of each pass: when it started and ended, how it ended, and its
// counts, so that `status`, health checks and "is a pass due" can read it.

use super::StoreError;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PassRecord {
    pub id: i64,
    pub worker: Uuid,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub summary: serde_json::Value,
}

/// Records the start of a pass; returns its id and its start on the database's clock.
pub async fn start_pass(pool: &PgPool, worker: Uuid) -> Result<(i64, DateTime<Utc>), StoreError> {
    Ok(
        sqlx::query_as("INSERT INTO refund_passes (worker) VALUES ($1) RETURNING id, started_at")
            .bind(worker)
            .fetch_one(pool)
            .await?,
    )
}

pub async fn finish_pass(
    pool: &PgPool,
    id: i64,
    outcome: &str,
    summary: &serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE refund_passes SET finished_at = now(), outcome = $2, summary = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(outcome)
    .bind(summary)
    .execute(pool)
    .await?;
    Ok(())
}

/// The most recent finished pass, if any.
pub async fn last_finished_pass(pool: &PgPool) -> Result<Option<PassRecord>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, worker, started_at, finished_at, outcome, summary FROM refund_passes
          WHERE finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?)
}

/// The database's clock.
pub async fn now(pool: &PgPool) -> Result<DateTime<Utc>, StoreError> {
    Ok(sqlx::query_scalar("SELECT now()").fetch_one(pool).await?)
}

/// When the most recent pass started, finished or not.
pub async fn last_started_pass(pool: &PgPool) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT max(started_at) FROM refund_passes")
            .fetch_one(pool)
            .await?,
    )
}
