//! The loader service: loads listings from the upstream API into `raw_data`,
//! first the initial load (`/offers`), then the daily changes (`/changes`).
//!
//! `main.rs` wires settings, logs and the pool; everything the service does
//! lives here and takes its shutdown token as a parameter, so tests cancel
//! their own. Every run holds the loader's advisory lock (one run at a time
//! across replicas), writes one `operations_log` row, and NOTIFYs
//! `raw_data_changed` when it changed rows.

pub mod cli;
mod daily;
mod initial;
mod lock;
pub mod pipeline;
mod refetch;
mod report;
mod serve;

use anyhow::Context;
use chrono::{DateTime, Utc};
use db::PgPool;
use settings::Settings;
use tokio_util::sync::CancellationToken;
use upstream::{Client, ClientConfig};

pub use daily::DailyOptions;
pub use initial::InitialOptions;
pub use report::RunReport;
pub use serve::run;

/// `loader initial`: the initial load, resumed where it stopped.
pub async fn run_initial(
    settings: &Settings,
    pool: PgPool,
    shutdown: CancellationToken,
    options: InitialOptions,
) -> anyhow::Result<RunReport> {
    let mut report = RunReport::new("initial load");
    let Some(run) = begin_run(settings, &pool, &shutdown, &mut report).await? else {
        return Ok(report);
    };
    let result = initial::load(
        &run.client,
        &pool,
        &shutdown,
        options,
        &settings.loader,
        &mut report,
    )
    .await;
    end_run(&pool, run, &report, result).await?;
    Ok(report)
}

/// `loader daily`: every date from the resume point up to today, or one date.
pub async fn run_daily(
    settings: &Settings,
    pool: PgPool,
    shutdown: CancellationToken,
    options: DailyOptions,
) -> anyhow::Result<RunReport> {
    let mut report = RunReport::new("daily update");
    let Some(run) = begin_run(settings, &pool, &shutdown, &mut report).await? else {
        return Ok(report);
    };
    let result = daily::update(&run.client, &pool, &shutdown, options, &mut report).await;
    end_run(&pool, run, &report, result).await?;
    Ok(report)
}

/// Whether the initial load still has to run (never started, or unfinished:
/// the feed not read to its end, or failed pages left and rounds to go).
pub async fn initial_load_pending(pool: &PgPool) -> anyhow::Result<bool> {
    let state = db::load_state::get(pool)
        .await
        .context("Failed to read the initial-load cursor")?;
    Ok(state.is_none_or(|s| s.finished_at.is_none()))
}

/// Pages of the initial load that failed every attempt and are not stored
/// yet (the next `loader initial` or `loader serve` run fetches them again).
pub async fn missing_pages(pool: &PgPool) -> anyhow::Result<Vec<i32>> {
    let state = db::load_state::get(pool)
        .await
        .context("Failed to read the initial-load cursor")?;
    Ok(state.map(|s| s.failed_pages).unwrap_or_default())
}

/// A run under way: its lock, its client, when it started.
struct Run {
    lock: lock::RunLock,
    client: Client,
    started_at: DateTime<Utc>,
}

/// Takes the lock and builds the client; `None` (and `report.locked_out`)
/// when another run holds the lock.
async fn begin_run(
    settings: &Settings,
    pool: &PgPool,
    shutdown: &CancellationToken,
    report: &mut RunReport,
) -> anyhow::Result<Option<Run>> {
    let config =
        ClientConfig::from_settings(settings).context("Failed to configure the upstream client")?;
    let client = Client::new(config, shutdown.child_token())
        .context("Failed to build the upstream client")?;
    let Some(lock) = lock::try_acquire(pool).await? else {
        tracing::info!(
            "Another loader run is in progress; this {} does nothing",
            report.job
        );
        report.locked_out = true;
        return Ok(None);
    };
    Ok(Some(Run {
        lock,
        client,
        started_at: Utc::now(),
    }))
}

/// Records the run in operations_log (and NOTIFYs), then releases the lock.
async fn end_run(
    pool: &PgPool,
    run: Run,
    report: &RunReport,
    result: anyhow::Result<()>,
) -> anyhow::Result<()> {
    report::finish(pool, run.started_at, report, result.as_ref().err()).await;
    run.lock.release().await;
    result
}
