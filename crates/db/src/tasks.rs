//! `tasks`: what the worker fleet fetches. A claim (`claims::claim_pairs`)
//! flips pending rows to running with `FOR UPDATE SKIP LOCKED`, names the
//! worker and bumps the lease; every later write about the claim is fenced
//! by that lease, so a claim cleanup took away writes nothing (see the
//! migration).

use std::time::Duration;

use domain::fleet::{TaskKind, TaskStatus};
use sqlx::{PgConnection, PgExecutor};

use crate::DbError;

/// Status words operators and scripts read.
pub const STATUSES: [&str; 4] = [
    TaskStatus::Pending.as_str(),
    TaskStatus::Running.as_str(),
    TaskStatus::Completed.as_str(),
    TaskStatus::Failed.as_str(),
];
/// Task kinds: `offer_refresh` (target: an inner_id), `fetch_url` (a URL),
/// `render_url` (a URL rendered by a browser worker, migration 0010).
pub const KINDS: [&str; 3] = [
    TaskKind::OfferRefresh.as_str(),
    TaskKind::FetchUrl.as_str(),
    TaskKind::RenderUrl.as_str(),
];

/// One claimed task, with the lease every later write must quote.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClaimedTask {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub kind: TaskKind,
    pub target: String,
    pub lease: i64,
    pub attempts: i32,
    /// `{"wait_for", "extract", "screenshot"}` (migration 0010); `{}` if none.
    pub params: serde_json::Value,
}

/// A claim as quoted by a later write: the row (task or proxy), its lease
/// number and the worker that claimed it. A write lands only while all
/// three still match the row. Claims commit without waiting for their WAL
/// flush, so a Postgres crash can forget one whose reply its worker already
/// had; the next claim's lease comes from the clock (`next_lease`, migration
/// 0011) and is above the forgotten one. The worker in the fence still
/// keeps another worker out should the database's clock step back across
/// such a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub id: i64,
    pub lease: i64,
    pub worker_id: i64,
}

/// Stores new tasks; a (kind, target) already stored is skipped. Returns how
/// many were new.
pub async fn insert(
    db: impl PgExecutor<'_>,
    kind: TaskKind,
    targets: &[String],
) -> Result<u64, DbError> {
    let done = sqlx::query(
        "INSERT INTO tasks (kind, target)
         SELECT $1, t FROM UNNEST($2::text[]) AS t
         ON CONFLICT (kind, target) DO NOTHING",
    )
    .bind(kind.as_str())
    .bind(targets)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Refreshes the planner's statistics of `tasks`, after an upload. Claims
/// walk `tasks_pending_idx` in (run_after, id) order and stop after a few
/// rows; a table the planner last saw empty (never analysed, as after the
/// first upload, or emptied since) makes it read and sort every pending
/// task instead (a bitmap scan), about 1 ms per claim at 5,000 tasks, growing
/// with the queue. Autovacuum would analyse it too, but only a minute or
/// more later, while the workers start claiming at once.
pub async fn refresh_planner_stats(db: impl PgExecutor<'_>) -> Result<(), DbError> {
    sqlx::query("ANALYZE tasks").execute(db).await?;
    Ok(())
}

/// Stores new tasks with their parameters (`params[i]` goes with
/// `targets[i]`); a (kind, target) already stored is skipped. Returns how
/// many were new.
pub async fn insert_with_params(
    db: impl PgExecutor<'_>,
    kind: TaskKind,
    targets: &[String],
    params: &[serde_json::Value],
) -> Result<u64, DbError> {
    let done = sqlx::query(
        "INSERT INTO tasks (kind, target, params)
         SELECT $1, t, p FROM UNNEST($2::text[], $3::jsonb[]) AS u(t, p)
         ON CONFLICT (kind, target) DO NOTHING",
    )
    .bind(kind.as_str())
    .bind(targets)
    .bind(params)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// `leases` as the columns the fencing statements unnest: ids, lease
/// numbers, workers.
pub(crate) fn split(leases: &[Lease]) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    let mut columns: (Vec<i64>, Vec<i64>, Vec<i64>) = Default::default();
    for l in leases {
        columns.0.push(l.id);
        columns.1.push(l.lease);
        columns.2.push(l.worker_id);
    }
    columns
}

/// How a task's retries are spaced and bounded.
#[derive(Debug, Clone, Copy)]
pub struct RetryRule {
    pub max_attempts: i32,
    pub backoff: Duration,
    pub backoff_max: Duration,
}

/// Rows of (id, status word) as (id, status).
fn with_status(rows: Vec<(i64, String)>) -> Result<Vec<(i64, TaskStatus)>, DbError> {
    rows.into_iter()
        .map(|(id, word)| {
            let status = word
                .parse()
                .map_err(|e| DbError::Sqlx(sqlx::Error::Decode(Box::new(e))))?;
            Ok((id, status))
        })
        .collect()
}

/// Counts one failed try (5xx, timeout) against each claim: the task goes
/// back to pending after a backoff, or to `failed` with its last error once
/// `max_attempts` tries failed. Returns (id, new status) for current leases.
pub async fn increment_task_attempts(
    conn: &mut PgConnection,
    leases: &[Lease],
    errors: &[String],
    rule: RetryRule,
) -> Result<Vec<(i64, TaskStatus)>, DbError> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, numbers, workers) = split(leases);
    let rows = sqlx::query_as(include_str!("tasks_attempt.sql"))
        .bind(ids)
        .bind(numbers)
        .bind(workers)
        .bind(errors)
        .bind(rule.max_attempts)
        .bind(rule.backoff.as_secs_f64())
        .bind(rule.backoff_max.as_secs_f64())
        .fetch_all(conn)
        .await?;
    with_status(rows)
}

/// A site refused a claim's proxy (`proxy_id`; `reason`: the status or
/// block page). The proxy joins the task's `blocked_by`; the task goes back
/// to pending at once, without an attempt, until `max_blocks` distinct
/// proxies blocked it: then it fails, "blocked by N proxies". Returns (id,
/// new status) for current leases.
pub async fn block(
    conn: &mut PgConnection,
    leases: &[Lease],
    proxy_ids: &[i64],
    reasons: &[String],
    max_blocks: i32,
) -> Result<Vec<(i64, TaskStatus)>, DbError> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, numbers, workers) = split(leases);
    let rows = sqlx::query_as(include_str!("tasks_block.sql"))
        .bind(ids)
        .bind(numbers)
        .bind(workers)
        .bind(proxy_ids)
        .bind(reasons)
        .bind(max_blocks)
        .fetch_all(conn)
        .await?;
    with_status(rows)
}

/// A claim's proxy failed itself (`reasons`): the task goes back to pending
/// at once, without an attempt, for another proxy; after `max_rotations`
/// such returns it fails. Returns (id, new status) for current leases.
pub async fn rotate(
    conn: &mut PgConnection,
    leases: &[Lease],
    reasons: &[String],
    max_rotations: i32,
) -> Result<Vec<(i64, TaskStatus)>, DbError> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, numbers, workers) = split(leases);
    let rows = sqlx::query_as(
        "UPDATE tasks AS t
            SET rotations = t.rotations + 1, worker_id = NULL, run_after = now(),
                status = CASE WHEN t.rotations + 1 >= $5 THEN 'failed' ELSE 'pending' END,
                finished_at = CASE WHEN t.rotations + 1 >= $5 THEN now() END,
                last_error = CASE WHEN t.rotations + 1 >= $5
                                  THEN 'sent back by ' || (t.rotations + 1) || ' proxy faults (last: ' || c.reason || ')'
                                  ELSE c.reason END
           FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[])
                AS c(id, lease, worker_id, reason)
          WHERE t.id = c.id AND t.lease = c.lease AND t.worker_id = c.worker_id
            AND t.status = 'running'
      RETURNING t.id, t.status",
    )
    .bind(ids)
    .bind(numbers)
    .bind(workers)
    .bind(reasons)
    .bind(max_rotations)
    .fetch_all(conn)
    .await?;
    with_status(rows)
}

/// Puts claims back to pending at once without counting a try (the proxy
/// was blocked, so the task is retried on another). Returns current leases.
pub async fn retry_elsewhere(
    conn: &mut PgConnection,
    leases: &[Lease],
    reasons: &[String],
) -> Result<Vec<i64>, DbError> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, numbers, workers) = split(leases);
    let done = sqlx::query_scalar(
        "UPDATE tasks AS t
            SET status = 'pending', worker_id = NULL, run_after = now(), last_error = c.reason
           FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[])
                AS c(id, lease, worker_id, reason)
          WHERE t.id = c.id AND t.lease = c.lease AND t.worker_id = c.worker_id
            AND t.status = 'running'
      RETURNING t.id",
    )
    .bind(ids)
    .bind(numbers)
    .bind(workers)
    .bind(reasons)
    .fetch_all(conn)
    .await?;
    Ok(done)
}

/// Every task `worker_id` still runs, except the ids in `keep`, goes back to
/// pending now, with its lease bumped so a straggling write from it cannot
/// land. Shutdown keeps none; a live worker keeps the claims its slots hold
/// (the others are claims whose commit reply was lost). A task keeps its
/// `run_after` (already passed), so it keeps its place in the queue.
pub async fn hand_back(
    db: impl PgExecutor<'_>,
    worker_id: i64,
    keep: &[i64],
) -> Result<u64, DbError> {
    let done = sqlx::query(
        "UPDATE tasks SET status = 'pending', worker_id = NULL, lease = lease + 1
          WHERE status = 'running' AND worker_id = $1 AND id <> ALL($2)",
    )
    .bind(worker_id)
    .bind(keep)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Cleanup: running tasks whose worker is no longer alive go back to
/// pending with their lease bumped (the dead holder's writes are void). They
/// keep their `run_after`, so they are claimed before newer tasks instead of
/// waiting behind the whole queue.
pub async fn rescue_from_dead(db: impl PgExecutor<'_>) -> Result<u64, DbError> {
    let done = sqlx::query(
        "UPDATE tasks AS t
            SET status = 'pending', worker_id = NULL, lease = t.lease + 1,
                last_error = 'reclaimed from dead worker ' || w.id
           FROM workers AS w
          WHERE t.status = 'running' AND t.worker_id = w.id AND w.status <> 'alive'",
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Cleanup: deletes up to `batch` finished tasks older than `older_than`,
/// with their results (queue tables bloat otherwise, and results are kept
/// as long as their tasks). Returns how many tasks; call until below batch.
pub async fn purge_finished(
    db: impl PgExecutor<'_>,
    older_than: Duration,
    batch: i64,
) -> Result<u64, DbError> {
    let purged: i64 = sqlx::query_scalar(
        "WITH gone AS (
            DELETE FROM tasks WHERE id IN (
                SELECT id FROM tasks
                 WHERE status IN ('completed', 'failed')
                   AND finished_at < now() - make_interval(secs => $1)
                 LIMIT $2)
            RETURNING id
         ),
         results_gone AS (
            DELETE FROM results WHERE task_id IN (SELECT id FROM gone)
         )
         SELECT count(*) FROM gone",
    )
    .bind(older_than.as_secs_f64())
    .bind(batch)
    .fetch_one(db)
    .await?;
    Ok(purged as u64)
}

/// Task count per status word (every status listed, zero included).
pub async fn count_by_status(db: impl PgExecutor<'_>) -> Result<Vec<(String, i64)>, DbError> {
    let rows = sqlx::query_as(
        "SELECT s, count(t.id) FROM UNNEST($1::text[]) WITH ORDINALITY AS u(s, n)
           LEFT JOIN tasks t ON t.status = u.s GROUP BY s, n ORDER BY n",
    )
    .bind(&STATUSES[..])
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// Tasks finished (completed, failed) within the last hour.
pub async fn finished_last_hour(db: impl PgExecutor<'_>) -> Result<(i64, i64), DbError> {
    let row = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed')
           FROM tasks
          WHERE status IN ('completed', 'failed') AND finished_at > now() - interval '1 hour'",
    )
    .fetch_one(db)
    .await?;
    Ok(row)
}
