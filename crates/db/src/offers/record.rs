//! One offer's record, as `/offers/{id}` serves it.

use sqlx::PgExecutor;

use crate::DbError;

/// One active offer's whole record as JSON text; None when unknown or inactive.
pub async fn record(db: impl PgExecutor<'_>, inner_id: &str) -> Result<Option<String>, DbError> {
    let record = sqlx::query_scalar(
        "SELECT record::text FROM processed_data WHERE inner_id = $1 AND is_active",
    )
    .bind(inner_id)
    .fetch_optional(db)
    .await?;
    Ok(record)
}
