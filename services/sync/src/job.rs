//! The runs every entry point shares (the commands and `serve`): connect to
//! production, run a push or pull, compare tables, and log each run in
//! `operations_log`. Sits below both; knows nothing of the command line.

use anyhow::Context;
use db::sync_tables::Direction;
use db::PgPool;
use domain::operation::OperationType;
use settings::{Settings, SyncTable};
use tokio_util::sync::CancellationToken;

use crate::report;
use crate::run::{Ends, RunOptions, TableReport};
use crate::verify::{check_table, TableCheck};

/// A pool of at most `sync.target_max_connections` to production.
pub async fn connect_production(settings: &Settings) -> anyhow::Result<PgPool> {
    let url = settings.secrets.target_database_url()?;
    connect(settings, url, settings.sync.target_max_connections.get())
        .await
        .context("Production database unreachable (check TARGET_DATABASE_URL)")
}

/// A pool of at most `max` connections to `url`, named `sync`.
pub async fn connect(settings: &Settings, url: &str, max: u32) -> Result<PgPool, db::DbError> {
    let options = db::PoolOptions {
        max_connections: max,
        acquire_timeout: settings.database.acquire_timeout,
        application_name: "sync".to_owned(),
    };
    db::connect(url, &options).await
}

pub fn run_options(settings: &Settings, dry_run: bool, prune: bool, full: bool) -> RunOptions {
    RunOptions {
        batch_size: settings.sync.batch_size.get(),
        dry_run,
        prune,
        full,
        progress_interval: settings.sync.progress_interval,
    }
}

/// The operation type of a transfer direction.
pub fn operation(direction: Direction) -> OperationType {
    match direction {
        Direction::Push => OperationType::SyncPush,
        Direction::Pull => OperationType::SyncPull,
    }
}

/// One push or pull of the configured tables, logged (unless dry).
pub async fn transfer(
    ends: &Ends,
    direction: Direction,
    settings: &Settings,
    options: &RunOptions,
    shutdown: &CancellationToken,
) -> anyhow::Result<Vec<TableReport>> {
    let tables = match direction {
        Direction::Push => &settings.sync.push_tables,
        Direction::Pull => &settings.sync.pull_tables,
    };
    let started_at = chrono::Utc::now();
    if options.dry_run {
        tracing::info!("Dry run: nothing is written, state included");
    }
    let result = crate::run::run(direction, ends, tables, options, shutdown).await;
    if !options.dry_run {
        let outcome = result.as_ref().map(|r| report::transfer_details(r));
        report::record(&ends.working, operation(direction), started_at, outcome).await;
    }
    result
}

/// Compares `tables` on both sides, logs a line per table, and records the
/// run in `log`'s `operations_log` when given. Returns the checks.
pub async fn verify(
    source: &PgPool,
    target: &PgPool,
    tables: &[SyncTable],
    log: Option<&PgPool>,
) -> anyhow::Result<Vec<TableCheck>> {
    let started_at = chrono::Utc::now();
    let result = verify_all(source, target, tables).await;
    if let Some(working) = log {
        let outcome = result.as_ref().map(|c| report::verify_details(c));
        report::record(working, OperationType::SyncVerify, started_at, outcome).await;
    }
    result
}

async fn verify_all(
    source: &PgPool,
    target: &PgPool,
    tables: &[SyncTable],
) -> anyhow::Result<Vec<TableCheck>> {
    let mut a = source.acquire().await?;
    let mut b = target.acquire().await?;
    let mut checks = Vec::new();
    for table in tables {
        let key = (!table.key.is_empty()).then_some(table.key.as_slice());
        let check = check_table(&mut a, &mut b, &table.name, key)
            .await
            .with_context(|| format!("Failed to verify {}", table.name))?;
        if check.matches() {
            tracing::info!("{}", check.line());
        } else {
            tracing::error!("{}", check.line());
        }
        checks.push(check);
    }
    Ok(checks)
}
