//! Counts for the api's `/stats`: how far the pipeline has got.

use sqlx::{PgConnection, PgExecutor};

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
pub async fn fleet_counts(conn: &mut PgConnection) -> Result<Vec<(&'static str, i64)>, DbError> {
    let names: Vec<&str> = FLEET_TABLES.to_vec();
    let present: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM UNNEST($1::text[]) AS name WHERE to_regclass(name) IS NOT NULL",
    )
    .bind(&names)
    .fetch_all(&mut *conn)
    .await?;
    let mut counts = Vec::new();
    for table in FLEET_TABLES {
        if present.iter().any(|p| p == table) {
            // The name comes from FLEET_TABLES, never from a request.
            let count = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&mut *conn)
                .await?;
            counts.push((table, count));
        }
    }
    Ok(counts)
}

/// Where the initial load stands, for `/stats`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InitialLoadStatus {
    /// No failed page remains, or the rounds of fetching them ran out.
    pub finished: bool,
    /// Pages that failed every attempt and are not stored yet.
    pub missing_pages: Vec<i32>,
    /// Rounds of fetching the failed pages again so far.
    pub refetch_rounds: i32,
    /// Upstream items the loader could not store (`rejected_items`).
    pub rejected_items: i64,
}

/// `None` when no initial load ever started.
pub async fn initial_load(db: impl PgExecutor<'_>) -> Result<Option<InitialLoadStatus>, DbError> {
    let status = sqlx::query_as(
        "SELECT finished_at IS NOT NULL AS finished, failed_pages AS missing_pages,
                refetch_rounds, (SELECT count(*) FROM rejected_items) AS rejected_items
           FROM initial_load_state WHERE id = 1",
    )
    .fetch_optional(db)
    .await?;
    Ok(status)
}
