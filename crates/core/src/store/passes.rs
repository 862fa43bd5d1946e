//! The record of each pass: when it started and ended, how it ended, and its
//! counts, so that `status`, health checks and "is a pass due" can read it.

use super::{Store, StoreError};
use crate::domain::words::PassOutcome;
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PassRecord {
    pub id: i64,
    pub worker: Uuid,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    #[sqlx(try_from = "super::word_columns::MaybeText")]
    pub outcome: Option<PassOutcome>,
    pub summary: serde_json::Value,
}

impl Store {
    /// Records the start of a pass; returns its id and its start on the database's clock.
    pub async fn start_pass(&self, worker: Uuid) -> Result<(i64, DateTime<Utc>), StoreError> {
        Ok(sqlx::query_as(&self.sql(
            "INSERT INTO refundd.refund_passes (worker) VALUES ($1) RETURNING id, started_at",
        ))
        .bind(worker)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn finish_pass(
        &self,
        id: i64,
        outcome: PassOutcome,
        summary: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query(&self.sql("UPDATE refundd.refund_passes SET finished_at = now(), outcome = $2, summary = $3 WHERE id = $1"),
        )
        .bind(id)
        .bind(outcome.as_str())
        .bind(summary)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The most recent finished pass, if any.
    pub async fn last_finished_pass(&self) -> Result<Option<PassRecord>, StoreError> {
        Ok(sqlx::query_as(&self.sql("SELECT id, worker, started_at, finished_at, outcome, summary FROM refundd.refund_passes
              WHERE finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT 1"),
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The database's clock.
    pub async fn now(&self) -> Result<DateTime<Utc>, StoreError> {
        Ok(sqlx::query_scalar(&self.sql("SELECT now()"))
            .fetch_one(&self.pool)
            .await?)
    }

    /// When the most recent pass started, finished or not.
    pub async fn last_started_pass(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(
            sqlx::query_scalar(&self.sql("SELECT max(started_at) FROM refundd.refund_passes"))
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
