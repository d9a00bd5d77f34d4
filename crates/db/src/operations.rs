//! `operations_log`: one row per run of any job.

use chrono::{DateTime, Utc};
use domain::operation::{OperationStatus, OperationType};
use sqlx::PgExecutor;

use crate::DbError;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OperationRow {
    pub id: i64,
    pub operation_type: String,
    pub started_at: DateTime<Utc>,
    pub duration: f64,
    pub status: String,
    pub details: String,
}

/// Records a finished run; `duration` is measured from `started_at` to now.
pub async fn record(
    db: impl PgExecutor<'_>,
    kind: OperationType,
    started_at: DateTime<Utc>,
    status: OperationStatus,
    details: &str,
) -> Result<i64, DbError> {
    let id = sqlx::query_scalar(
        "INSERT INTO operations_log (operation_type, started_at, duration, status, details)
         VALUES ($1, $2, extract(epoch FROM clock_timestamp() - $2)::float8, $3, $4)
         RETURNING id",
    )
    .bind(kind.as_str())
    .bind(started_at)
    .bind(status.as_str())
    .bind(details)
    .fetch_one(db)
    .await?;
    Ok(id)
}

/// The newest row of each operation type.
pub async fn latest_per_type(db: impl PgExecutor<'_>) -> Result<Vec<OperationRow>, DbError> {
    let rows = sqlx::query_as(
        "SELECT DISTINCT ON (operation_type) id, operation_type, started_at, duration, status, details
         FROM operations_log
         ORDER BY operation_type, started_at DESC, id DESC",
    )
    .fetch_all(db)
    .await?;
    Ok(rows)
}
