//! The completer: writes what the slots finished, many claims per
//! transaction (group commit), so a task costs a fraction of a transaction.
//! Every write is fenced by the claim's lease; a claim that was taken away
//! (cleanup declared this worker dead) is dropped and logged, never counted.
//!
//! A write Postgres refuses costs only its task: the batch is written again
//! by halves under savepoints (`db::isolate`) until each refused outcome
//! stands alone, and that task fails with Postgres' reason while the rest of
//! its batch commits. Any other failure (the database away, a serialization
//! failure) is retried with a backoff while the claims stay held.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use db::claims::Finished;
use db::results::NewResult;
use db::tasks::{Lease, RetryRule};
use db::workers::WorkerStats;
use db::{DbError, PgConnection, PgPool};
use domain::fleet::{TaskKind, TaskStatus};
use settings::WorkerSettings;
use tokio::sync::mpsc::{Receiver, UnboundedReceiver};
use tokio::sync::Notify;

use crate::done::Done;
use crate::guard::Orphan;
use crate::health::WriteHealth;
use crate::outcome::Outcome;

pub struct Completer {
    /// Sessions that commit without waiting for the WAL flush (see `write`).
    pub pool: PgPool,
    pub settings: WorkerSettings,
    pub done: Receiver<Done>,
    pub orphans: UnboundedReceiver<Orphan>,
    /// Signalled after every write: proxies and slots may be free again.
    pub wake: Arc<Notify>,
    pub health: Arc<WriteHealth>,
}

/// The settings a write needs, by value (a write runs inside futures that
/// must not borrow the completer).
#[derive(Debug, Clone, Copy)]
struct Rules {
    retry: RetryRule,
    max_blocks: i32,
    max_rotations: i32,
    block_cooldown: Duration,
    fault_cooldown: Duration,
    fault_cooldown_max: Duration,
}

impl Rules {
    fn of(s: &WorkerSettings) -> Self {
        Self {
            retry: RetryRule {
                max_attempts: s.max_attempts,
                backoff: s.retry_backoff,
                backoff_max: s.retry_backoff_max,
            },
            max_blocks: s.max_blocks_per_task,
            max_rotations: s.max_proxy_rotations,
            block_cooldown: s.proxy_cooldown,
            fault_cooldown: s.proxy_fault_cooldown,
            fault_cooldown_max: s.proxy_fault_cooldown_max,
        }
    }
}

impl Completer {
    /// Runs until every sender of `done` is gone and everything is written.
    pub async fn run(mut self) {
        let max = self.settings.completion_batch.get();
        loop {
            let mut batch = Vec::new();
            let mut orphans = Vec::new();
            tokio::select! {
                next = self.done.recv() => match next {
                    Some(done) => batch.push(done),
                    None => {
                        while let Ok(o) = self.orphans.try_recv() { orphans.push(o); }
                        if !orphans.is_empty() { self.write_until_done(Vec::new(), orphans).await; }
                        self.pool.close().await;
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
    /// A refused write is isolated instead of retried.
    #[tracing::instrument(name = "completer", skip_all, fields(tasks = batch.len(), orphans = orphans.len()))]
    async fn write_until_done(&self, batch: Vec<Done>, orphans: Vec<Orphan>) {
        let rules = Rules::of(&self.settings);
        let mut delay = Duration::from_millis(100);
        loop {
            let written = match write(&self.pool, rules, &batch, &orphans).await {
                Err(err) if err.is_refused_value() => {
                    tracing::warn!(
                        "Postgres refused the write of {} finished task(s) ({}); writing them by halves to find the refused one(s)",
                        batch.len(),
                        err.database_message()
                    );
                    write_isolated(&self.pool, rules, &batch, &orphans).await
                }
                other => other,
            };
            match written {
                Ok(written) => {
                    written.log(&batch);
                    break;
                }
                Err(err) => {
                    tracing::warn!(
                        "Failed to write {} finished task(s), retrying in {delay:?}: {:#}",
                        batch.len() + orphans.len(),
                        anyhow::Error::from(err)
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.health.wrote();
        for done in batch {
            done.guard.disarm();
            drop(done.permit);
        }
        self.wake.notify_one();
    }
}

/// What a write accepted, for the log.
#[derive(Debug, Default)]
struct Written {
    /// Every task id a statement accepted (its lease still held).
    accepted: HashSet<i64>,
    /// Tasks that failed for good in this write.
    failed: Vec<i64>,
    /// Tasks whose outcome Postgres refused: failed with its reason.
    refused: Vec<(i64, String)>,
}

impl Written {
    fn merge(&mut self, other: Written) {
        self.accepted.extend(other.accepted);
        self.failed.extend(other.failed);
        self.refused.extend(other.refused);
    }

    /// Logs what failed for good, and the claims of `batch` whose outcome
    /// no write accepted: their lease was taken away.
    fn log(&self, batch: &[Done]) {
        for d in batch {
            let _span = d.span().entered();
            let id = d.task.id;
            if let Some((_, reason)) = self.refused.iter().find(|(r, _)| *r == id) {
                tracing::warn!(
                    "Task {id} ({} {}) failed for good: {reason}",
                    d.task.kind,
                    d.task.target
                );
            } else if self.failed.contains(&id) {
                tracing::warn!(
                    "Task {id} ({} {}) failed for good: {}",
                    d.task.kind,
                    d.task.target,
                    error_of(&d.outcome)
                );
            } else if !self.accepted.contains(&id) {
                tracing::warn!(
                    "Task {id} ({} {}): lease {} was taken away (this worker was declared dead?); its outcome is dropped",
                    d.task.kind, d.task.target, d.task.lease
                );
            } else {
                tracing::debug!("Task {id} written");
            }
        }
    }
}

fn lease_of(d: &Done) -> Lease {
    Lease {
        id: d.task.id,
        lease: d.task.lease,
        worker_id: d.worker_id,
    }
}

/// Text Postgres will store: `text` refuses NUL.
fn storable(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

/// One transaction for a batch of finished claims and orphans. The common
/// batch (pages and 404s of `fetch_url` tasks, nothing else) is a single
/// autocommitted statement.
///
/// Without waiting for the WAL flush (the completer's sessions say so, which
/// costs no round trip), as claims: the claims this batch
/// finishes stay fenced by their leases, and a Postgres crash that loses
/// the batch leaves them running under this live worker, whose reconcile
/// hands them back (fetched again; results are saved once). Postgres' WAL
/// writer flushes within wal_writer_delay (200 ms) anyway.
async fn write(
    pool: &PgPool,
    rules: Rules,
    batch: &[Done],
    orphans: &[Orphan],
) -> Result<Written, DbError> {
    let common_only = orphans.is_empty()
        && batch.iter().all(|d| {
            d.task.kind != TaskKind::OfferRefresh
                && match &d.outcome {
                    Outcome::Fetched { extras, .. } => extras.is_empty(),
                    Outcome::NotFound => true,
                    _ => false,
                }
        });
    if common_only {
        let mut conn = pool.acquire().await?;
        return write_batch(&mut conn, rules, batch).await;
    }
    let mut tx = pool.begin().await?;
    write_orphans(&mut tx, orphans).await?;
    let written = write_batch(&mut tx, rules, batch).await?;
    tx.commit().await?;
    Ok(written)
}

/// `write` after Postgres refused it: the batch by halves under
/// savepoints; each refused outcome's task fails with the reason and its
/// proxy is freed, in the same transaction as the rest.
async fn write_isolated(
    pool: &PgPool,
    rules: Rules,
    batch: &[Done],
    orphans: &[Orphan],
) -> Result<Written, DbError> {
    let mut tx = pool.begin().await?;
    write_orphans(&mut tx, orphans).await?;
    let done = db::isolate::write_isolating(&mut tx, batch, |conn, rows| {
        Box::pin(write_batch(conn, rules, rows))
    })
    .await?;
    let mut written = Written::default();
    for w in done.written {
        written.merge(w);
    }
    let refused: Vec<&Done> = done.refused.iter().map(|(i, _)| &batch[*i]).collect();
    let leases: Vec<Lease> = refused.iter().map(|d| lease_of(d)).collect();
    let reasons: Vec<String> = done
        .refused
        .iter()
        .map(|(_, why)| storable(&format!("its outcome could not be stored: {why}")))
        .collect();
    let fail_now = RetryRule {
        max_attempts: 1,
        ..rules.retry
    };
    let failed = db::tasks::increment_task_attempts(&mut tx, &leases, &reasons, fail_now).await?;
    let proxies: Vec<Lease> = refused.iter().map(|d| d.proxy).collect();
    db::claims::finish_claims(&mut tx, &[], &[], &proxies).await?;
    let mut stats: HashMap<i64, WorkerStats> = HashMap::new();
    for (id, _) in &failed {
        if let Some((i, d)) = refused.iter().enumerate().find(|(_, d)| d.task.id == *id) {
            stats.entry(d.worker_id).or_default().failed += 1;
            written.accepted.insert(*id);
            written.refused.push((*id, reasons[i].clone()));
        }
    }
    for (worker_id, s) in stats {
        db::workers::increment_worker_stats(&mut *tx, worker_id, s).await?;
    }
    tx.commit().await?;
    Ok(written)
}

/// Claims whose slot ended without an outcome go back, proxies freed.
async fn write_orphans(conn: &mut PgConnection, orphans: &[Orphan]) -> Result<(), DbError> {
    if orphans.is_empty() {
        return Ok(());
    }
    let tasks: Vec<Lease> = orphans.iter().map(|o| o.task).collect();
    let reasons = vec!["handed back: its slot ended without an outcome".to_owned(); tasks.len()];
    db::tasks::retry_elsewhere(&mut *conn, &tasks, &reasons).await?;
    let proxies: Vec<Lease> = orphans.iter().map(|o| o.proxy).collect();
    db::claims::finish_claims(conn, &[], &[], &proxies).await?;
    Ok(())
}

/// Writes the outcomes of `batch` on `conn` (the caller's transaction or
/// savepoint; for the common batch, an autocommitted connection: then it is
/// one statement).
async fn write_batch(
    conn: &mut PgConnection,
    rules: Rules,
    batch: &[Done],
) -> Result<Written, DbError> {
    let mut stats: HashMap<i64, WorkerStats> = HashMap::new();
    let mut results = Vec::new();
    let mut pages = Vec::new();
    let mut not_found = Vec::new();
    let mut release = Vec::new();
    let mut attempts: (Vec<Lease>, Vec<String>) = Default::default();
    let mut rejected: (Vec<Lease>, Vec<String>) = Default::default();
    let mut blocked: (Vec<Lease>, Vec<i64>, Vec<String>, Vec<Lease>) = Default::default();
    let mut faulted: (Vec<Lease>, Vec<String>, Vec<Lease>) = Default::default();
    for d in batch {
        let lease = lease_of(d);
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
                blocked.0.push(lease);
                blocked.1.push(d.proxy.id);
                blocked.2.push(storable(reason));
                blocked.3.push(d.proxy);
                stats.entry(d.worker_id).or_default().proxies_blocked += 1;
            }
            Outcome::ProxyFault { reason } => {
                faulted.0.push(lease);
                faulted.1.push(storable(reason));
                faulted.2.push(d.proxy);
            }
            Outcome::Transient { error } => {
                attempts.0.push(lease);
                attempts.1.push(storable(error));
                release.push(d.proxy);
            }
            Outcome::Rejected { error } => {
                rejected.0.push(lease);
                rejected.1.push(storable(error));
                release.push(d.proxy);
            }
        }
    }
    let finished = db::claims::finish_claims(&mut *conn, &results, &not_found, &release).await?;
    let Finished { fetched, gone } = &finished;
    let mut written = Written {
        accepted: fetched.iter().chain(gone).copied().collect(),
        ..Written::default()
    };
    if results.len() + not_found.len() == batch.len() && pages.is_empty() {
        // The common batch: nothing else to write.
        if !batch.iter().any(|d| d.task.kind == TaskKind::OfferRefresh) {
            return Ok(written);
        }
    }
    // Page data goes only to the results this batch saved: a result row of
    // the same task and lease number may be another worker's (see `Lease`).
    pages.retain(|p| fetched.contains(&p.task_id));
    db::results::save_page_data(&mut *conn, &pages).await?;
    crate::refresh::write(&mut *conn, batch, fetched, gone).await?;

    let fail_now = RetryRule {
        max_attempts: 1,
        ..rules.retry
    };
    let mut ended = Vec::new();
    ended.extend(
        db::tasks::increment_task_attempts(&mut *conn, &attempts.0, &attempts.1, rules.retry)
            .await?,
    );
    ended.extend(
        db::tasks::increment_task_attempts(&mut *conn, &rejected.0, &rejected.1, fail_now).await?,
    );
    ended.extend(
        db::tasks::block(
            &mut *conn,
            &blocked.0,
            &blocked.1,
            &blocked.2,
            rules.max_blocks,
        )
        .await?,
    );
    ended.extend(db::tasks::rotate(&mut *conn, &faulted.0, &faulted.1, rules.max_rotations).await?);
    db::proxies::mark_proxy_blocked(&mut *conn, &blocked.3, rules.block_cooldown).await?;
    let cooled = db::proxies::cool_down(
        &mut *conn,
        &faulted.2,
        &faulted.1,
        rules.fault_cooldown,
        rules.fault_cooldown_max,
    )
    .await?;
    if cooled > 0 {
        tracing::info!(
            "{cooled} proxy(ies) failed themselves and cool down (worker status lists them)"
        );
    }
    for (id, status) in ended {
        written.accepted.insert(id);
        if let Some(d) = batch.iter().find(|d| d.task.id == id) {
            let s = stats.entry(d.worker_id).or_default();
            if status == TaskStatus::Failed {
                s.failed += 1;
                written.failed.push(id);
            } else {
                s.retried += 1;
            }
        }
    }
    // Completions were counted by `finish_claims`.
    for (worker_id, s) in stats {
        if !s.is_empty() {
            db::workers::increment_worker_stats(&mut *conn, worker_id, s).await?;
        }
    }
    Ok(written)
}

fn error_of(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Transient { error } | Outcome::Rejected { error } => error.clone(),
        Outcome::Blocked { reason } | Outcome::ProxyFault { reason } => reason.clone(),
        _ => String::new(),
    }
}
