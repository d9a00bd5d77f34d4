//! A worker's claim: tasks and the proxies to fetch them through, taken
//! together. `tasks::acquire_task` and `proxies::acquire_proxy` take one
//! table each; the worker's hot path uses `claim_pairs`, which takes both in
//! a single statement, so a claim costs one round trip and one commit.

use sqlx::PgExecutor;

use crate::error::DbError;
use crate::proxies::ClaimedProxy;
use crate::tasks::ClaimedTask;

#[derive(sqlx::FromRow)]
struct PairRow {
    #[sqlx(flatten)]
    task: ClaimedTask,
    proxy_id: i64,
    proxy_url: String,
    proxy_lease: i64,
}

/// Claims up to `limit` (task, proxy) pairs for `worker_id`: as many as
/// there are both free proxies and due tasks of `kinds`, each lease bumped.
/// Rows other claimers are locking are skipped. Autocommit: the claim is
/// durable when this returns.
pub async fn claim_pairs(
    db: impl PgExecutor<'_>,
    worker_id: i64,
    limit: i64,
    kinds: &[&str],
) -> Result<Vec<(ClaimedTask, ClaimedProxy)>, DbError> {
    let rows: Vec<PairRow> = sqlx::query_as(include_str!("claims_pairs.sql"))
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
