//! `sync serve`: pulls on `sync.pull_schedule` (set before the loader's
//! run), pushes every `sync.push_interval` and whenever the normaliser
//! announces a finished run (`NOTIFY normalizer_finished`).
//!
//! Production being unreachable never stops the working side: the run is
//! logged, and retried after a wait that doubles from
//! `sync.retry.initial_interval` up to `sync.retry.max_interval`. Sync holds
//! at most two connections to the working database while it reads, and reads
//! under a snapshot, so the loader and the normaliser never wait for it.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use db::sync_tables::{Direction, NORMALIZER_FINISHED};
use db::PgPool;
use settings::Settings;
use sqlx::postgres::PgListener;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::commands;
use crate::run::Ends;

/// A direction's next run and its backoff.
struct Due {
    at: Instant,
    backoff: Option<Duration>,
}

pub async fn serve(
    settings: &Settings,
    working: PgPool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let schedule: croner::Cron = settings.sync.pull_schedule.parse().with_context(|| {
        format!(
            "config: sync.pull_schedule {:?} is not a cron expression",
            settings.sync.pull_schedule
        )
    })?;
    let mut listener = PgListener::connect_with(&working)
        .await
        .context("Failed to open the LISTEN connection")?;
    listener
        .listen(NORMALIZER_FINISHED)
        .await
        .context("Failed to LISTEN on normalizer_finished")?;
    let version = db::schema::applied_version(&working).await?;
    tracing::info!(
        "sync ready (database schema version {version}); push every {}, pull on {:?} (UTC)",
        humantime::format_duration(settings.sync.push_interval),
        settings.sync.pull_schedule
    );
    let mut production: Option<PgPool> = None;
    let mut push = Due {
        at: Instant::now(),
        backoff: None,
    };
    let mut pull = Due {
        at: next_pull(&schedule),
        backoff: None,
    };
    loop {
        let direction = tokio::select! {
            () = shutdown.cancelled() => break,
            () = sleep_until(push.at) => Direction::Push,
            () = sleep_until(pull.at) => Direction::Pull,
            note = listener.recv() => {
                if let Err(err) = note {
                    tracing::warn!(error = ?err, "LISTEN connection lost; reconnecting");
                }
                tracing::info!("The normaliser finished a run: pushing");
                Direction::Push
            }
        };
        let ok = attempt(settings, &working, &mut production, direction, &shutdown).await;
        let due = match direction {
            Direction::Push => &mut push,
            Direction::Pull => &mut pull,
        };
        if ok {
            due.backoff = None;
            due.at = match direction {
                Direction::Push => Instant::now() + settings.sync.push_interval,
                Direction::Pull => next_pull(&schedule),
            };
        } else {
            let wait = due
                .backoff
                .map_or(settings.sync.retry.initial_interval, |b| {
                    (b * 2).min(settings.sync.retry.max_interval)
                });
            tracing::warn!(
                "sync {} will be retried in {}",
                direction.as_str(),
                humantime::format_duration(wait)
            );
            due.backoff = Some(wait);
            due.at = Instant::now() + wait;
        }
    }
    if let Some(pool) = production {
        pool.close().await;
    }
    working.close().await;
    tracing::info!("sync stopped");
    Ok(())
}

/// One run; false when it failed (production unreachable included).
async fn attempt(
    settings: &Settings,
    working: &PgPool,
    production: &mut Option<PgPool>,
    direction: Direction,
    shutdown: &CancellationToken,
) -> bool {
    if direction == Direction::Pull && settings.sync.pull_tables.is_empty() {
        return true;
    }
    if production.is_none() {
        match commands::connect_production(settings, None).await {
            Ok(pool) => *production = Some(pool),
            Err(err) => {
                tracing::warn!("sync {}: {err:#}", direction.as_str());
                return false;
            }
        }
    }
    let ends = Ends {
        working: working.clone(),
        production: production.clone().expect("connected above"),
    };
    let options = commands::run_options(settings, false, false);
    match commands::transfer(&ends, direction, settings, &options, shutdown).await {
        Ok(_) => true,
        Err(err) => {
            tracing::error!("sync {} failed: {err:#}", direction.as_str());
            false
        }
    }
}

fn next_pull(schedule: &croner::Cron) -> Instant {
    let now = Utc::now();
    let wait = schedule
        .find_next_occurrence(&now, false)
        .ok()
        .and_then(|next| (next - now).to_std().ok())
        .unwrap_or(Duration::from_secs(24 * 3600));
    Instant::now() + wait
}
