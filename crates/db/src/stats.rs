//! Counts for the api's `/stats`: how far the pipeline has got.
//!
//! The api's role may not read `raw_data`, `rejected_items` or the worker
//! tables (proxies hold credentials): the counts come from functions that
//! run with the owner's rights and return numbers only (migration 0015).

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
        "SELECT loaded, processed, waiting, failed, normalized, active FROM api_pipeline_counts()",
    )
    .fetch_one(db)
    .await?;
    Ok(counts)
}

/// Tables of the worker fleet, in the order `/stats` lists them.
pub const FLEET_TABLES: [&str; 4] = ["tasks", "proxies", "workers", "results"];

/// `(table, rows)` for each fleet table, in [`FLEET_TABLES`] order.
pub async fn fleet_counts(conn: &mut PgConnection) -> Result<Vec<(&'static str, i64)>, DbError> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT name, row_count FROM api_fleet_counts()")
        .fetch_all(&mut *conn)
        .await?;
    Ok(FLEET_TABLES
        .iter()
        .filter_map(|table| {
            rows.iter()
                .find(|(name, _)| name == table)
                .map(|(_, n)| (*table, *n))
        })
        .collect())
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
                refetch_rounds, api_rejected_items_count() AS rejected_items
           FROM initial_load_state WHERE id = 1",
    )
    .fetch_optional(db)
    .await?;
    Ok(status)
}
