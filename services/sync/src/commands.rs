//! The work behind each subcommand, one function each: connect what it
//! needs, run it, turn a difference into an error. The command line
//! (`cli.rs`) sits above; `serve` and the shared runs (`job.rs`) below.

use anyhow::{bail, Context as _};
use bootstrap::Context;
use db::sync_tables::Direction;
use db::PgPool;
use settings::{Settings, SyncTable};

use crate::cutover;
use crate::job;
use crate::run::Ends;
use crate::table_copy::{copy_table, CopyOptions};

/// `sync push` / `sync pull`.
#[derive(Debug, Clone, Default)]
pub struct Transfer {
    pub dry_run: bool,
    pub prune: bool,
    pub full: bool,
    pub batch_size: Option<usize>,
}

pub async fn transfer(ctx: &Context, direction: Direction, args: &Transfer) -> anyhow::Result<()> {
    let settings = &ctx.settings;
    // When production is unreachable the working side is untouched.
    let production = job::connect_production(settings).await?;
    let working: PgPool = ctx.pool.clone();
    let ends = Ends {
        working,
        production,
    };
    let mut options = job::run_options(settings, args.dry_run, args.prune, args.full);
    if let Some(size) = args.batch_size {
        options.batch_size = size.max(1);
    }
    job::transfer(&ends, direction, settings, &options, &ctx.shutdown)
        .await
        .map(|_| ())
        .with_context(|| format!("sync {} failed", direction.as_str()))
}

/// `sync verify [--tables]`: working against production.
pub async fn verify(ctx: &Context, names: &[String]) -> anyhow::Result<()> {
    let settings = &ctx.settings;
    let production = job::connect_production(settings).await?;
    let working = &ctx.pool;
    let tables = verify_tables(settings, names);
    let checks = job::verify(working, &production, &tables, Some(working)).await?;
    let differing = checks.iter().filter(|c| !c.matches()).count();
    if differing > 0 {
        bail!("{differing} table(s) differ between the working database and production");
    }
    Ok(())
}

fn verify_tables(settings: &Settings, names: &[String]) -> Vec<SyncTable> {
    let configured = || {
        settings
            .sync
            .push_tables
            .iter()
            .chain(&settings.sync.pull_tables)
    };
    if names.is_empty() {
        return configured().cloned().collect();
    }
    names
        .iter()
        .map(|name| {
            configured()
                .find(|t| &t.name == name)
                .cloned()
                .unwrap_or_else(|| SyncTable {
                    name: name.clone(),
                    key: Vec::new(),
                })
        })
        .collect()
}

/// `sync migrate --tables`: the URLs are resolved already (never taken from
/// the command line itself).
#[derive(Debug, Clone)]
pub struct TableMigration {
    pub tables: Vec<String>,
    pub from: String,
    pub to: String,
    pub dry_run: bool,
    pub from_start: bool,
    pub batch_size: Option<usize>,
}

/// Copy, then verify; an error on any difference.
pub async fn migrate_tables(settings: &Settings, args: &TableMigration) -> anyhow::Result<()> {
    let target = job::connect(
        settings,
        &args.to,
        settings.sync.target_max_connections.get(),
    )
    .await
    .context("Target database unreachable")?;
    let source = job::connect(settings, &args.from, 2)
        .await
        .context("Source database unreachable")?;
    let options = CopyOptions {
        batch_size: args
            .batch_size
            .unwrap_or(settings.sync.batch_size.get())
            .max(1),
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
    let checks = job::verify(&source, &target, &tables, None).await?;
    let differing = checks.iter().filter(|c| !c.matches()).count();
    if differing > 0 {
        bail!("{differing} table(s) differ after the copy");
    }
    tracing::info!("Table migration finished: every table verified identical");
    Ok(())
}

/// `sync cutover-check`: every table of both databases compared.
pub async fn cutover_check(settings: &Settings, from: &str, to: &str) -> anyhow::Result<()> {
    let source = job::connect(settings, from, 2)
        .await
        .context("Source (old production) database unreachable")?;
    let target = job::connect(settings, to, 2)
        .await
        .context("Target (new production) database unreachable")?;
    let findings = cutover::check_all(&source, &target).await?;
    let differing: Vec<&str> = findings
        .iter()
        .filter(|f| !f.matches())
        .map(|f| f.table.as_str())
        .collect();
    if !differing.is_empty() {
        bail!(
            "{} of {} table(s) differ: {} (do not switch yet)",
            differing.len(),
            findings.len(),
            differing.join(", ")
        );
    }
    tracing::info!(
        "Cutover check passed: all {} tables identical on both sides",
        findings.len()
    );
    Ok(())
}
