//! `workers`: one row per `worker run` process, `alive | stopped | dead`.
//! A worker heartbeats its row; cleanup declares it dead once its heartbeat
//! is older than the `stale_after` the worker registered with.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::fleet::WorkerStatus;
use sqlx::{PgConnection, PgExecutor};

use crate::DbError;

/// Registers a live worker; returns its id.
pub async fn register(
    db: impl PgExecutor<'_>,
    name: &str,
    slots: i32,
    stale_after: Duration,
) -> Result<i64, DbError> {
    let id = sqlx::query_scalar(
        "INSERT INTO workers (name, slots, stale_after)
         VALUES ($1, $2, make_interval(secs => $3)) RETURNING id",
    )
    .bind(name)
    .bind(slots)
    .bind(stale_after.as_secs_f64())
    .fetch_one(db)
    .await?;
    Ok(id)
}

/// How a worker's writes are doing, as a heartbeat reports it (seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WriteAges {
    /// Since the completer last wrote outcomes (`None`: never yet).
    pub last_write: Option<f64>,
    /// Since the oldest finished slot still waiting for its write finished
    /// (`None`: none waits).
    pub oldest_unwritten: Option<f64>,
}

/// Records a heartbeat (and the write ages) if the worker is alive.
/// Returns the row's status: `Alive` when recorded; `Dead` when cleanup
/// declared it dead and took what it held; `Stopped` when it ended cleanly;
/// `None` when the row is gone (purged). Two statements: after waiting on
/// the row's lock the UPDATE sees the newest status, a snapshot taken
/// before would not.
pub async fn update_heartbeat(
    conn: &mut PgConnection,
    worker_id: i64,
    ages: WriteAges,
) -> Result<Option<WorkerStatus>, DbError> {
    let done = sqlx::query(
        "UPDATE workers
            SET last_heartbeat = now(),
                last_write_at = now() - make_interval(secs => $2),
                unwritten_since = now() - make_interval(secs => $3)
          WHERE id = $1 AND status = 'alive'",
    )
    .bind(worker_id)
    .bind(ages.last_write)
    .bind(ages.oldest_unwritten)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(Some(WorkerStatus::Alive));
    }
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM workers WHERE id = $1")
        .bind(worker_id)
        .fetch_optional(&mut *conn)
        .await?;
    status
        .map(|word| {
            word.parse()
                .map_err(|e| DbError::Sqlx(sqlx::Error::Decode(Box::new(e))))
        })
        .transpose()
}

/// What a batch of finished slots adds to a worker's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    pub completed: i64,
    pub failed: i64,
    pub retried: i64,
    pub proxies_blocked: i64,
}

impl WorkerStats {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

pub async fn increment_worker_stats(
    db: impl PgExecutor<'_>,
    worker_id: i64,
    stats: WorkerStats,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE workers
            SET tasks_completed = tasks_completed + $2, tasks_failed = tasks_failed + $3,
                tasks_retried = tasks_retried + $4, proxies_blocked = proxies_blocked + $5
          WHERE id = $1",
    )
    .bind(worker_id)
    .bind(stats.completed)
    .bind(stats.failed)
    .bind(stats.retried)
    .bind(stats.proxies_blocked)
    .execute(db)
    .await?;
    Ok(())
}

/// A clean exit: a live worker becomes `stopped`. A worker cleanup already
/// declared `dead` stays dead (its claims were taken away; that is what its
/// row records). Returns whether the worker was alive.
pub async fn mark_stopped(db: impl PgExecutor<'_>, worker_id: i64) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE workers SET status = 'stopped', ended_at = now() WHERE id = $1 AND status = 'alive'",
    )
    .bind(worker_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Cleanup: live workers whose heartbeat is older than their `stale_after`
/// become `dead`. Returns their ids.
pub async fn mark_stale_dead(db: impl PgExecutor<'_>) -> Result<Vec<i64>, DbError> {
    let ids = sqlx::query_scalar(
        "UPDATE workers SET status = 'dead', ended_at = now()
          WHERE status = 'alive' AND last_heartbeat < now() - stale_after
      RETURNING id",
    )
    .fetch_all(db)
    .await?;
    Ok(ids)
}

/// Cleanup: stopped and dead workers that ended before `older_than` go.
pub async fn purge_ended(db: impl PgExecutor<'_>, older_than: Duration) -> Result<u64, DbError> {
    let done = sqlx::query(
        "DELETE FROM workers
          WHERE status <> 'alive' AND ended_at < now() - make_interval(secs => $1)
            AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.worker_id = workers.id)",
    )
    .bind(older_than.as_secs_f64())
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// One worker as `worker status` shows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct WorkerRow {
    pub id: i64,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub status: WorkerStatus,
    pub slots: i32,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    /// Seconds since the last heartbeat, by the database's clock.
    pub heartbeat_age: f64,
    /// Seconds since its completer last wrote outcomes (as of its last beat).
    pub last_write_age: Option<f64>,
    /// Seconds its oldest finished slot has waited for its write.
    pub unwritten_age: Option<f64>,
    pub tasks_completed: i64,
    pub tasks_failed: i64,
}

/// Live workers and those that ended within the last day, newest first.
pub async fn list_recent(db: impl PgExecutor<'_>) -> Result<Vec<WorkerRow>, DbError> {
    let rows = sqlx::query_as(
        "SELECT id, name, status, slots, started_at, last_heartbeat,
                extract(epoch FROM now() - last_heartbeat)::float8 AS heartbeat_age,
                extract(epoch FROM now() - last_write_at)::float8 AS last_write_age,
                extract(epoch FROM now() - unwritten_since)::float8 AS unwritten_age,
                tasks_completed, tasks_failed
           FROM workers
          WHERE status = 'alive' OR ended_at > now() - interval '1 day'
          ORDER BY id DESC",
    )
    .fetch_all(db)
    .await?;
    Ok(rows)
}
