//! The command line: what each subcommand does, in one place, so `main.rs`
//! only parses and wires. `migrate` (without `--tables`) and `check` are
//! bootstrap's; the others call `commands` (or `crate::run`), never back.

use std::path::PathBuf;

use bootstrap::{Context, Shared};
use clap::{Args, Parser, Subcommand};
use db::sync_tables::Direction;
use settings::SettingsError;

use crate::commands::{self, TableMigration, Transfer};

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
    /// Send the rows of the push tables changed since the last push to
    /// production (every row when production is not the one the last push
    /// went to, or with --full).
    Push(PushArgs),
    /// Bring the rows of the pull tables changed on production since the last pull back.
    Pull(PushArgs),
    /// Compare row counts and checksums of the push and pull tables (or
    /// --tables) on both sides; exit 1 naming the tables and keys that differ.
    Verify(VerifyArgs),
    /// Before switching production to a new database: every table of both
    /// (named with --from-env/--from-file and --to-env/--to-file), row
    /// count and checksum; exit 1 naming each table that differs.
    CutoverCheck(CutoverArgs),
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
    /// Send every row, whatever the marks say (rows already equal on the
    /// target are not rewritten).
    #[arg(long)]
    pub full: bool,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// Tables to compare (default: the push and pull tables).
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
}

/// Where a database URL comes from: never the command line itself, which
/// `ps` shows to every user of the machine.
#[derive(Args, Debug, Clone, Default)]
pub struct FromUrl {
    /// The environment variable holding the source database URL (default: DATABASE_URL).
    #[arg(long, value_name = "VAR", conflicts_with = "from_file")]
    pub from_env: Option<String>,
    /// A file whose first line is the source database URL.
    #[arg(long, value_name = "PATH")]
    pub from_file: Option<PathBuf>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ToUrl {
    /// The environment variable holding the target database URL (default: TARGET_DATABASE_URL).
    #[arg(long, value_name = "VAR", conflicts_with = "to_file")]
    pub to_env: Option<String>,
    /// A file whose first line is the target database URL.
    #[arg(long, value_name = "PATH")]
    pub to_file: Option<PathBuf>,
}

/// Either end, once parsed.
pub struct DatabaseUrl {
    env: Option<String>,
    file: Option<PathBuf>,
}

impl From<FromUrl> for DatabaseUrl {
    fn from(url: FromUrl) -> Self {
        Self {
            env: url.from_env,
            file: url.from_file,
        }
    }
}

impl From<ToUrl> for DatabaseUrl {
    fn from(url: ToUrl) -> Self {
        Self {
            env: url.to_env,
            file: url.to_file,
        }
    }
}

#[derive(Args)]
pub struct MigrateArgs {
    /// Copy these tables' rows (the table migration) instead of applying the schema.
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    #[command(flatten)]
    pub from: FromUrl,
    #[command(flatten)]
    pub to: ToUrl,
    /// Print per table what would be inserted and updated; write nothing.
    #[arg(long, requires = "tables")]
    pub dry_run: bool,
    /// Walk every row again instead of resuming above the target's greatest
    /// key (rows that changed on the source since are updated).
    #[arg(long, requires = "tables")]
    pub from_start: bool,
    /// Rows per batch (default: sync.batch_size).
    #[arg(long, requires = "tables")]
    pub batch_size: Option<usize>,
}

#[derive(Args)]
pub struct CutoverArgs {
    #[command(flatten)]
    pub from: FromUrl,
    #[command(flatten)]
    pub to: ToUrl,
}

impl bootstrap::Command for Command {
    fn shared(&self) -> Option<Shared> {
        match self {
            Self::Migrate(args) if args.tables.is_empty() => Some(Shared::Migrate),
            Self::Check => Some(Shared::Check),
            _ => None,
        }
    }

    /// The table migration and the cutover check work between the two
    /// databases they are given.
    fn uses_working_database(&self) -> bool {
        !matches!(self, Self::Migrate(_) | Self::CutoverCheck(_))
    }
}

/// Runs one of sync's own subcommands.
pub async fn execute(ctx: Context, command: Command) -> anyhow::Result<()> {
    let settings = &ctx.settings;
    match command {
        Command::Migrate(args) if args.tables.is_empty() => {
            unreachable!("bootstrap runs the shared subcommands")
        }
        Command::Migrate(args) => {
            let migration = TableMigration {
                from: DatabaseUrl::from(args.from)
                    .resolve("--from", || Ok(settings.secrets.database_url()?.to_owned()))?,
                to: DatabaseUrl::from(args.to).resolve("--to", || {
                    Ok(settings.secrets.target_database_url()?.to_owned())
                })?,
                tables: args.tables,
                dry_run: args.dry_run,
                from_start: args.from_start,
                batch_size: args.batch_size,
            };
            commands::migrate_tables(settings, &migration).await
        }
        Command::Check => unreachable!("bootstrap runs the shared subcommands"),
        Command::Push(args) => commands::transfer(&ctx, Direction::Push, &args.into()).await,
        Command::Pull(args) => commands::transfer(&ctx, Direction::Pull, &args.into()).await,
        Command::Verify(args) => commands::verify(&ctx, &args.tables).await,
        Command::CutoverCheck(args) => {
            let missing = || {
                Err(SettingsError::new(
                    "cutover-check needs both databases named",
                ))
            };
            let from = DatabaseUrl::from(args.from).resolve("--from", missing)?;
            let to = DatabaseUrl::from(args.to).resolve("--to", missing)?;
            commands::cutover_check(settings, &from, &to).await
        }
        Command::Serve => crate::run(ctx).await,
    }
}

impl From<PushArgs> for Transfer {
    fn from(args: PushArgs) -> Self {
        Self {
            dry_run: args.dry_run,
            prune: args.prune,
            full: args.full,
            batch_size: args.batch_size,
        }
    }
}

impl DatabaseUrl {
    /// The URL from the named variable or file, else `default`. A setup
    /// problem (exit 2) when the variable is unset or the file unreadable.
    fn resolve(
        &self,
        flag: &str,
        default: impl FnOnce() -> Result<String, SettingsError>,
    ) -> Result<String, SettingsError> {
        let url = match (&self.env, &self.file) {
            (Some(name), _) => std::env::var(name).unwrap_or_default(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|err| {
                    SettingsError::new(format!("{flag}-file {}: {err}", path.display()))
                })?
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
            (None, None) => return default(),
        };
        let url = url.trim().to_owned();
        if url.is_empty() {
            let source = match (&self.env, &self.file) {
                (Some(name), _) => format!("the variable {name} ({flag}-env) is not set"),
                (None, Some(path)) => format!("{} ({flag}-file) is empty", path.display()),
                (None, None) => unreachable!("handled above"),
            };
            return Err(SettingsError::new(format!(
                "{source}: it must hold a database URL"
            )));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_url_comes_from_the_variable_or_the_file_it_names_never_the_argument() {
        let cli = Cli::try_parse_from([
            "sync",
            "migrate",
            "--tables",
            "t",
            "--from-env",
            "OLD",
            "--to-file",
            "/run/url",
        ])
        .unwrap();
        let Command::Migrate(args) = cli.command else {
            panic!("not migrate")
        };
        assert_eq!(args.from.from_env.as_deref(), Some("OLD"));
        assert_eq!(args.to.to_file, Some(PathBuf::from("/run/url")));
        // A URL itself is no longer an argument.
        assert!(Cli::try_parse_from([
            "sync",
            "migrate",
            "--tables",
            "t",
            "--from",
            "postgres://u:p@h/d"
        ])
        .is_err());
    }

    #[test]
    fn a_named_variable_that_is_unset_is_a_setup_error_naming_it() {
        let url = DatabaseUrl {
            env: Some("SYNC_TEST_SURELY_UNSET_VARIABLE".into()),
            file: None,
        };
        let err = url.resolve("--from", || Ok("unused".into())).unwrap_err();
        assert!(
            err.to_string()
                .contains("SYNC_TEST_SURELY_UNSET_VARIABLE (--from-env) is not set"),
            "{err}"
        );
    }
}
