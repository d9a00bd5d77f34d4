//! `proxies`: the fleet's outbound addresses, `free | in_use | blocked`.
//! Claimed like tasks (`FOR UPDATE SKIP LOCKED`, a lease per claim); a
//! release or block quoting a lease that was taken away changes nothing.

use std::time::Duration;

use sqlx::{PgConnection, PgExecutor};

use crate::tasks::Lease;
use crate::DbError;

/// Status words operators and scripts read.
pub const STATUSES: [&str; 3] = ["free", "in_use", "blocked"];

/// One claimed proxy: its URL (`scheme://[user:pass@]host:port`) and lease.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClaimedProxy {
    pub id: i64,
    pub url: String,
    pub lease: i64,
}

/// Stores new proxies; a URL already stored is skipped. Returns how many
/// were new.
pub async fn insert(db: impl PgExecutor<'_>, urls: &[String]) -> Result<u64, DbError> {
    let done = sqlx::query(
        "INSERT INTO proxies (url) SELECT u FROM UNNEST($1::text[]) AS u
         ON CONFLICT (url) DO NOTHING",
    )
    .bind(urls)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Claims up to `limit` free proxies for `worker_id`, least recently used
/// first, in one statement.
pub async fn acquire_proxy(
    conn: &mut PgConnection,
    worker_id: i64,
    limit: i64,
) -> Result<Vec<ClaimedProxy>, DbError> {
    let rows = sqlx::query_as(
        "WITH picked AS (
            SELECT id FROM proxies WHERE status = 'free'
             ORDER BY last_used_at NULLS FIRST, id
             LIMIT $2
               FOR UPDATE SKIP LOCKED)
         UPDATE proxies AS p
            SET status = 'in_use', worker_id = $1, lease = next_lease(p.lease),
                last_used_at = now(), uses = p.uses + 1
           FROM picked WHERE p.id = picked.id
         RETURNING p.id, p.url, p.lease",
    )
    .bind(worker_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows)
}

/// Frees claimed proxies. Returns how many leases were still current.
pub async fn release_proxy(conn: &mut PgConnection, leases: &[Lease]) -> Result<u64, DbError> {
    if leases.is_empty() {
        return Ok(0);
    }
    let (ids, numbers, workers) = crate::tasks::split(leases);
    let done = sqlx::query(
        "UPDATE proxies AS p SET status = 'free', worker_id = NULL
           FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) AS c(id, lease, worker_id)
          WHERE p.id = c.id AND p.lease = c.lease AND p.worker_id = c.worker_id
            AND p.status = 'in_use'",
    )
    .bind(ids)
    .bind(numbers)
    .bind(workers)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Blocks claimed proxies for `cooldown` (the site answered 403, 429 or a
/// captcha through them). Returns how many leases were still current.
pub async fn mark_proxy_blocked(
    conn: &mut PgConnection,
    leases: &[Lease],
    cooldown: Duration,
) -> Result<u64, DbError> {
    if leases.is_empty() {
        return Ok(0);
    }
    let (ids, numbers, workers) = crate::tasks::split(leases);
    let done = sqlx::query(
        "UPDATE proxies AS p
            SET status = 'blocked', worker_id = NULL, blocks = p.blocks + 1,
                blocked_until = now() + make_interval(secs => $4)
           FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) AS c(id, lease, worker_id)
          WHERE p.id = c.id AND p.lease = c.lease AND p.worker_id = c.worker_id
            AND p.status = 'in_use'",
    )
    .bind(ids)
    .bind(numbers)
    .bind(workers)
    .bind(cooldown.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Every proxy `worker_id` holds, except the ids in `keep`, is free again,
/// lease bumped (see `tasks::hand_back`).
pub async fn hand_back(
    db: impl PgExecutor<'_>,
    worker_id: i64,
    keep: &[i64],
) -> Result<u64, DbError> {
    let done = sqlx::query(
        "UPDATE proxies SET status = 'free', worker_id = NULL, lease = lease + 1
          WHERE status = 'in_use' AND worker_id = $1 AND id <> ALL($2)",
    )
    .bind(worker_id)
    .bind(keep)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Cleanup: proxies held by workers that are no longer alive are free again
/// (lease bumped, so the dead holder's release is void).
pub async fn free_from_dead(db: impl PgExecutor<'_>) -> Result<u64, DbError> {
    let done = sqlx::query(
        "UPDATE proxies AS p SET status = 'free', worker_id = NULL, lease = p.lease + 1
           FROM workers AS w
          WHERE p.status = 'in_use' AND p.worker_id = w.id AND w.status <> 'alive'",
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Cleanup: blocked proxies whose cooldown has passed are free again.
pub async fn unblock_expired(db: impl PgExecutor<'_>) -> Result<u64, DbError> {
    let done = sqlx::query(
        "UPDATE proxies SET status = 'free', blocked_until = NULL
          WHERE status = 'blocked' AND blocked_until <= now()",
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Proxy count per status word (every status listed, zero included).
pub async fn count_by_status(db: impl PgExecutor<'_>) -> Result<Vec<(String, i64)>, DbError> {
    let rows = sqlx::query_as(
        "SELECT s, count(p.id) FROM UNNEST($1::text[]) WITH ORDINALITY AS u(s, n)
           LEFT JOIN proxies p ON p.status = u.s GROUP BY s, n ORDER BY n",
    )
    .bind(&STATUSES[..])
    .fetch_all(db)
    .await?;
    Ok(rows)
}
