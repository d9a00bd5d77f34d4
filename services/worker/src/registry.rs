//! A worker's row in `workers`: registration (a few attempts, the database
//! may still be starting) and the heartbeat. A worker that finds itself
//! declared dead (a long stall or a partition; cleanup has reclaimed what it
//! held, and its old leases are void) registers again under a new id.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use db::PgPool;
use settings::WorkerSettings;
use tokio_util::sync::CancellationToken;

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

async fn register_once(pool: &PgPool, settings: &WorkerSettings) -> anyhow::Result<i64> {
    let slots = i32::try_from(settings.slots).unwrap_or(i32::MAX);
    Ok(db::workers::register(pool, &name(), slots, settings.stale_after()).await?)
}

/// Registers, trying `register_attempts` times with a growing pause.
pub async fn register(
    pool: &PgPool,
    settings: &WorkerSettings,
    shutdown: &CancellationToken,
) -> anyhow::Result<Identity> {
    let attempts = settings.register_attempts.max(1);
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

/// Heartbeats every `heartbeat_interval` until `stop`.
pub async fn heartbeat(
    pool: PgPool,
    settings: WorkerSettings,
    identity: Identity,
    stop: CancellationToken,
) {
    while crate::cleanup::pause(settings.heartbeat_interval, &stop).await {
        let id = identity.get();
        match db::workers::update_heartbeat(&pool, id).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(
                    "Worker {id} was declared dead (missed heartbeats); what it held was reclaimed. Registering again"
                );
                match register_once(&pool, &settings).await {
                    Ok(new) => {
                        identity.0.store(new, Ordering::Relaxed);
                        tracing::info!("Registered again as worker {new}");
                    }
                    Err(err) => tracing::warn!("Failed to register again: {err:#}"),
                }
            }
            Err(err) => tracing::warn!("Heartbeat of worker {id} failed: {err:#}"),
        }
    }
}
