//! The completer: writes what the slots finished, many claims per
//! transaction (group commit), so a task costs a fraction of a transaction.
//! Every write is fenced by the claim's lease; a claim that was taken away
//! (cleanup declared this worker dead) is dropped and logged, never counted.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
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

/// One transaction for a batch of finished claims and orphans.
async fn write(
    pool: &PgPool,
    settings: &WorkerSettings,
    batch: &[Done],
    orphans: &[Orphan],
) -> anyhow::Result<()> {
    // Without waiting for the WAL flush: the claims this batch finishes stay
    // fenced by their leases, and a Postgres crash that loses the batch leaves
    // them running under this live worker, whose reconcile hands them back
    // (fetched again; results are saved once). The next claim's commit
    // flushes this batch anyway, so it costs the fleet one fsync, not two.
    let mut tx = pool
        .begin_with("BEGIN; SET LOCAL synchronous_commit = off")
        .await
        .context("begin completion transaction")?;
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
        };
        let s = stats.entry(d.worker_id).or_default();
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

    // Results first: their fence needs the task still running.
    let saved = db::results::save_result(&mut tx, &results).await?;
    db::results::save_page_data(&mut tx, &pages).await?;
    let fetched: Vec<Lease> = results
        .iter()
        .filter(|r| saved.contains(&r.task_id))
        .map(|r| Lease {
            id: r.task_id,
            lease: r.lease,
        })
        .collect();
    let completed =
        db::tasks::mark_task_completed(&mut tx, &fetched, &vec!["ok"; fetched.len()]).await?;
    let gone =
        db::tasks::mark_task_completed(&mut tx, &not_found, &vec!["not_found"; not_found.len()])
            .await?;
    crate::refresh::write(&mut tx, batch, &completed, &gone).await?;
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
    db::proxies::release_proxy(&mut tx, &release).await?;
    db::proxies::mark_proxy_blocked(&mut tx, &block, settings.proxy_cooldown).await?;

    let accepted: std::collections::HashSet<i64> = completed
        .iter()
        .chain(&gone)
        .copied()
        .chain(retried.iter().copied())
        .chain(failed_tries.iter().chain(&refused).map(|(id, _)| *id))
        .collect();
    for d in batch {
        let s = stats.entry(d.worker_id).or_default();
        if !accepted.contains(&d.task.id) {
            tracing::warn!(
                "Task {} ({} {}): lease {} was taken away (this worker was declared dead?); its outcome is dropped",
                d.task.id, d.task.kind, d.task.target, d.task.lease
            );
        } else if completed.contains(&d.task.id) || gone.contains(&d.task.id) {
            s.completed += 1;
        }
    }
    for (id, status) in failed_tries.iter().chain(&refused) {
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
    for (worker_id, s) in stats {
        if !s.is_empty() {
            db::workers::increment_worker_stats(&mut *tx, worker_id, s).await?;
        }
    }
    tx.commit().await.context("commit completion transaction")?;
    Ok(())
}

fn error_of(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Transient { error } | Outcome::Rejected { error } => error,
        _ => "",
    }
}
