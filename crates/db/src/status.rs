//! What the operator's status page (`/status`, `/status.json`, `/metrics`
//! on the api's admin listener) reads: counts from every table group, the
//! newest rejected items and `operations_log` rows. Read only; cheap at a
//! million rows (the counts' SQL, commented, is the function
//! `api_status_figures` in migrations/0016_status_functions.sql).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgExecutor};

use crate::operations::OperationRow;
use crate::DbError;

/// Every count of the page, read in one statement.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Figures {
    pub normalizer_waiting: i64,
    pub normalizer_errors: i64,
    pub normalizer_oldest_waiting: Option<DateTime<Utc>>,
    /// Listings normalised by the runs that started in the last hour.
    pub normalizer_last_hour: i64,
    pub rejected_total: i64,
    /// Rejected within the window passed to [`figures`].
    pub rejected_recent: i64,
    pub workers_alive: i64,
    pub workers_dead: i64,
    /// Died within the window passed to [`figures`].
    pub workers_dead_recent: i64,
    pub tasks_pending: i64,
    pub tasks_running: i64,
    pub tasks_completed: i64,
    pub tasks_failed: i64,
    pub tasks_completed_last_hour: i64,
    pub tasks_failed_last_hour: i64,
    pub proxies_free: i64,
    pub proxies_in_use: i64,
    pub proxies_blocked: i64,
    /// The newest successful push (pull) of any table; None: never.
    pub sync_last_push: Option<DateTime<Utc>>,
    pub sync_last_pull: Option<DateTime<Utc>>,
    /// `processed_data` rows changed since the last push's snapshot; None:
    /// never pushed.
    pub sync_waiting: Option<i64>,
    pub tokens_active: i64,
    /// The last date the daily update applied completely.
    pub daily_last_date: Option<NaiveDate>,
}

/// The counts; rejected items within `rejected_window` and workers dead
/// within `dead_window` are counted apart.
pub async fn figures(
    db: impl PgExecutor<'_>,
    rejected_window: std::time::Duration,
    dead_window: std::time::Duration,
) -> Result<Figures, DbError> {
    // The counts live in a function of the owner's (migration 0016), since
    // the api's role may not read most of the tables they count.
    let figures = sqlx::query_as("SELECT * FROM api_status_figures($1, $2)")
        .bind(rejected_window.as_secs_f64())
        .bind(dead_window.as_secs_f64())
        .fetch_one(db)
        .await?;
    Ok(figures)
}

/// One rejected upstream item, newest first.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Rejected {
    pub rejected_at: DateTime<Utc>,
    pub endpoint: String,
    pub inner_id: Option<String>,
    pub reason: String,
}

/// The `limit` newest rejected items (by the rejected_at index).
pub async fn newest_rejected(
    db: impl PgExecutor<'_>,
    limit: i64,
) -> Result<Vec<Rejected>, DbError> {
    let rows = sqlx::query_as(
        "SELECT rejected_at, endpoint, inner_id, reason FROM api_status_rejected($1)",
    )
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// The `limit` newest `operations_log` rows.
pub async fn newest_operations(
    db: impl PgExecutor<'_>,
    limit: i64,
) -> Result<Vec<OperationRow>, DbError> {
    let rows = sqlx::query_as(
        "SELECT id, operation_type, started_at, duration, status, details
           FROM operations_log ORDER BY started_at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// The newest row of `operation_type` (with `status` when given) and, for
/// the daily update, whose details contain `details_like` (a LIKE pattern).
pub async fn newest_operation(
    db: impl PgExecutor<'_>,
    operation_type: &str,
    status: Option<&str>,
    details_like: &str,
) -> Result<Option<OperationRow>, DbError> {
    let row = sqlx::query_as(
        "SELECT id, operation_type, started_at, duration, status, details
           FROM operations_log
          WHERE operation_type = $1 AND ($2::text IS NULL OR status = $2) AND details LIKE $3
          ORDER BY started_at DESC, id DESC LIMIT 1",
    )
    .bind(operation_type)
    .bind(status)
    .bind(details_like)
    .fetch_optional(db)
    .await?;
    Ok(row)
}

/// Everything the page reads, in one read-only snapshot so its sections
/// agree with each other.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub now: DateTime<Utc>,
    pub figures: Figures,
    pub initial_load: Option<crate::load_state::LoadState>,
    pub rejected: Vec<Rejected>,
    pub operations: Vec<OperationRow>,
    /// The newest daily update run (a `data_fetch` row of the daily job).
    pub daily_run: Option<OperationRow>,
    pub last_push: Option<OperationRow>,
    pub last_backup: Option<OperationRow>,
    pub last_good_backup: Option<OperationRow>,
    pub last_restore_drill: Option<OperationRow>,
}

/// Reads a [`Snapshot`] in a read-only repeatable-read transaction on `conn`.
pub async fn snapshot(
    conn: &mut PgConnection,
    rejected_window: std::time::Duration,
    dead_window: std::time::Duration,
) -> Result<Snapshot, DbError> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let now = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *tx)
        .await?;
    let figures = figures(&mut *tx, rejected_window, dead_window).await?;
    let initial_load = crate::load_state::get(&mut *tx).await?;
    let rejected = newest_rejected(&mut *tx, 5).await?;
    let operations = newest_operations(&mut *tx, 20).await?;
    let daily_run = newest_operation(&mut *tx, "data_fetch", None, "%daily update%").await?;
    let last_push = newest_operation(&mut *tx, "sync_push", None, "%").await?;
    let last_backup = newest_operation(&mut *tx, "backup", None, "%").await?;
    let last_good_backup = newest_operation(&mut *tx, "backup", Some("OK"), "%").await?;
    let last_restore_drill = newest_operation(&mut *tx, "restore_drill", None, "%").await?;
    tx.commit().await?;
    Ok(Snapshot {
        now,
        figures,
        initial_load,
        rejected,
        operations,
        daily_run,
        last_push,
        last_backup,
        last_good_backup,
        last_restore_drill,
    })
}
