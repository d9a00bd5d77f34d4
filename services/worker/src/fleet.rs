//! `worker run`: register, heartbeat, (optionally) the cleanup loop, the
//! claimer with its slots, and the completer; on shutdown stop claiming,
//! give in-flight slots the grace period, cancel the rest, write what
//! finished, hand back what is still held, and mark the worker stopped.
//! Each step after the grace period has a bound of its own
//! (`WRITE_DRAIN`, `HAND_BACK`): a completer that cannot write never keeps
//! the process from ending; what it could not write stays under this
//! worker's id, and cleanup reclaims it once the heartbeat has stopped.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use db::commit::{Commit, Mode};
use db::PgPool;
use settings::Settings;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::completer::Completer;
use crate::fetch::Fetcher;
use crate::health::WriteHealth;
use crate::slots::Claimer;

/// After the grace period, the completer gets this long to write what
/// finished (and hand back what was cancelled).
const WRITE_DRAIN: Duration = Duration::from_secs(3);
/// Then handing back what is still held, and marking the worker stopped.
const HAND_BACK: Duration = Duration::from_secs(3);

pub async fn run(
    settings: &Settings,
    pool: PgPool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let cfg = settings.worker.clone();
    // Before registering: a bad profile or a missing browser stops here.
    let fetcher = Arc::new(Fetcher::new(settings)?);
    let identity = crate::registry::register(&pool, &cfg, &shutdown).await?;
    tracing::info!(
        "worker ready: registered as worker {} with {} slot(s), heartbeat every {}",
        identity.get(),
        cfg.slots,
        humantime::format_duration(cfg.heartbeat_interval)
    );

    let health = Arc::new(WriteHealth::default());
    let background = TaskTracker::new();
    let stop_background = CancellationToken::new();
    background.spawn(crate::registry::heartbeat(
        pool.clone(),
        cfg.clone(),
        identity.clone(),
        health.clone(),
        stop_background.clone(),
    ));
    background.spawn(crate::health::publish_until(
        cfg.health_file.clone().into(),
        health.clone(),
        stop_background.clone(),
    ));
    if cfg.cleanup.in_worker {
        background.spawn(crate::cleanup::run(
            pool.clone(),
            cfg.cleanup.clone(),
            stop_background.clone(),
        ));
    }

    let (done_tx, done_rx) = mpsc::channel(cfg.slots.get() * 2);
    let (orphan_tx, orphan_rx) = mpsc::unbounded_channel();
    let wake = Arc::new(Notify::new());
    // Completions don't wait for their WAL flush (see `completer::write`):
    // they run on a connection of their own whose session says so.
    let mut completer = tokio::spawn(
        Completer {
            pool: Mode::new().commit(Commit::Asynchronous).pool(&pool, 1),
            settings: cfg.clone(),
            done: done_rx,
            orphans: orphan_rx,
            wake: wake.clone(),
            health: health.clone(),
        }
        .run(),
    );
    let slots = TaskTracker::new();
    let cancel_slots = CancellationToken::new();
    // Claims run on connections of their own that reuse the claim's generic
    // plan. Left to choose, Postgres re-plans most claims (about 0.4 ms
    // each): the generic plan's guess of LIMIT
    // $2 rows looks costlier than a custom plan for the 1 to 8 a claim
    // asks for, though both walk the same indexes (db test
    // `after_an_upload_claims_walk_the_pending_index_instead_of_sorting_the_queue`).
    // Nor do they wait for their WAL flush (completions don't either): a
    // claim a Postgres crash forgets leaves its task and proxy as they were,
    // and whoever claims them next gets the same lease numbers, so a write
    // is fenced by the claiming worker too (`db::tasks::Lease`). Waiting
    // for the flush left the fleet idle a third of the time.
    let claims_pool = Mode::new()
        .generic_plans()
        .commit(Commit::Asynchronous)
        .pool(
            &pool,
            // worker.claims_in_flight is at most 64 (settings).
            u32::try_from(cfg.claims_in_flight.get()).context("worker.claims_in_flight")?,
        );
    Claimer {
        pool: claims_pool.clone(),
        settings: cfg.clone(),
        identity: identity.clone(),
        fetcher,
        done: done_tx,
        orphans: orphan_tx,
        wake,
        slots: Arc::new(Semaphore::new(cfg.slots.get())),
        tracker: slots.clone(),
        cancel_slots: cancel_slots.clone(),
        held: Default::default(),
        health: health.clone(),
    }
    .run(shutdown.clone())
    .await;
    claims_pool.close().await;

    // Soft stop: in-flight fetches get the grace period, then are cancelled
    // (their guards hand the claims back through the completer).
    slots.close();
    let in_flight = slots.len();
    if in_flight > 0 {
        tracing::info!(
            "Stopping: {in_flight} task(s) in flight get {} to finish",
            humantime::format_duration(cfg.grace_period)
        );
    }
    if tokio::time::timeout(cfg.grace_period, slots.wait())
        .await
        .is_err()
    {
        tracing::info!("Grace period over: handing back the tasks still in flight");
        cancel_slots.cancel();
        slots.wait().await;
    }
    match tokio::time::timeout(WRITE_DRAIN, &mut completer).await {
        Ok(joined) => joined.context("the completer panicked")?,
        Err(_) => {
            completer.abort();
            let waiting = health.ages().oldest_unwritten.unwrap_or_default();
            tracing::error!(
                "The completer could not write within {WRITE_DRAIN:?} (a finished task has waited {waiting:.0}s): stopping without it; cleanup reclaims what it held"
            );
        }
    }

    // The heartbeat ends first: a beat in flight while the worker marks
    // itself stopped would find the row not alive and register again.
    stop_background.cancel();
    background.close();
    background.wait().await;
    let id = identity.get();
    let handed = tokio::time::timeout(HAND_BACK, hand_back(&pool, id))
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "the database did not answer within {HAND_BACK:?}; cleanup will reclaim what worker {id} holds"
            ))
        });
    let (tasks, proxies, was_alive) = handed?;
    if was_alive {
        tracing::info!("Worker {id} stopped: handed back {tasks} task(s) and {proxies} proxy(ies)");
    } else {
        tracing::warn!(
            "Worker {id} exits, but cleanup had declared it dead (its claims were reclaimed); its row stays dead. Handed back {tasks} task(s) and {proxies} proxy(ies)"
        );
    }
    Ok(())
}

/// Whatever the worker still holds goes back, and it is marked stopped
/// (unless cleanup declared it dead first); a few tries, since the database
/// may be restarting. Returns (tasks, proxies, whether it was still alive).
async fn hand_back(pool: &PgPool, worker_id: i64) -> anyhow::Result<(u64, u64, bool)> {
    let mut last = None;
    for _ in 0..5 {
        let attempt = async {
            let mut tx = pool.begin().await?;
            let tasks = db::tasks::hand_back(&mut *tx, worker_id, &[]).await?;
            let proxies = db::proxies::hand_back(&mut *tx, worker_id, &[]).await?;
            let was_alive = db::workers::mark_stopped(&mut *tx, worker_id).await?;
            tx.commit().await?;
            anyhow::Ok((tasks, proxies, was_alive))
        };
        match attempt.await {
            Ok(done) => return Ok(done),
            Err(err) => {
                tracing::warn!(
                    "Failed to hand back what worker {worker_id} holds, retrying: {err:#}"
                );
                last = Some(err);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("hand-back failed")))
        .context("Failed to hand back tasks and proxies; cleanup will reclaim them")
}
