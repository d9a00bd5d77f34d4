//! `loader serve`: finishes an unfinished initial load, then runs the daily
//! update on the cron schedule of `loader.schedule` (UTC) until shutdown.
//! Pages of the initial load that failed every attempt are fetched again by
//! every run: while the load has rounds to go (`loader.failed_page_rounds`)
//! one `upstream.retry.interval` apart, then before each daily update.

use anyhow::Context as _;
use bootstrap::Context;
use chrono::Utc;
use db::PgPool;
use settings::Settings;
use tokio_util::sync::CancellationToken;

use crate::{
    initial_load_pending, missing_pages, run_daily, run_initial, DailyOptions, InitialOptions,
};

/// Runs until `shutdown` is cancelled. A failed run is logged (and recorded
/// by the run itself); the schedule goes on.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let Context {
        settings,
        pool,
        shutdown,
        ..
    } = ctx;
    let settings = &settings;
    let schedule = settings.loader.schedule.cron();
    tracing::info!(
        "Loader started; daily update schedule {:?} (UTC)",
        settings.loader.schedule
    );
    loop {
        if initial_load_pending(&pool).await? {
            tracing::info!("The initial load is not finished: running it first");
            initial(settings, &pool, &shutdown).await;
            if shutdown.is_cancelled() {
                break;
            }
            if initial_load_pending(&pool).await? && !missing_pages(&pool).await?.is_empty() {
                // Only failed pages hold the load back: the next round
                // comes after one retry interval, not the next schedule.
                let pause = settings.upstream.retry.interval;
                tracing::info!(
                    "Fetching the missing pages again in {}",
                    humantime::format_duration(pause)
                );
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(pause) => continue,
                }
            }
        }
        let now = Utc::now();
        let next = schedule
            .find_next_occurrence(&now, false)
            .context("loader.schedule has no next occurrence")?;
        tracing::info!("Next daily update at {}", next.format("%Y-%m-%d %H:%M UTC"));
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
        if initial_load_pending(&pool).await? {
            continue;
        }
        if !missing_pages(&pool).await?.is_empty() {
            tracing::info!("The initial load has pages missing: fetching them again first");
            initial(settings, &pool, &shutdown).await;
        }
        if let Err(err) = run_daily(
            settings,
            pool.clone(),
            shutdown.clone(),
            DailyOptions::default(),
        )
        .await
        {
            tracing::error!("The daily update failed: {err:#}");
        }
    }
    tracing::info!("Loader stopped");
    Ok(())
}

/// One `loader initial` run; a failure is logged (the run recorded it).
async fn initial(settings: &Settings, pool: &PgPool, shutdown: &CancellationToken) {
    let options = InitialOptions::default();
    if let Err(err) = run_initial(settings, pool.clone(), shutdown.clone(), options).await {
        tracing::error!("The initial load failed: {err:#}");
    }
}
