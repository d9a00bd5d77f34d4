//! The work behind each subcommand, shared by the CLI and `serve`: connect
//! to production, run a transfer or a verify, log it in `operations_log`.

use anyhow::Context;
use db::sync_tables::Direction;
use db::PgPool;
use domain::operation::OperationType;
use settings::{Settings, SyncTable};
use tokio_util::sync::CancellationToken;

use crate::cli::{operation, MigrateArgs};
use crate::report;
use crate::run::{Ends, RunOptions, TableReport};
use crate::table_copy::{copy_table, CopyOptions};
use crate::verify::{check_table, TableCheck};

/// A pool of at most `sync.target_max_connections` to production (or `url`).
pub async fn connect_production(settings: &Settings, url: Option<&str>) -> anyhow::Result<PgPool> {
    let url = match url {
        Some(url) => url,
        None => settings.secrets.target_database_url()?,
    };
    connect(settings, url, settings.sync.target_max_connections())
        .await
        .context("Production database unreachable (check TARGET_DATABASE_URL)")
}

async fn connect(settings: &Settings, url: &str, max: u32) -> Result<PgPool, db::DbError> {
    let options = db::PoolOptions {
        max_connections: max,
        acquire_timeout: settings.database.acquire_timeout,
        application_name: "sync".to_owned(),
    };
    db::connect(url, &options).await
}

pub fn run_options(settings: &Settings, dry_run: bool, prune: bool) -> RunOptions {
    RunOptions {
        batch_size: settings.sync.batch_size(),
        dry_run,
        prune,
        progress_interval: settings.sync.progress_interval,
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
    let result = crate::run(direction, ends, tables, options, shutdown).await;
    if !options.dry_run {
        let outcome = result.as_ref().map(|r| report::transfer_details(r));
        report::record(&ends.working, operation(direction), started_at, outcome).await;
    }
    result
}

/// Compares `tables` on both sides, prints a line per table, and logs the
/// run when `log` is set. Returns how many tables differ.
pub async fn verify(
    working: &PgPool,
    production: &PgPool,
    tables: &[SyncTable],
    log: bool,
) -> anyhow::Result<usize> {
    let started_at = chrono::Utc::now();
    let result = verify_all(working, production, tables).await;
    if log {
        let outcome = result.as_ref().map(|c| report::verify_details(c));
        report::record(working, OperationType::SyncVerify, started_at, outcome).await;
    }
    Ok(result?.iter().filter(|c| !c.matches()).count())
}

async fn verify_all(
    working: &PgPool,
    production: &PgPool,
    tables: &[SyncTable],
) -> anyhow::Result<Vec<TableCheck>> {
    let mut a = working.acquire().await?;
    let mut b = production.acquire().await?;
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

/// `sync migrate --tables`: copy, then verify; an error on any difference.
pub async fn migrate_tables(settings: &Settings, args: &MigrateArgs) -> anyhow::Result<()> {
    let from = match &args.from {
        Some(url) => url.clone(),
        None => settings.secrets.database_url()?.to_owned(),
    };
    let to = match &args.to {
        Some(url) => url.clone(),
        None => settings.secrets.target_database_url()?.to_owned(),
    };
    let target = connect(settings, &to, settings.sync.target_max_connections())
        .await
        .context("Target database unreachable")?;
    let source = connect(settings, &from, 2)
        .await
        .context("Source database unreachable")?;
    let options = CopyOptions {
        batch_size: args.batch_size.unwrap_or(settings.sync.batch_size()).max(1),
        dry_run: args.dry_run,
        from_start: args.from_start,
        progress_interval: settings.sync.progress_interval,
    };
    {
        let mut s = source.acquire().await?;
        let mut t = target.acquire().await?;
        for table in &args.tables {
            let report = copy_table(&mut s, &mut t, table, &options)
                .await
                .with_context(|| format!("Failed to copy {table}"))?;
            tracing::info!("{}", report.line(args.dry_run));
        }
    }
    if args.dry_run {
        return Ok(());
    }
    let tables: Vec<SyncTable> = args
        .tables
        .iter()
        .map(|name| SyncTable {
            name: name.clone(),
            key: Vec::new(),
        })
        .collect();
    let differing = verify(&source, &target, &tables, false).await?;
    if differing > 0 {
        anyhow::bail!("{differing} table(s) differ after the copy");
    }
    tracing::info!("Table migration finished: every table verified identical");
    Ok(())
}
