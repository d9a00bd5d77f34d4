//! The claimer and its slots. The claimer waits for free slots, claims as
//! many (task, proxy) pairs as there are free slots in one transaction, and
//! starts one slot per pair; each slot fetches and hands its outcome to the
//! completer. With nothing to claim it sleeps until a write in this process
//! frees something, or `idle_poll` passes: it never spins.

use std::sync::Arc;

use anyhow::Context;
use db::proxies::ClaimedProxy;
use db::tasks::{ClaimedTask, Lease};
use db::PgPool;
use settings::WorkerSettings;
use tokio::sync::mpsc::{Sender, UnboundedSender};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::completer::Done;
use crate::fetch::Fetcher;
use crate::guard::{ClaimGuard, Orphan};
use crate::registry::Identity;

/// Claims up to `limit` pairs for `worker_id`: proxies first, then as many
/// tasks; surplus proxies are released in the same transaction.
pub async fn claim(
    pool: &PgPool,
    worker_id: i64,
    limit: usize,
    kinds: &[&str],
) -> anyhow::Result<Vec<(ClaimedTask, ClaimedProxy)>> {
    let mut tx = pool.begin().await.context("begin claim transaction")?;
    let proxies = db::proxies::acquire_proxy(&mut tx, worker_id, limit as i64).await?;
    if proxies.is_empty() {
        tx.rollback().await.ok();
        return Ok(Vec::new());
    }
    let tasks = db::tasks::acquire_task_of(&mut tx, worker_id, proxies.len() as i64, kinds).await?;
    if tasks.is_empty() {
        tx.rollback().await.ok();
        return Ok(Vec::new());
    }
    let surplus: Vec<Lease> = proxies[tasks.len()..]
        .iter()
        .map(|p| Lease {
            id: p.id,
            lease: p.lease,
        })
        .collect();
    if !surplus.is_empty() {
        db::proxies::release_proxy(&mut tx, &surplus).await?;
    }
    tx.commit().await.context("commit claim transaction")?;
    Ok(tasks.into_iter().zip(proxies).collect())
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
}

impl Claimer {
    /// Claims and starts slots until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let first = tokio::select! {
                () = shutdown.cancelled() => return,
                permit = self.slots.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let mut permits = vec![first];
            while let Ok(p) = self.slots.clone().try_acquire_owned() {
                permits.push(p);
            }
            let worker_id = self.identity.get();
            let kinds = self.fetcher.kinds();
            let claimed = match claim(&self.pool, worker_id, permits.len(), kinds).await {
                Ok(claimed) => claimed,
                Err(err) => {
                    tracing::warn!("Failed to claim tasks, retrying: {err:#}");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                drop(permits);
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(self.settings.idle_poll) => {}
                }
                continue;
            }
            for ((task, proxy), permit) in claimed.into_iter().zip(permits.drain(..)) {
                self.start(worker_id, task, proxy, permit);
            }
        }
    }

    fn start(
        &self,
        worker_id: i64,
        task: ClaimedTask,
        proxy: ClaimedProxy,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let task_lease = Lease {
            id: task.id,
            lease: task.lease,
        };
        let proxy_lease = Lease {
            id: proxy.id,
            lease: proxy.lease,
        };
        let guard = ClaimGuard::new(task_lease, proxy_lease, self.orphans.clone());
        let fetcher = self.fetcher.clone();
        let done = self.done.clone();
        let cancel = self.cancel_slots.clone();
        self.tracker.spawn(async move {
            let outcome = tokio::select! {
                // Dropping the guard hands the claim back.
                () = cancel.cancelled() => return,
                outcome = fetcher.fetch(&task, &proxy.url) => outcome,
            };
            let _ = done
                .send(Done {
                    worker_id,
                    task,
                    proxy: proxy_lease,
                    outcome,
                    guard,
                    permit,
                })
                .await;
        });
    }
}
