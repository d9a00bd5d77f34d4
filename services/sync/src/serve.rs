//! `sync serve`: pulls on `sync.pull_schedule` (set before the loader's
//! run), pushes every `sync.push_interval` and whenever the normaliser
//! announces a finished run (`NOTIFY normalizer_finished`). A scheduled pull
//! missed while sync was down runs at start, so the loader's next run never
//! works from reference tables older than the schedule promises.
//!
//! Production being unreachable never stops the working side: each failed
//! attempt is one log line, retried after a wait that doubles from
//! `sync.retry.initial_interval` up to `sync.retry.max_interval`; the first
//! success after failures says so. Sync holds
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
    failures: u32,
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
        failures: 0,
    };
    let pull_missed = missed_pull(settings, &working, &schedule).await?;
    if pull_missed {
        tracing::info!("The last scheduled pull did not run: pulling now");
    }
    let mut pull = Due {
        at: if pull_missed {
            Instant::now()
        } else {
            next_pull(&schedule)
        },
        backoff: None,
        failures: 0,
    };
    loop {
        // Biased: a pull due at the same time as a push goes first.
        let direction = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            () = sleep_until(pull.at) => Direction::Pull,
            () = sleep_until(push.at) => Direction::Push,
            note = listener.recv() => {
                if let Err(err) = note {
                    tracing::warn!(error = ?err, "LISTEN connection lost; reconnecting");
                }
                tracing::info!("The normaliser finished a run: pushing");
                Direction::Push
            }
        };
        let result = attempt(settings, &working, &mut production, direction, &shutdown).await;
        let due = match direction {
            Direction::Push => &mut push,
            Direction::Pull => &mut pull,
        };
        match result {
            Ok(()) => {
                if due.failures > 0 {
                    tracing::info!(
                        "sync {} succeeded after {} failed attempt(s): production is reachable again",
                        direction.as_str(),
                        due.failures
                    );
                }
                due.backoff = None;
                due.failures = 0;
                due.at = match direction {
                    Direction::Push => Instant::now() + settings.sync.push_interval,
                    Direction::Pull => next_pull(&schedule),
                };
            }
            Err(err) => {
                let wait = due
                    .backoff
                    .map_or(settings.sync.retry.initial_interval, |b| {
                        (b * 2).min(settings.sync.retry.max_interval)
                    });
                tracing::warn!(
                    "sync {} failed, retrying in {}: {err:#}",
                    direction.as_str(),
                    humantime::format_duration(wait)
                );
                due.backoff = Some(wait);
                due.failures += 1;
                due.at = Instant::now() + wait;
            }
        }
    }
    if let Some(pool) = production {
        pool.close().await;
    }
    working.close().await;
    tracing::info!("sync stopped");
    Ok(())
}

/// One run; an error when it failed (production unreachable included).
async fn attempt(
    settings: &Settings,
    working: &PgPool,
    production: &mut Option<PgPool>,
    direction: Direction,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    if direction == Direction::Pull && settings.sync.pull_tables.is_empty() {
        return Ok(());
    }
    let production = match production {
        Some(pool) => pool.clone(),
        None => production
            .insert(commands::connect_production(settings, None).await?)
            .clone(),
    };
    let ends = Ends {
        working: working.clone(),
        production,
    };
    let options = commands::run_options(settings, false, false);
    commands::transfer(&ends, direction, settings, &options, shutdown).await?;
    Ok(())
}

/// Whether a scheduled pull went by since the pull tables last finished
/// one (or one never did).
async fn missed_pull(
    settings: &Settings,
    working: &PgPool,
    schedule: &croner::Cron,
) -> anyhow::Result<bool> {
    let names: Vec<String> = settings
        .sync
        .pull_tables
        .iter()
        .map(|t| t.name.clone())
        .collect();
    if names.is_empty() {
        return Ok(false);
    }
    let Some(last) = db::sync_tables::last_success(working, Direction::Pull, &names).await? else {
        return Ok(true);
    };
    Ok(schedule
        .find_next_occurrence(&last, false)
        .is_ok_and(|next| next <= Utc::now()))
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
