//! A worker's claim: tasks and the proxies to fetch them through, taken
//! together. `claim_pairs` takes both in a single statement, so a claim
//! costs one round trip and one commit; `finish_claims` ends the common
//! outcomes of claims (and frees proxies) in one statement too. This is the
//! only claim path.

use domain::fleet::TaskKind;
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};

use crate::error::DbError;
use crate::proxies::ClaimedProxy;
use crate::results::NewResult;
use crate::tasks::{ClaimedTask, Lease};

#[derive(sqlx::FromRow)]
struct PairRow {
    #[sqlx(flatten)]
    task: ClaimedTask,
    proxy_id: i64,
    proxy_url: String,
    proxy_lease: i64,
}

/// The claim statement ($1 worker, $2 most pairs, $3 kinds), for `EXPLAIN`.
pub const CLAIM_PAIRS_SQL: &str = include_str!("claims_pairs.sql");

/// Claims up to `limit` (task, proxy) pairs for `worker_id`: as many as
/// there are both free proxies and due tasks of `kinds`, each lease bumped.
/// Rows other claimers are locking are skipped. Autocommit: the claim is
/// durable when this returns.
pub async fn claim_pairs(
    db: impl PgExecutor<'_>,
    worker_id: i64,
    limit: i64,
    kinds: &[TaskKind],
) -> Result<Vec<(ClaimedTask, ClaimedProxy)>, DbError> {
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let rows: Vec<PairRow> = sqlx::query_as(CLAIM_PAIRS_SQL)
        .bind(worker_id)
        .bind(limit)
        .bind(kinds)
        .fetch_all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let proxy = ClaimedProxy {
                id: r.proxy_id,
                url: r.proxy_url,
                lease: r.proxy_lease,
            };
            (r.task, proxy)
        })
        .collect())
}

/// What `finish_claims` completed (ids whose lease still held).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finished {
    /// Completed `ok`, each with its result saved.
    pub fetched: Vec<i64>,
    /// Completed `not_found`.
    pub gone: Vec<i64>,
}

/// The content columns of saved pages: headers, bodies, truncated flags.
type Content<'a> = (Vec<&'a Value>, Vec<Option<&'a [u8]>>, Vec<bool>);

/// The common end of claims, in one statement: tasks that gave a page
/// (`fetched`, with their results) or a 404 (`not_found`) are completed
/// while their lease holds, and only those get their result saved; the
/// proxies in `release` are freed under their leases; each worker's
/// completed count goes up. Other outcomes (retries, failures, blocks) have
/// their own functions in `tasks` and `proxies`. It commits as the
/// caller's transaction or session says (`crate::commit`).
pub async fn finish_claims(
    conn: &mut PgConnection,
    fetched: &[NewResult],
    not_found: &[Lease],
    release: &[Lease],
) -> Result<Finished, DbError> {
    if fetched.is_empty() && not_found.is_empty() && release.is_empty() {
        return Ok(Finished::default());
    }
    let mut page: (Vec<i64>, Vec<i64>, Vec<i64>, Vec<i32>) = Default::default();
    let mut content: Content<'_> = Default::default();
    for r in fetched {
        page.0.push(r.task_id);
        page.1.push(r.lease);
        page.2.push(r.worker_id);
        page.3.push(r.status_code);
        content.0.push(&r.headers);
        content.1.push(r.body.as_deref());
        content.2.push(r.body_truncated);
    }
    let gone = crate::tasks::split(not_found);
    let proxies = crate::tasks::split(release);
    let (fetched, gone): (Vec<i64>, Vec<i64>) = sqlx::query_as(include_str!("claims_finish.sql"))
        .bind(page.0)
        .bind(page.1)
        .bind(page.2)
        .bind(page.3)
        .bind(content.0)
        .bind(content.1)
        .bind(content.2)
        .bind(gone.0)
        .bind(gone.1)
        .bind(gone.2)
        .bind(proxies.0)
        .bind(proxies.1)
        .bind(proxies.2)
        .fetch_one(conn)
        .await?;
    Ok(Finished { fetched, gone })
}
