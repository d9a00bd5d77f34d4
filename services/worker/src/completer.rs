//! The completer: writes what the slots finished, many claims per
//! transaction (group commit), so a task costs a fraction of a transaction.
//! Every write is fenced by the claim's lease; a claim that was taken away
//! (cleanup declared this worker dead) is dropped and logged, never counted.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use db::claims::{Finished, Flush};
use db::results::NewResult;
use db::tasks::{Lease, RetryRule};
use db::workers::WorkerStats;
use db::PgPool;
use settings::WorkerSettings;
use tokio::sync::mpsc::{Receiver, UnboundedReceiver};
use tokio::sync::{Notify, OwnedSemaphorePermit};

use crate::guard::{ClaimGuard, Orphan};
use crate::outcome::Outcome;

/// A finished slot: the claim, how the fetch ended, and the slot itself
/// (its permit), which frees when the outcome is written.
pub struct Done {
    pub worker_id: i64,
    pub task: db::tasks::ClaimedTask,
    pub proxy: Lease,
    pub outcome: Outcome,
    pub guard: ClaimGuard,
    pub permit: OwnedSemaphorePermit,
}

pub struct Completer {
    pub pool: PgPool,
    pub settings: WorkerSettings,
    pub done: Receiver<Done>,
    pub orphans: UnboundedReceiver<Orphan>,
    /// Signalled after every write: proxies and slots may be free again.
    pub wake: std::sync::Arc<Notify>,
}

impl Completer {
    /// Runs until every sender of `done` is gone and everything is written.
    pub async fn run(mut self) {
        let max = self.settings.completion_batch as usize;
        loop {
            let mut batch = Vec::new();
            let mut orphans = Vec::new();
            tokio::select! {
                next = self.done.recv() => match next {
                    Some(done) => batch.push(done),
                    None => {
                        while let Ok(o) = self.orphans.try_recv() { orphans.push(o); }
                        if !orphans.is_empty() { self.write_until_done(Vec::new(), orphans).await; }
                        return;
                    }
                },
                Some(orphan) = self.orphans.recv() => orphans.push(orphan),
            }
            while batch.len() < max {
                match self.done.try_recv() {
                    Ok(done) => batch.push(done),
                    Err(_) => break,
                }
            }
            while let Ok(o) = self.orphans.try_recv() {
                orphans.push(o);
            }
            self.write_until_done(batch, orphans).await;
        }
    }

    /// Writes a batch, retrying while the database is away (restarts): the
    /// claims stay held meanwhile, and their leases still fence the write.
    async fn write_until_done(&self, batch: Vec<Done>, orphans: Vec<Orphan>) {
        let mut delay = Duration::from_millis(100);
        loop {
            match write(&self.pool, &self.settings, &batch, &orphans).await {
                Ok(()) => break,
                Err(err) => {
                    tracing::warn!(
                        "Failed to write {} finished task(s), retrying in {delay:?}: {err:#}",
                        batch.len() + orphans.len()
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        for done in batch {
            done.guard.disarm();
            drop(done.permit);
        }
        self.wake.notify_one();
    }
}

/// One transaction for a batch of finished claims and orphans. The common
/// batch (pages and 404s of `fetch_url` tasks) is a single autocommitted
/// statement; retries, failures, blocks, page data and listing refreshes
/// add theirs to the same transaction.
async fn write(
    pool: &PgPool,
    settings: &WorkerSettings,
    batch: &[Done],
    orphans: &[Orphan],
) -> anyhow::Result<()> {
    let mut stats: HashMap<i64, WorkerStats> = HashMap::new();
    let mut results = Vec::new();
    let mut pages = Vec::new();
    let mut not_found = Vec::new();
    let mut retry: (Vec<Lease>, Vec<String>) = Default::default();
    let mut attempts: (Vec<Lease>, Vec<String>) = Default::default();
    let mut rejected: (Vec<Lease>, Vec<String>) = Default::default();
    let mut release = Vec::new();
    let mut block = Vec::new();
    for o in orphans {
        retry.0.push(o.task);
        retry
            .1
            .push("handed back: its slot ended without an outcome".into());
        release.push(o.proxy);
    }
    for d in batch {
        let lease = Lease {
            id: d.task.id,
            lease: d.task.lease,
            worker_id: d.worker_id,
        };
        match &d.outcome {
            Outcome::Fetched {
                status,
                headers,
                body,
                truncated,
                extras,
                ..
            } => {
                if !extras.is_empty() {
                    pages.push(extras.to_page_data(d.task.id, d.task.lease));
                }
                results.push(NewResult {
                    task_id: d.task.id,
                    lease: d.task.lease,
                    worker_id: d.worker_id,
                    status_code: i32::from(*status),
                    headers: headers.clone(),
                    body: body.clone(),
                    body_truncated: *truncated,
                });
                release.push(d.proxy);
            }
            Outcome::NotFound => {
                not_found.push(lease);
                release.push(d.proxy);
            }
            Outcome::Blocked { reason } => {
                retry.0.push(lease);
                retry.1.push(reason.clone());
                block.push(d.proxy);
                let s = stats.entry(d.worker_id).or_default();
                s.proxies_blocked += 1;
                s.retried += 1;
            }
            Outcome::Transient { error } => {
                attempts.0.push(lease);
                attempts.1.push(error.clone());
                release.push(d.proxy);
            }
            Outcome::Rejected { error } => {
                rejected.0.push(lease);
                rejected.1.push(error.clone());
                release.push(d.proxy);
            }
        }
    }

    let common_only = pages.is_empty()
        && retry.0.is_empty()
        && attempts.0.is_empty()
        && rejected.0.is_empty()
        && block.is_empty()
        && !batch.iter().any(|d| d.task.kind == "offer_refresh");
    // Without waiting for the WAL flush, as claims: the claims this batch
    // finishes stay fenced by their leases, and a Postgres crash that loses
    // the batch leaves them running under this live worker, whose reconcile
    // hands them back (fetched again; results are saved once). Postgres'
    // WAL writer flushes within wal_writer_delay (200 ms) anyway.
    if common_only {
        let mut conn = pool
            .acquire()
            .await
            .context("connect to write completions")?;
        let finished =
            db::claims::finish_claims(&mut conn, &results, &not_found, &release, Flush::DontWait)
                .await?;
        log_taken_away(batch, &finished, &[], &[]);
        return Ok(());
    }
    let mut tx = pool
        .begin_with("BEGIN; SET LOCAL synchronous_commit = off")
        .await
        .context("begin completion transaction")?;
    let finished =
        db::claims::finish_claims(&mut tx, &results, &not_found, &release, Flush::DontWait).await?;
    // Page data goes only to the results this batch saved: a result row of
    // the same task and lease number may be another worker's (see `Lease`).
    pages.retain(|p| finished.fetched.contains(&p.task_id));
    db::results::save_page_data(&mut tx, &pages).await?;
    crate::refresh::write(&mut tx, batch, &finished.fetched, &finished.gone).await?;
    let retried = db::tasks::retry_elsewhere(&mut tx, &retry.0, &retry.1).await?;
    let rule = RetryRule {
        max_attempts: i32::try_from(settings.max_attempts).unwrap_or(5),
        backoff: settings.retry_backoff,
        backoff_max: settings.retry_backoff_max,
    };
    let failed_tries =
        db::tasks::increment_task_attempts(&mut tx, &attempts.0, &attempts.1, rule).await?;
    let fail_now = RetryRule {
        max_attempts: 1,
        ..rule
    };
    let refused =
        db::tasks::increment_task_attempts(&mut tx, &rejected.0, &rejected.1, fail_now).await?;
    db::proxies::mark_proxy_blocked(&mut tx, &block, settings.proxy_cooldown).await?;

    let failed_or_retried: Vec<&(i64, String)> = failed_tries.iter().chain(&refused).collect();
    log_taken_away(batch, &finished, &retried, &failed_or_retried);
    for (id, status) in failed_or_retried {
        if let Some(d) = batch.iter().find(|d| d.task.id == *id) {
            let s = stats.entry(d.worker_id).or_default();
            if status == "failed" {
                s.failed += 1;
                tracing::warn!(
                    "Task {id} ({}) failed for good: {}",
                    d.task.target,
                    error_of(&d.outcome)
                );
            } else {
                s.retried += 1;
            }
        }
    }
    // Completions were counted by `finish_claims`.
    for (worker_id, s) in stats {
        if !s.is_empty() {
            db::workers::increment_worker_stats(&mut *tx, worker_id, s).await?;
        }
    }
    tx.commit().await.context("commit completion transaction")?;
    Ok(())
}

/// Logs the claims of `batch` whose outcome no write accepted: their lease
/// was taken away.
fn log_taken_away(
    batch: &[Done],
    finished: &Finished,
    retried: &[i64],
    failed_or_retried: &[&(i64, String)],
) {
    let accepted: HashSet<i64> = finished
        .fetched
        .iter()
        .chain(&finished.gone)
        .chain(retried)
        .copied()
        .chain(failed_or_retried.iter().map(|(id, _)| *id))
        .collect();
    for d in batch.iter().filter(|d| !accepted.contains(&d.task.id)) {
        tracing::warn!(
            "Task {} ({} {}): lease {} was taken away (this worker was declared dead?); its outcome is dropped",
            d.task.id, d.task.kind, d.task.target, d.task.lease
        );
    }
}

fn error_of(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Transient { error } | Outcome::Rejected { error } => error,
        _ => "",
    }
}
