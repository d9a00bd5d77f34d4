//! The claimer and its slots. The claimer waits for free slots, claims as
//! many (task, proxy) pairs as there are free slots in one transaction, and
//! starts one slot per pair; each slot fetches and hands its outcome to the
//! completer. With nothing to claim it sleeps until a write in this process
//! frees something, or `idle_poll` passes: it never spins.
//!
//! A claim can commit while its reply is lost (the connection broke), and
//! a Postgres crash can lose a completion batch (committed without waiting
//! for the WAL flush): either way the database shows tasks and proxies under
//! this live worker that no slot holds, and cleanup never takes them (the
//! worker heartbeats). So after a failed claim, and every heartbeat
//! interval, the claimer hands back whatever is held under its id that no
//! slot's guard lists. It is the only place claims are made, and it lets the
//! claims in flight finish (and their slots start) first.

use std::sync::Arc;

use anyhow::Context;
use db::proxies::ClaimedProxy;
use db::tasks::{ClaimedTask, Lease};
use db::PgPool;
use domain::fleet::TaskKind;
use futures::stream::{FuturesUnordered, StreamExt};
use settings::WorkerSettings;
use tokio::sync::mpsc::{Sender, UnboundedSender};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::done::{slot_span, Done};
use crate::fetch::Fetcher;
use crate::guard::{ClaimGuard, Held, Orphan};
use crate::health::WriteHealth;
use crate::registry::Identity;

/// Claims up to `limit` (task, proxy) pairs for `worker_id`, in one
/// autocommitted statement.
pub async fn claim(
    pool: &PgPool,
    worker_id: i64,
    limit: usize,
    kinds: &[TaskKind],
) -> anyhow::Result<Vec<(ClaimedTask, ClaimedProxy)>> {
    db::claims::claim_pairs(pool, worker_id, limit as i64, kinds)
        .await
        .context("claim tasks and proxies")
}

pub struct Claimer {
    pub pool: PgPool,
    pub settings: WorkerSettings,
    pub identity: Identity,
    pub fetcher: Arc<Fetcher>,
    pub done: Sender<Done>,
    pub orphans: UnboundedSender<Orphan>,
    pub wake: Arc<Notify>,
    pub slots: Arc<Semaphore>,
    pub tracker: TaskTracker,
    /// Cancels in-flight slots (after the grace period).
    pub cancel_slots: CancellationToken,
    /// What the slots hold (every live guard).
    pub held: Held,
    pub health: Arc<WriteHealth>,
}

impl Claimer {
    /// Claims and starts slots until `shutdown`. Up to `claims_in_flight`
    /// claims run at once: a claim waits for its commit to reach the disk,
    /// and slots freed meanwhile are claimed for by the next one instead of
    /// waiting for it (their commits share the WAL flush).
    pub async fn run(self, shutdown: CancellationToken) {
        let max_in_flight = self.settings.claims_in_flight.get();
        let mut claims = FuturesUnordered::new();
        let mut reconcile_due = true;
        let mut reconciled = tokio::time::Instant::now();
        // Set when a claim found nothing: no new claim before a wake (a
        // write in this process freed something) or this moment.
        let mut idle_until: Option<tokio::time::Instant> = None;
        loop {
            if !reconcile_due && reconciled.elapsed() >= self.settings.heartbeat_interval {
                reconcile_due = true;
            }
            // A reconcile needs every claim made so far to be in a slot.
            let may_claim = idle_until.is_none()
                && claims.len() < max_in_flight
                && (claims.is_empty() || !reconcile_due);
            let idle_deadline = idle_until.unwrap_or_else(tokio::time::Instant::now);
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some((claimed, permits, worker_id)) = claims.next(), if !claims.is_empty() => {
                    if !self.started(claimed, permits, worker_id, &mut reconcile_due) {
                        idle_until = Some(tokio::time::Instant::now() + self.settings.idle_poll);
                    }
                }
                permit = self.slots.clone().acquire_owned(), if may_claim => {
                    let Ok(first) = permit else { break };
                    let mut permits = vec![first];
                    while let Ok(p) = self.slots.clone().try_acquire_owned() {
                        permits.push(p);
                    }
                    let worker_id = self.identity.get();
                    if reconcile_due {
                        // The database may be away: a stop must not wait for it.
                        tokio::select! {
                            ok = self.reconcile(worker_id) => reconcile_due = !ok,
                            () = shutdown.cancelled() => break,
                        }
                        reconciled = tokio::time::Instant::now();
                    }
                    let pool = self.pool.clone();
                    let fetcher = self.fetcher.clone();
                    claims.push(async move {
                        let claimed = claim(&pool, worker_id, permits.len(), fetcher.kinds()).await;
                        (claimed, permits, worker_id)
                    });
                }
                () = self.wake.notified(), if idle_until.is_some() => idle_until = None,
                () = tokio::time::sleep_until(idle_deadline), if idle_until.is_some() => {
                    idle_until = None;
                }
            }
        }
        // Claims already sent may commit: their slots start like the others
        // and get the grace period. A claim the database does not answer
        // within it is dropped (should it commit, the shutdown's hand-back,
        // or cleanup, returns what it took).
        let drain = async {
            while let Some((claimed, permits, worker_id)) = claims.next().await {
                self.started(claimed, permits, worker_id, &mut reconcile_due);
            }
        };
        if tokio::time::timeout(self.settings.grace_period, drain)
            .await
            .is_err()
        {
            tracing::warn!("Stopping: a claim got no answer within the grace period; dropped");
        }
    }

    /// Starts a slot per claimed pair; `false` if the claim took nothing
    /// (or failed: it may have committed all the same, so a reconcile is
    /// due before the next claim).
    fn started(
        &self,
        claimed: anyhow::Result<Vec<(ClaimedTask, ClaimedProxy)>>,
        mut permits: Vec<OwnedSemaphorePermit>,
        worker_id: i64,
        reconcile_due: &mut bool,
    ) -> bool {
        let claimed = match claimed {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::warn!("Failed to claim tasks, retrying: {err:#}");
                *reconcile_due = true;
                return false;
            }
        };
        let took = !claimed.is_empty();
        for ((task, proxy), permit) in claimed.into_iter().zip(permits.drain(..)) {
            self.start(worker_id, task, proxy, permit);
        }
        took
    }

    /// Hands back what the database shows held under `worker_id` that no
    /// slot holds; `false` if that could not be done (tried again later).
    async fn reconcile(&self, worker_id: i64) -> bool {
        let (tasks, proxies) = self.held.ids();
        let attempt = async {
            let mut tx = self.pool.begin().await?;
            let t = db::tasks::hand_back(&mut *tx, worker_id, &tasks).await?;
            let p = db::proxies::hand_back(&mut *tx, worker_id, &proxies).await?;
            tx.commit().await?;
            anyhow::Ok((t, p))
        };
        match attempt.await {
            Ok((0, 0)) => true,
            Ok((t, p)) => {
                tracing::warn!(
                    "Handed back {t} task(s) and {p} proxy(ies) held under worker {worker_id} that no slot holds (e.g. a claim whose commit reply was lost)"
                );
                self.wake.notify_one();
                true
            }
            Err(err) => {
                tracing::warn!("Failed to reconcile worker {worker_id}'s claims: {err:#}");
                false
            }
        }
    }

    fn start(
        &self,
        worker_id: i64,
        task: ClaimedTask,
        proxy: ClaimedProxy,
        permit: OwnedSemaphorePermit,
    ) {
        let task_lease = Lease {
            id: task.id,
            lease: task.lease,
            worker_id,
        };
        let proxy_lease = Lease {
            id: proxy.id,
            lease: proxy.lease,
            worker_id,
        };
        let guard = ClaimGuard::new(
            task_lease,
            proxy_lease,
            self.orphans.clone(),
            self.held.clone(),
        );
        let fetcher = self.fetcher.clone();
        let done = self.done.clone();
        let cancel = self.cancel_slots.clone();
        let health = self.health.clone();
        let span = slot_span(&task, proxy.id);
        let slot = async move {
            let outcome = tokio::select! {
                // Dropping the guard hands the claim back.
                () = cancel.cancelled() => return,
                outcome = fetcher.fetch(&task, &proxy.url) => outcome,
            };
            let finished = Done {
                worker_id,
                task,
                proxy: proxy_lease,
                outcome,
                guard,
                permit,
                waiting: health.finished(),
            };
            // A completer that cannot write keeps its queue full: the
            // grace period's end still ends this slot (its guard hands the
            // claim back).
            tokio::select! {
                () = cancel.cancelled() => {}
                _ = done.send(finished) => {}
            }
        };
        self.tracker.spawn(slot.instrument(span));
    }
}
