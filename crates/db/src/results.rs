//! `results`: what the fleet fetched, one row per task. A result is written
//! only by the claim that holds the task (its lease still current), and a
//! second write of the same task's result updates the row (`saves` + 1)
//! instead of adding one.

use chrono::{DateTime, Utc};
use futures::Stream;
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};

use crate::DbError;

/// A fetched response, from the claim `(task_id, lease)` of `worker_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewResult {
    pub task_id: i64,
    pub lease: i64,
    pub worker_id: i64,
    pub status_code: i32,
    pub headers: Value,
    /// The body's bytes as they came (`bytea`, migration 0013).
    pub body: Option<Vec<u8>>,
    pub body_truncated: bool,
}

/// Saves results, in one statement. A result whose claim was taken away is
/// not written. Returns the task ids written.
pub async fn save_result(
    conn: &mut PgConnection,
    results: &[NewResult],
) -> Result<Vec<i64>, DbError> {
    if results.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids = Vec::with_capacity(results.len());
    let mut leases = Vec::with_capacity(results.len());
    let mut workers = Vec::with_capacity(results.len());
    let mut codes = Vec::with_capacity(results.len());
    let mut headers = Vec::with_capacity(results.len());
    let mut bodies = Vec::with_capacity(results.len());
    let mut truncated = Vec::with_capacity(results.len());
    for r in results {
        ids.push(r.task_id);
        leases.push(r.lease);
        workers.push(r.worker_id);
        codes.push(r.status_code);
        headers.push(r.headers.clone());
        bodies.push(r.body.clone());
        truncated.push(r.body_truncated);
    }
    let written = sqlx::query_scalar(include_str!("results_save.sql"))
        .bind(ids)
        .bind(leases)
        .bind(workers)
        .bind(codes)
        .bind(headers)
        .bind(bodies)
        .bind(truncated)
        .fetch_all(conn)
        .await?;
    Ok(written)
}

/// What a rendered or extracted page adds to its result (migration 0010),
/// written in the same transaction right after `save_result`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PageData {
    pub task_id: i64,
    pub lease: i64,
    pub final_url: Option<String>,
    pub profile: Option<String>,
    pub data: Option<Value>,
    pub missing_fields: Option<Vec<String>>,
    pub screenshot: Option<Vec<u8>>,
}

/// Adds page data to results saved under the same claim (`lease`). Returns
/// how many results took it.
pub async fn save_page_data(conn: &mut PgConnection, pages: &[PageData]) -> Result<u64, DbError> {
    let mut written = 0;
    // One statement per page: screenshots are large, and few pages carry one.
    for p in pages {
        let done = sqlx::query(
            "UPDATE results SET final_url = $3, profile = $4, data = $5, missing_fields = $6,
                                screenshot = $7
              WHERE task_id = $1 AND lease = $2",
        )
        .bind(p.task_id)
        .bind(p.lease)
        .bind(&p.final_url)
        .bind(&p.profile)
        .bind(&p.data)
        .bind(&p.missing_fields)
        .bind(&p.screenshot)
        .execute(&mut *conn)
        .await?;
        written += done.rows_affected();
    }
    Ok(written)
}

/// The extraction profiles the stored results were made with.
pub async fn profiles(db: impl PgExecutor<'_>) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT profile FROM results WHERE profile IS NOT NULL ORDER BY profile",
    )
    .fetch_all(db)
    .await?)
}

/// The field names found in the results of `profile`, sorted.
pub async fn data_fields(db: impl PgExecutor<'_>, profile: &str) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT k
           FROM results,
                jsonb_object_keys(CASE jsonb_typeof(data) WHEN 'object' THEN data ELSE '{}' END) AS k
          WHERE profile = $1 ORDER BY k",
    )
    .bind(profile)
    .fetch_all(db)
    .await?)
}

/// One stored result, as exported.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct ResultRow {
    pub task_id: i64,
    pub kind: String,
    pub target: String,
    pub status_code: i32,
    pub headers: Value,
    /// The body's bytes; exports write it as text or base64 (`body_encoding`).
    #[serde(skip)]
    pub body: Option<Vec<u8>>,
    pub body_truncated: bool,
    pub worker_id: i64,
    pub fetched_at: DateTime<Utc>,
    pub final_url: Option<String>,
    pub profile: Option<String>,
    pub data: Option<Value>,
    pub missing_fields: Option<Vec<String>>,
    /// A PNG screenshot is stored (read it with SQL; it is not exported).
    pub has_screenshot: bool,
}

/// Every result in task order, streamed row by row (constant memory).
pub fn stream_all<'e>(
    db: impl PgExecutor<'e> + 'e,
) -> impl Stream<Item = Result<ResultRow, sqlx::Error>> + 'e {
    sqlx::query_as(
        "SELECT task_id, kind, target, status_code, headers, body, body_truncated, worker_id, fetched_at,
                final_url, profile, data, missing_fields, screenshot IS NOT NULL AS has_screenshot
           FROM results ORDER BY task_id",
    )
    .fetch(db)
}

pub async fn count(db: impl PgExecutor<'_>) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM results")
        .fetch_one(db)
        .await?)
}
