//! `sync serve`: pulls on `sync.pull_schedule` (set before the loader's
//! run), pushes every `sync.push_interval` and whenever the normaliser
//! announces a finished run (`NOTIFY normalizer_finished`). A scheduled pull
//! missed while sync was down runs at start, so the loader's next run never
//! works from reference tables older than the schedule promises.
//!
//! Neither database being unreachable makes it spin: each failed push,
//! pull or LISTEN attempt is one log line saying which, retried after a
//! wait that doubles from `sync.retry.initial_interval` up to
//! `sync.retry.max_interval`; the first success after failures says so. A
//! notification never cuts a push's backoff short. Sync holds
//! at most two connections to the working database while it reads, and reads
//! under a snapshot, so the loader and the normaliser never wait for it.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use db::sync_tables::{Direction, NORMALIZER_FINISHED};
use db::PgPool;
use settings::Settings;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::job;
use crate::run::Ends;

/// The longest the LISTEN connection waits for a connection to open.
const LISTEN_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// When something runs next, and its backoff after failures.
struct Due {
    at: Instant,
    backoff: Option<Duration>,
    failures: u32,
}

impl Due {
    fn at(at: Instant) -> Self {
        Self {
            at,
            backoff: None,
            failures: 0,
        }
    }

    /// A failure: the wait before the next attempt, doubling from
    /// `sync.retry.initial_interval` up to `max_interval`.
    fn failed(&mut self, settings: &Settings) -> Duration {
        let retry = &settings.sync.retry;
        let wait = self
            .backoff
            .map_or(retry.initial_interval, |b| (b * 2).min(retry.max_interval));
        self.backoff = Some(wait);
        self.failures += 1;
        self.at = Instant::now() + wait;
        wait
    }

    /// A success: how many failures came before it (and none from now on).
    fn succeeded(&mut self, next: Instant) -> u32 {
        self.backoff = None;
        self.at = next;
        std::mem::take(&mut self.failures)
    }
}

/// What woke the loop.
enum Event {
    Run(Direction),
    /// Time to (re)open the LISTEN connection.
    Listen,
    Finished(sqlx::Result<sqlx::postgres::PgNotification>),
}

pub async fn serve(
    settings: &Settings,
    working: PgPool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let schedule = settings.sync.pull_schedule.cron();
    // The LISTEN connection has a pool of its own that gives up quickly, so
    // a working database that refuses connections fails its attempt soon
    // and the attempt waits its backoff like any other.
    let listen_pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(LISTEN_CONNECT_TIMEOUT.min(settings.database.acquire_timeout))
        .connect_lazy_with((*working.connect_options()).clone());
    let mut listener = Some(listen(&listen_pool).await?);
    let mut listen_due = Due::at(Instant::now());
    let version = db::schema::applied_version(&working).await?;
    tracing::info!(
        "sync ready (database schema version {version}); push every {}, pull on {:?} (UTC)",
        humantime::format_duration(settings.sync.push_interval),
        settings.sync.pull_schedule
    );
    let mut production: Option<PgPool> = None;
    let mut push = Due::at(Instant::now());
    let pull_missed = missed_pull(settings, &working, schedule).await?;
    if pull_missed {
        tracing::info!("The last scheduled pull did not run: pulling now");
    }
    let mut pull = Due::at(if pull_missed {
        Instant::now()
    } else {
        next_pull(schedule)
    });
    loop {
        // Biased: a pull due at the same time as a push goes first.
        let event = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            () = sleep_until(pull.at) => Event::Run(Direction::Pull),
            () = sleep_until(push.at) => Event::Run(Direction::Push),
            () = sleep_until(listen_due.at), if listener.is_none() => Event::Listen,
            note = recv(listener.as_mut()) => Event::Finished(note),
        };
        let direction = match event {
            Event::Listen => {
                match listen(&listen_pool).await {
                    Ok(opened) => {
                        listener = Some(opened);
                        let failures = listen_due.succeeded(Instant::now());
                        tracing::info!(
                            "LISTEN on {NORMALIZER_FINISHED} open again after {failures} failed attempt(s)"
                        );
                    }
                    Err(err) => {
                        let wait = listen_due.failed(settings);
                        tracing::warn!(
                            "LISTEN on {NORMALIZER_FINISHED} failed, retrying in {}: {err:#}",
                            humantime::format_duration(wait)
                        );
                    }
                }
                continue;
            }
            Event::Finished(Err(err)) => {
                // Notifications may be lost until it is back; the push
                // interval still runs meanwhile.
                listener = None;
                let wait = listen_due.failed(settings);
                tracing::warn!(
                    "LISTEN connection lost, reopening in {}: {err:#}",
                    humantime::format_duration(wait)
                );
                continue;
            }
            Event::Finished(Ok(_)) if push.failures > 0 => {
                tracing::info!(
                    "The normaliser finished a run; the push keeps its retry in {}",
                    humantime::format_duration(push.at.saturating_duration_since(Instant::now()))
                );
                continue;
            }
            Event::Finished(Ok(_)) => {
                tracing::info!("The normaliser finished a run: pushing");
                Direction::Push
            }
            Event::Run(direction) => direction,
        };
        let result = attempt(settings, &working, &mut production, direction, &shutdown).await;
        let due = match direction {
            Direction::Push => &mut push,
            Direction::Pull => &mut pull,
        };
        match result {
            Ok(()) => {
                let next = match direction {
                    Direction::Push => Instant::now() + settings.sync.push_interval,
                    Direction::Pull => next_pull(schedule),
                };
                let failures = due.succeeded(next);
                if failures > 0 {
                    tracing::info!(
                        "sync {} succeeded after {failures} failed attempt(s)",
                        direction.as_str(),
                    );
                }
            }
            Err(err) => {
                let wait = due.failed(settings);
                tracing::warn!(
                    "sync {} failed, retrying in {}: {err:#}",
                    direction.as_str(),
                    humantime::format_duration(wait)
                );
            }
        }
    }
    if let Some(pool) = production {
        pool.close().await;
    }
    drop(listener);
    listen_pool.close().await;
    working.close().await;
    tracing::info!("sync stopped");
    Ok(())
}

async fn listen(pool: &PgPool) -> anyhow::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool)
        .await
        .context("Failed to open the LISTEN connection")?;
    listener
        .listen(NORMALIZER_FINISHED)
        .await
        .context("Failed to LISTEN on normalizer_finished")?;
    Ok(listener)
}

/// The next notification, or never while there is no listener.
async fn recv(listener: Option<&mut PgListener>) -> sqlx::Result<sqlx::postgres::PgNotification> {
    match listener {
        Some(listener) => listener.recv().await,
        None => std::future::pending().await,
    }
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
            .insert(job::connect_production(settings).await?)
            .clone(),
    };
    let ends = Ends {
        working: working.clone(),
        production,
    };
    let options = job::run_options(settings, false, false, false);
    job::transfer(&ends, direction, settings, &options, shutdown).await?;
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
