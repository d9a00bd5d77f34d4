//! The cleanup sweep (SPEC 6): workers with a stale heartbeat become dead,
//! what they held goes back (tasks pending with their lease bumped, proxies
//! free), expired proxy blocks end, and old finished tasks are purged in
//! small batches.
//!
//! Every replica may run the loop (`worker cleanup`, and `worker run` with
//! `worker.cleanup.in_worker`), but only the one holding a session-level
//! advisory lock sweeps: the lock lives on a dedicated connection, so a
//! crashed or disconnected leader releases it and another replica takes over
//! at its next tick.

use std::time::Duration;

use anyhow::Context;
use db::PgPool;
use settings::CleanupSettings;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

/// The advisory lock key of the sweep ("carfclen" in ASCII).
const CLEANUP_LOCK_KEY: i64 = 0x6361_7266_636c_656e;

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    pub dead_workers: Vec<i64>,
    pub tasks_rescued: u64,
    pub proxies_freed: u64,
    pub proxies_unblocked: u64,
    pub tasks_purged: u64,
    pub workers_purged: u64,
}

impl Sweep {
    fn is_quiet(&self) -> bool {
        *self == Self::default()
    }
}

/// One sweep on `conn`. The reclaiming steps share one transaction, so a
/// dead worker's tasks and proxies are handed back together.
pub async fn sweep(conn: &mut PgConnection, settings: &CleanupSettings) -> anyhow::Result<Sweep> {
    let mut tx = conn.begin().await.context("begin cleanup transaction")?;
    let dead_workers = db::workers::mark_stale_dead(&mut *tx)
        .await
        .context("Failed to mark stale workers dead")?;
    let tasks_rescued = db::tasks::rescue_from_dead(&mut *tx)
        .await
        .context("Failed to reclaim the tasks of dead workers")?;
    let proxies_freed = db::proxies::free_from_dead(&mut *tx)
        .await
        .context("Failed to free the proxies of dead workers")?;
    let proxies_unblocked = db::proxies::unblock_expired(&mut *tx)
        .await
        .context("Failed to unblock proxies")?;
    tx.commit().await.context("commit cleanup transaction")?;

    let batch = i64::from(settings.purge_batch.get());
    let mut tasks_purged = 0;
    loop {
        let purged = db::tasks::purge_finished(&mut *conn, settings.retention, batch)
            .await
            .context("Failed to purge finished tasks")?;
        tasks_purged += purged;
        if purged < u64::from(settings.purge_batch.get()) {
            break;
        }
    }
    let workers_purged = db::workers::purge_ended(&mut *conn, settings.retention)
        .await
        .context("Failed to purge ended workers")?;
    Ok(Sweep {
        dead_workers,
        tasks_rescued,
        proxies_freed,
        proxies_unblocked,
        tasks_purged,
        workers_purged,
    })
}

fn log(sweep: &Sweep) {
    if !sweep.dead_workers.is_empty() {
        tracing::warn!(
            "Cleanup: worker(s) {:?} missed their heartbeats and are dead; {} task(s) back to pending, {} proxy(ies) freed",
            sweep.dead_workers,
            sweep.tasks_rescued,
            sweep.proxies_freed
        );
    } else if sweep.tasks_rescued + sweep.proxies_freed > 0 {
        tracing::info!(
            "Cleanup: {} task(s) and {} proxy(ies) of ended workers handed back",
            sweep.tasks_rescued,
            sweep.proxies_freed
        );
    }
    if sweep.proxies_unblocked > 0 {
        tracing::info!(
            "Cleanup: {} proxy(ies) finished their cooldown and are free",
            sweep.proxies_unblocked
        );
    }
    if sweep.tasks_purged + sweep.workers_purged > 0 {
        tracing::info!(
            "Cleanup: purged {} finished task(s) and {} ended worker(s) past retention",
            sweep.tasks_purged,
            sweep.workers_purged
        );
    }
}

/// Asks for the sweep lock on `conn`, opening it first if needed; `true`
/// when this process now holds it. A replica that does not get the lock
/// keeps its connection for the next try (no connection churn per tick).
async fn try_lead(pool: &PgPool, conn: &mut Option<PgConnection>) -> anyhow::Result<bool> {
    if conn.is_none() {
        let opened = PgConnection::connect_with(&pool.connect_options())
            .await
            .context("Failed to open the cleanup connection")?;
        *conn = Some(opened);
    }
    let conn = conn.as_mut().expect("opened above");
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(CLEANUP_LOCK_KEY)
        .fetch_one(conn)
        .await
        .context("Failed to ask for the cleanup lock")?;
    Ok(locked)
}

/// Sweeps every `settings.interval` while this replica holds the lock (and
/// tries to take it at every tick while it does not), until `shutdown`.
pub async fn run(pool: PgPool, settings: CleanupSettings, shutdown: CancellationToken) {
    let mut conn: Option<PgConnection> = None;
    let mut leading = false;
    loop {
        // A stop does not wait for a database that does not answer.
        let tick = tick(&pool, &settings, &mut conn, &mut leading);
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tick => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(settings.interval) => {}
        }
    }
    if let Some(conn) = conn {
        let _ = conn.close().await;
    }
}

/// One turn of the loop: take the lead if nobody has it, sweep if leading.
async fn tick(
    pool: &PgPool,
    settings: &CleanupSettings,
    conn: &mut Option<PgConnection>,
    leading: &mut bool,
) {
    {
        if !*leading {
            match try_lead(pool, conn).await {
                Ok(true) => {
                    tracing::info!(
                        "Cleanup: this process runs the sweep every {}",
                        humantime::format_duration(settings.interval)
                    );
                    *leading = true;
                }
                Ok(false) => tracing::debug!("Cleanup: another process runs the sweep"),
                Err(err) => {
                    tracing::warn!("Cleanup: cannot take the sweep lock: {err:#}");
                    *conn = None;
                }
            }
        }
        if let (true, Some(c)) = (*leading, conn.as_mut()) {
            match sweep(c, settings).await {
                Ok(done) if !done.is_quiet() => log(&done),
                Ok(_) => {}
                Err(err) => {
                    // A broken connection also lost the lock: take it again.
                    tracing::warn!("Cleanup sweep failed, retrying at the next tick: {err:#}");
                    *leading = false;
                    *conn = None;
                }
            }
        }
    }
}

/// Sleeps `d` unless `shutdown` comes first; `false` when it did.
pub(crate) async fn pause(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(d) => true,
    }
}
