//! `worker run`: register, heartbeat, (optionally) the cleanup loop, the
//! claimer with its slots, and the completer; on shutdown stop claiming,
//! give in-flight slots the grace period, cancel the rest, write what
//! finished, hand back what is still held, and mark the worker stopped.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use db::PgPool;
use settings::Settings;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::completer::Completer;
use crate::fetch::Fetcher;
use crate::slots::Claimer;

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

    let background = TaskTracker::new();
    let stop_background = CancellationToken::new();
    background.spawn(crate::registry::heartbeat(
        pool.clone(),
        cfg.clone(),
        identity.clone(),
        stop_background.clone(),
    ));
    if cfg.cleanup.in_worker {
        background.spawn(crate::cleanup::run(
            pool.clone(),
            cfg.cleanup.clone(),
            stop_background.clone(),
        ));
    }

    let (done_tx, done_rx) = mpsc::channel(cfg.slots as usize * 2);
    let (orphan_tx, orphan_rx) = mpsc::unbounded_channel();
    let wake = Arc::new(Notify::new());
    let completer = tokio::spawn(
        Completer {
            pool: pool.clone(),
            settings: cfg.clone(),
            done: done_rx,
            orphans: orphan_rx,
            wake: wake.clone(),
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
    let claims_pool = db::with_session_settings(
        &pool,
        cfg.claims_in_flight.max(1),
        &[
            ("plan_cache_mode", "force_generic_plan"),
            ("synchronous_commit", "off"),
        ],
    );
    Claimer {
        pool: claims_pool.clone(),
        settings: cfg.clone(),
        identity: identity.clone(),
        fetcher,
        done: done_tx,
        orphans: orphan_tx,
        wake,
        slots: Arc::new(Semaphore::new(cfg.slots as usize)),
        tracker: slots.clone(),
        cancel_slots: cancel_slots.clone(),
        held: Default::default(),
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
    completer.await.context("the completer panicked")?;

    // The heartbeat ends first: a beat in flight while the worker marks
    // itself stopped would find the row not alive and register again.
    stop_background.cancel();
    background.close();
    background.wait().await;
    let id = identity.get();
    let (tasks, proxies, was_alive) = hand_back(&pool, id).await?;
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
