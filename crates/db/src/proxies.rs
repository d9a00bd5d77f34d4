//! `proxies`: the fleet's outbound addresses, `free | in_use | blocked |
//! cooldown`. Claimed like tasks (`FOR UPDATE SKIP LOCKED`, a lease per
//! claim); a release or block quoting a lease that was taken away changes
//! nothing. `url` holds the credentials: show it only through
//! `domain::fleet::ProxyUrl` (or `redact_line`), which masks them.

use std::time::Duration;

use domain::fleet::ProxyStatus;
use sqlx::{PgConnection, PgExecutor};

use crate::tasks::Lease;
use crate::DbError;

/// Status words operators and scripts read.
pub const STATUSES: [&str; 4] = [
    ProxyStatus::Free.as_str(),
    ProxyStatus::InUse.as_str(),
    ProxyStatus::Blocked.as_str(),
    ProxyStatus::Cooldown.as_str(),
];

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

/// Cools claimed proxies down: each failed itself (`reasons`: a 407, an
/// unreachable proxy, a failed CONNECT). It rests `base` doubled for each
/// fault in a row before this one, at most `cap`; a good answer resets the
/// count (`claims::finish_claims`). Returns how many leases were current.
pub async fn cool_down(
    conn: &mut PgConnection,
    leases: &[Lease],
    reasons: &[String],
    base: Duration,
    cap: Duration,
) -> Result<u64, DbError> {
    if leases.is_empty() {
        return Ok(0);
    }
    let (ids, numbers, workers) = crate::tasks::split(leases);
    let done = sqlx::query(
        "UPDATE proxies AS p
            SET status = 'cooldown', worker_id = NULL, faults = p.faults + 1,
                total_faults = p.total_faults + 1, last_fault = c.reason,
                blocked_until = now() + make_interval(secs => least($6, $5 * power(2, least(p.faults, 30))))
           FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[]) AS c(id, lease, worker_id, reason)
          WHERE p.id = c.id AND p.lease = c.lease AND p.worker_id = c.worker_id
            AND p.status = 'in_use'",
    )
    .bind(ids)
    .bind(numbers)
    .bind(workers)
    .bind(reasons)
    .bind(base.as_secs_f64())
    .bind(cap.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A proxy resting (blocked by a site, or cooling down after its own
/// faults), as `worker status` shows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Resting {
    pub id: i64,
    /// As stored, credentials included: mask it before showing it.
    pub url: String,
    #[sqlx(try_from = "String")]
    pub status: ProxyStatus,
    /// Faults in a row (what the next cooldown doubles from).
    pub faults: i32,
    pub total_faults: i64,
    pub blocks: i64,
    pub seconds_left: f64,
    pub last_fault: Option<String>,
}

/// Resting proxies, the longest rest first (at most `limit`).
pub async fn resting(db: impl PgExecutor<'_>, limit: i64) -> Result<Vec<Resting>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, url, status, faults, total_faults, blocks,
                greatest(0, extract(epoch FROM blocked_until - now()))::float8 AS seconds_left,
                last_fault
           FROM proxies WHERE status IN ('blocked', 'cooldown')
          ORDER BY blocked_until DESC NULLS LAST, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await?)
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

/// Cleanup: blocked and cooling proxies whose time is up are free again.
pub async fn unblock_expired(db: impl PgExecutor<'_>) -> Result<u64, DbError> {
    let done = sqlx::query(
        "UPDATE proxies SET status = 'free', blocked_until = NULL
          WHERE status IN ('blocked', 'cooldown') AND blocked_until <= now()",
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
