//! The command line: what each subcommand does, in one place, so `main.rs`
//! only parses and wires.

use anyhow::{bail, Context};
use bootstrap::Service;
use clap::{Args, Parser, Subcommand};
use db::sync_tables::Direction;
use db::PgPool;
use domain::operation::OperationType;
use settings::{Settings, SyncTable};

use crate::commands;

#[derive(Parser)]
#[command(
    name = "sync",
    version,
    about = "Replicates the final tables from the working database (DATABASE_URL) to production \
             (TARGET_DATABASE_URL), and reference tables back"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Without --tables: apply pending schema migrations to the working
    /// database, then exit. With --tables a,b,c: the table migration, a full
    /// copy of those tables' rows between two databases whose schema exists
    /// on the target (default: working -> production), in batches,
    /// resumable after a kill, ending with verify.
    Migrate(MigrateArgs),
    /// Healthcheck: exit 0 when the working database answers with a current schema.
    Check,
    /// Send the rows of the push tables changed since the last push to production.
    Push(PushArgs),
    /// Bring the rows of the pull tables changed on production since the last pull back.
    Pull(PushArgs),
    /// Compare row counts and checksums of the push and pull tables (or
    /// --tables) on both sides; exit 1 naming the tables and keys that differ.
    Verify(VerifyArgs),
    /// Run until SIGTERM or SIGINT: pull on sync.pull_schedule, push every
    /// sync.push_interval and after each normaliser run.
    Serve,
}

#[derive(Args)]
pub struct PushArgs {
    /// Print per table what would be inserted, updated and deleted; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete target rows whose key no longer exists on the source.
    #[arg(long)]
    pub prune: bool,
    /// Rows per batch (default: sync.batch_size).
    #[arg(long)]
    pub batch_size: Option<usize>,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// Tables to compare (default: the push and pull tables).
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
}

#[derive(Args)]
pub struct MigrateArgs {
    /// Copy these tables' rows (the table migration) instead of applying the schema.
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// Source database URL (default: DATABASE_URL).
    #[arg(long, requires = "tables")]
    pub from: Option<String>,
    /// Target database URL (default: TARGET_DATABASE_URL).
    #[arg(long, requires = "tables")]
    pub to: Option<String>,
    /// Print per table what would be inserted and updated; write nothing.
    #[arg(long, requires = "tables")]
    pub dry_run: bool,
    /// Walk every row again instead of resuming above the target's greatest key.
    #[arg(long, requires = "tables")]
    pub from_start: bool,
    /// Rows per batch (default: sync.batch_size).
    #[arg(long, requires = "tables")]
    pub batch_size: Option<usize>,
}

pub async fn execute(service: Service, command: Command) -> anyhow::Result<()> {
    let settings = &service.settings;
    match command {
        Command::Migrate(args) if args.tables.is_empty() => service.migrate().await,
        Command::Migrate(args) => commands::migrate_tables(settings, &args).await,
        Command::Check => service.check().await,
        Command::Push(args) => transfer(&service, Direction::Push, &args).await,
        Command::Pull(args) => transfer(&service, Direction::Pull, &args).await,
        Command::Verify(args) => {
            let production = commands::connect_production(settings, None).await?;
            let working = service.connect().await?;
            let tables = verify_tables(settings, &args.tables);
            let differing = commands::verify(&working, &production, &tables, true).await?;
            if differing > 0 {
                bail!("{differing} table(s) differ between the working database and production");
            }
            Ok(())
        }
        Command::Serve => {
            let shutdown = bootstrap::shutdown_token();
            let working = service.connect().await?;
            crate::serve(settings, working, shutdown).await
        }
    }
}

async fn transfer(service: &Service, direction: Direction, args: &PushArgs) -> anyhow::Result<()> {
    let settings = &service.settings;
    // Production first: when it is unreachable the working side is untouched.
    let production = commands::connect_production(settings, None).await?;
    let working: PgPool = service.connect().await?;
    let ends = crate::Ends {
        working,
        production,
    };
    let mut options = commands::run_options(settings, args.dry_run, args.prune);
    if let Some(size) = args.batch_size {
        options.batch_size = size.max(1);
    }
    let shutdown = bootstrap::shutdown_token();
    commands::transfer(&ends, direction, settings, &options, &shutdown)
        .await
        .map(|_| ())
        .with_context(|| format!("sync {} failed", direction.as_str()))
}

fn verify_tables(settings: &Settings, names: &[String]) -> Vec<SyncTable> {
    let configured = settings
        .sync
        .push_tables
        .iter()
        .chain(&settings.sync.pull_tables)
        .cloned();
    if names.is_empty() {
        return configured.collect();
    }
    names
        .iter()
        .map(|name| {
            settings
                .sync
                .push_tables
                .iter()
                .chain(&settings.sync.pull_tables)
                .find(|t| &t.name == name)
                .cloned()
                .unwrap_or_else(|| SyncTable {
                    name: name.clone(),
                    key: Vec::new(),
                })
        })
        .collect()
}

/// The operation type of a transfer direction.
pub fn operation(direction: Direction) -> OperationType {
    match direction {
        Direction::Push => OperationType::SyncPush,
        Direction::Pull => OperationType::SyncPull,
    }
}
