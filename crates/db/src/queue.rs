//! The normaliser's queue over `raw_data`: rows with `is_processed = false`
//! and no `normalize_error`, claimed in id order with `FOR UPDATE SKIP
//! LOCKED` so that several normalisers share the queue and each row is
//! normalised once. The caller's transaction holds the row locks for the
//! batch's life; committing it releases them, rolling it back hands the rows
//! back to the queue.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use crate::DbError;

/// The `NOTIFY` channel the loader signals after it writes raw rows.
pub const CHANNEL: &str = "raw_data_changed";

/// One claimed raw row. `data` is the jsonb as text: each row is decoded on
/// its own by the caller, so a value Rust cannot read (a number outside
/// f64's range, nesting deeper than serde_json allows) costs only its row,
/// not the whole claim.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueuedRow {
    pub id: i64,
    pub inner_id: String,
    pub data: String,
    pub active_status: i32,
    pub created_at: Option<DateTime<Utc>>,
}

/// Claims up to `limit` waiting rows with ids above `after`, oldest first,
/// skipping rows another transaction holds. The locks last until the
/// caller's transaction ends.
///
/// `after` lets a drain walk the queue instead of starting at its head every
/// time: the rows it already processed stay in the queue index as dead
/// entries until vacuum, and scanning past them again for every batch made
/// a drain quadratic. A drain restarts from 0 once nothing is left above its
/// position, so rows that (re)entered the queue behind it are not missed.
///
/// The plan is the walk of the queue index (`raw_data_is_processed_idx`, in
/// id order) whatever the statistics say. On a freshly loaded raw_data that
/// was never analysed, the planner takes the default selectivity of
/// `normalize_error IS NULL` (0.5%), believes a few dozen rows wait, and
/// reads the whole rest of the queue into a bitmap and sorts it, for every
/// batch (issue 27: a first drain 2.4 times slower than on an analysed
/// table, quadratic in the queue's length). With sorting disabled for the
/// claim, the only plans left return rows in id order from an index and
/// stop after `limit`. The setting is put back before the claim returns, so
/// the rest of the batch's transaction plans as usual.
pub async fn claim(
    conn: &mut PgConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<QueuedRow>, DbError> {
    sqlx::query("SET LOCAL enable_sort = off")
        .execute(&mut *conn)
        .await?;
    let rows = sqlx::query_as(
        "SELECT id, inner_id, data::text AS data, active_status, created_at
         FROM raw_data
         WHERE is_processed = false AND normalize_error IS NULL AND id > $1
         ORDER BY id
         LIMIT $2
         FOR UPDATE SKIP LOCKED",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query("SET LOCAL enable_sort TO DEFAULT")
        .execute(&mut *conn)
        .await?;
    Ok(rows)
}

/// Marks the batch's normalised rows as processed (one statement).
pub async fn mark_processed(conn: &mut PgConnection, ids: &[i64]) -> Result<u64, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query("UPDATE raw_data SET is_processed = true WHERE id = ANY($1)")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// Records why rows could not be normalised: they keep `is_processed =
/// false`, get their error and one more attempt, and leave the queue until
/// the loader rewrites them (one statement for all of them).
pub async fn record_failures(
    conn: &mut PgConnection,
    ids: &[i64],
    errors: &[String],
) -> Result<u64, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "UPDATE raw_data AS r
         SET normalize_error = f.error, normalize_attempts = r.normalize_attempts + 1
         FROM UNNEST($1::bigint[], $2::text[]) AS f(id, error)
         WHERE r.id = f.id",
    )
    .bind(ids)
    .bind(errors)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Which rows `requeue` puts back: both filters must hold (none: every row).
#[derive(Debug, Clone, Default)]
pub struct Requeue {
    /// Only rows whose normalisation failed.
    pub errors_only: bool,
    /// Only these listings (empty: any).
    pub inner_ids: Vec<String>,
}

/// Puts rows back in the queue and clears their `normalize_error` (and
/// attempts), so that a fix of the normalising rules is applied to them.
/// Returns how many rows were requeued.
pub async fn requeue(db: impl PgExecutor<'_>, which: &Requeue) -> Result<u64, DbError> {
    let done = sqlx::query(
        "UPDATE raw_data
         SET is_processed = false, normalize_error = NULL, normalize_attempts = 0
         WHERE ($1 = false OR normalize_error IS NOT NULL)
           AND (cardinality($2::text[]) = 0 OR inner_id = ANY($2))",
    )
    .bind(which.errors_only)
    .bind(&which.inner_ids)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// How many rows are waiting (the denominator of the progress line).
pub async fn waiting(db: impl PgExecutor<'_>) -> Result<i64, DbError> {
    let n = sqlx::query_scalar(
        "SELECT count(*) FROM raw_data WHERE is_processed = false AND normalize_error IS NULL",
    )
    .fetch_one(db)
    .await?;
    Ok(n)
}

/// Tells listening normalisers that rows are waiting (the loader's hint).
pub async fn notify(db: impl PgExecutor<'_>) -> Result<(), DbError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(db)
        .await?;
    Ok(())
}
