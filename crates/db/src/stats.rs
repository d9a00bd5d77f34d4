//! Counts for the api's `/stats`: how far the pipeline has got.

use sqlx::PgExecutor;

use crate::DbError;

/// Where the listings stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct PipelineCounts {
    /// Rows in `raw_data` (every listing ever loaded).
    pub loaded: i64,
    /// Raw rows already normalised.
    pub processed: i64,
    /// Raw rows waiting for the normaliser.
    pub waiting: i64,
    /// Raw rows the normaliser could not normalise (they keep a reason).
    pub failed: i64,
    /// Rows in `processed_data`.
    pub normalized: i64,
    /// Active rows in `processed_data`: what the api serves.
    pub active: i64,
}

pub async fn pipeline_counts(db: impl PgExecutor<'_>) -> Result<PipelineCounts, DbError> {
    let counts = sqlx::query_as(
        "SELECT r.loaded, r.processed, r.waiting, r.failed, p.normalized, p.active
         FROM (SELECT count(*) AS loaded,
                      count(*) FILTER (WHERE is_processed) AS processed,
                      count(*) FILTER (WHERE NOT is_processed AND normalize_error IS NULL) AS waiting,
                      count(*) FILTER (WHERE NOT is_processed AND normalize_error IS NOT NULL) AS failed
               FROM raw_data) r,
              (SELECT count(*) AS normalized,
                      count(*) FILTER (WHERE is_active) AS active
               FROM processed_data) p",
    )
    .fetch_one(db)
    .await?;
    Ok(counts)
}

/// Tables of the worker fleet, counted when they exist (they arrive in a
/// later migration than the api's).
pub const FLEET_TABLES: [&str; 4] = ["tasks", "proxies", "workers", "results"];

/// `(table, rows)` for each fleet table that exists, in [`FLEET_TABLES`] order.
pub async fn fleet_counts<'c, E>(db: E) -> Result<Vec<(&'static str, i64)>, DbError>
where
    E: PgExecutor<'c> + Copy,
{
    let names: Vec<&str> = FLEET_TABLES.to_vec();
    let present: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM UNNEST($1::text[]) AS name WHERE to_regclass(name) IS NOT NULL",
    )
    .bind(&names)
    .fetch_all(db)
    .await?;
    let mut counts = Vec::new();
    for table in FLEET_TABLES {
        if present.iter().any(|p| p == table) {
            // The name comes from FLEET_TABLES, never from a request.
            let count = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(db)
                .await?;
            counts.push((table, count));
        }
    }
    Ok(counts)
}
