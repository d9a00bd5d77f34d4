//! A worker's row in `workers`: registration (a few attempts, the database
//! may still be starting) and the heartbeat. A worker that finds itself
//! declared dead (a long stall or a partition; cleanup has reclaimed what it
//! held, and its old leases are void) registers again under a new id; the
//! old row stays `dead`.
//!
//! The heartbeat has a connection of its own: a beat never waits for a pool
//! connection behind busy claims and completions. It is stopped before the
//! worker marks itself stopped, so no beat is in flight at that moment.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use db::workers::WriteAges;
use db::PgPool;
use domain::fleet::WorkerStatus;
use settings::WorkerSettings;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

use crate::health::WriteHealth;

/// This process's current worker id.
#[derive(Clone)]
pub struct Identity(Arc<AtomicI64>);

impl Identity {
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

fn name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
    format!("{host}-{}", std::process::id())
}

async fn register_once(
    db: impl sqlx::PgExecutor<'_>,
    settings: &WorkerSettings,
) -> anyhow::Result<i64> {
    // worker.slots is at most 1024 (settings).
    let slots = i32::try_from(settings.slots.get()).context("worker.slots")?;
    Ok(db::workers::register(db, &name(), slots, settings.stale_after()).await?)
}

/// Registers, trying `register_attempts` times with a growing pause.
pub async fn register(
    pool: &PgPool,
    settings: &WorkerSettings,
    shutdown: &CancellationToken,
) -> anyhow::Result<Identity> {
    let attempts = settings.register_attempts.get();
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=attempts {
        match register_once(pool, settings).await {
            Ok(id) => return Ok(Identity(Arc::new(AtomicI64::new(id)))),
            Err(err) if attempt < attempts => {
                tracing::warn!(
                    "Failed to register the worker (attempt {attempt} of {attempts}), retrying in {delay:?}: {err:#}"
                );
                if !crate::cleanup::pause(delay, shutdown).await {
                    anyhow::bail!("shut down before the worker could register");
                }
                delay *= 2;
            }
            Err(err) => {
                return Err(err).context(format!(
                    "Failed to register the worker after {attempts} attempts"
                ))
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}

/// Heartbeats every `heartbeat_interval` until `stop`, on its own
/// connection (opened again after an error).
pub async fn heartbeat(
    pool: PgPool,
    settings: WorkerSettings,
    identity: Identity,
    health: Arc<WriteHealth>,
    stop: CancellationToken,
) {
    let mut conn: Option<PgConnection> = None;
    while crate::cleanup::pause(settings.heartbeat_interval, &stop).await {
        let id = identity.get();
        // A beat slower than the stale period is as good as lost: the
        // connection is presumed broken and opened again.
        let ages = health.ages();
        // A stop does not wait for a beat the database does not answer.
        let beat = tokio::select! {
            beat = tokio::time::timeout(settings.stale_after(), beat(&pool, &mut conn, id, ages)) => beat,
            () = stop.cancelled() => break,
        };
        match beat {
            Ok(Ok(Some(WorkerStatus::Alive))) => {}
            Ok(Ok(Some(WorkerStatus::Dead))) => {
                tracing::error!(
                    "Worker {id} was declared dead (missed heartbeats); what it held was reclaimed. Registering again"
                );
                let again = match conn.as_mut() {
                    Some(conn) => register_once(conn, &settings).await,
                    None => register_once(&pool, &settings).await,
                };
                match again {
                    Ok(new) => {
                        identity.0.store(new, Ordering::Relaxed);
                        tracing::info!("Registered again as worker {new}");
                    }
                    Err(err) => tracing::warn!("Failed to register again: {err:#}"),
                }
            }
            Ok(Ok(status)) => tracing::warn!(
                "Heartbeat of worker {id}: its row is {status:?}, not alive; nothing recorded"
            ),
            Ok(Err(err)) => {
                tracing::warn!("Heartbeat of worker {id} failed: {err:#}");
                conn = None;
            }
            Err(_) => {
                tracing::warn!(
                    "Heartbeat of worker {id} took longer than {}; reconnecting",
                    humantime::format_duration(settings.stale_after())
                );
                conn = None;
            }
        }
    }
    if let Some(conn) = conn {
        let _ = conn.close().await;
    }
}

/// One beat on the heartbeat's connection, opening it first if needed.
async fn beat(
    pool: &PgPool,
    conn: &mut Option<PgConnection>,
    worker_id: i64,
    ages: WriteAges,
) -> anyhow::Result<Option<WorkerStatus>> {
    if conn.is_none() {
        let opened = PgConnection::connect_with(&pool.connect_options())
            .await
            .context("Failed to open the heartbeat connection")?;
        *conn = Some(opened);
    }
    let conn = conn.as_mut().expect("opened above");
    Ok(db::workers::update_heartbeat(conn, worker_id, ages).await?)
}
