//! `loader serve`: finishes an unfinished initial load, then runs the daily
//! update on the cron schedule of `loader.schedule` (UTC) until shutdown.

use anyhow::Context;
use chrono::Utc;
use db::PgPool;
use settings::Settings;
use tokio_util::sync::CancellationToken;

use crate::{initial_load_pending, run_daily, run_initial, DailyOptions, InitialOptions};

/// Runs until `shutdown` is cancelled. A failed run is logged (and recorded
/// by the run itself); the schedule goes on.
pub async fn serve(
    settings: &Settings,
    pool: PgPool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let schedule = croner::Cron::new(&settings.loader.schedule)
        .parse()
        .with_context(|| {
            format!(
                "config: loader.schedule {:?} is not a cron expression",
                settings.loader.schedule
            )
        })?;
    tracing::info!(
        "Loader started; daily update schedule {:?} (UTC)",
        settings.loader.schedule
    );
    loop {
        if initial_load_pending(&pool).await? {
            tracing::info!("The initial load is not finished: running it first");
            if let Err(err) = run_initial(
                settings,
                pool.clone(),
                shutdown.clone(),
                InitialOptions::default(),
            )
            .await
            {
                tracing::error!("The initial load failed: {err:#}");
            }
        }
        if shutdown.is_cancelled() {
            break;
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
