//! What every carfeed binary does around its real work, and the one
//! contract between a binary and its service: `run(ctx: Context)`.
//!
//! `bootstrap::main` reads `.env`, loads and validates the settings, installs
//! the logs, starts a Tokio runtime, and then either runs a shared subcommand
//! itself (`migrate`, `check`) or installs the signal handlers, connects to
//! the working database (refusing a schema older than the binary) and hands
//! the service a [`Context`]. It turns the result into an exit code: 0 on
//! success, 2 for a setup problem (a bad setting, a missing `DATABASE_URL`,
//! a schema older than the binary), 1 for anything else. Setup problems print
//! exactly one line.
//!
//! It must not know what any service does: a service's command line says
//! which subcommands are shared ([`Command`]) and runs the others.

mod admin;
mod shutdown;

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use db::{DbError, PgPool};
use settings::{Settings, SettingsError};
use tokio_util::sync::CancellationToken;

pub use shutdown::{shutdown_signal, shutdown_token};

/// Every binary's allocator (the bench's too: it links this crate, so it
/// measures what ships). glibc's malloc and free were a fifth of the api's
/// CPU per request (perf during `bench api`); mimalloc's thread-local free
/// lists make them cheaper. Built without transparent huge pages
/// (`no_thp`): with them its arenas took the api's peak resident memory
/// from 20 to 30-44 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What a service runs with: its typed settings, the working database and
/// the shutdown token (cancelled on SIGTERM or SIGINT; tests cancel it
/// themselves). Every service's `run(ctx)` and command takes one.
#[derive(Debug, Clone)]
pub struct Context {
    /// The binary's name; the pool's `application_name`.
    pub name: &'static str,
    pub settings: Settings,
    pub pool: PgPool,
    pub shutdown: CancellationToken,
}

impl Context {
    pub fn new(
        name: &'static str,
        settings: Settings,
        pool: PgPool,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            name,
            settings,
            pool,
            shutdown,
        }
    }
}

/// The subcommands every service has; bootstrap runs them itself. A
/// service's `Command` enum takes them with `#[command(flatten)]`.
#[derive(clap::Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shared {
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Healthcheck: exit 0 when the database answers with a current schema.
    Check,
}

/// The command line of the service `name`: its subcommands `C` (which
/// flatten bootstrap's `migrate` and `check`), `--help` with `about`, and
/// `--version`.
pub fn cli<C: clap::Subcommand>(name: &'static str, about: &'static str) -> clap::Command {
    C::augment_subcommands(
        clap::Command::new(name)
            .version(env!("CARGO_PKG_VERSION"))
            .about(about)
            .subcommand_required(true)
            .arg_required_else_help(true),
    )
}

/// Parses this process's arguments with [`cli`]; `--help`, `--version` and
/// usage errors print and exit as clap does (usage errors with 2).
pub fn parse<C: clap::Subcommand>(name: &'static str, about: &'static str) -> C {
    let mut command = cli::<C>(name, about);
    let matches = command.get_matches_mut();
    C::from_arg_matches(&matches).unwrap_or_else(|err| err.format(&mut command).exit())
}

/// `Command::shared` for a service whose subcommand enum flattens
/// bootstrap's in a `Shared(Shared)` variant: write
/// `bootstrap::shared_variant!();` inside its `impl bootstrap::Command`.
#[macro_export]
macro_rules! shared_variant {
    () => {
        fn shared(&self) -> Option<$crate::Shared> {
            match self {
                Self::Shared(shared) => Some(*shared),
                _ => None,
            }
        }
    };
}

/// What bootstrap needs to know of a service's command line.
pub trait Command {
    /// `migrate` or `check`, run by bootstrap; `None`: the service's own.
    fn shared(&self) -> Option<Shared>;

    /// Whether the command works on the working database: bootstrap then
    /// connects before running it and refuses an old schema. A command that
    /// does not (sync's table copy between two named databases) gets a pool
    /// that never connects unless used.
    fn uses_working_database(&self) -> bool {
        true
    }

    /// What `check` asks beyond the database (the worker: its write health),
    /// asked first.
    fn check_more(&self, _settings: &Settings) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Runs a binary: settings, logs, then on a multi-threaded runtime either
/// the shared subcommand or `execute(ctx, command)`.
pub fn main<C, F, Fut>(name: &'static str, command: C, execute: F) -> ExitCode
where
    C: Command,
    F: FnOnce(Context, C) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    // A .env beside the binary's working directory fills in unset variables.
    let _ = dotenvy::dotenv();
    let loaded = settings::load().and_then(|s| match s.secrets.database_url() {
        Ok(_) => Ok(s),
        Err(missing) => Err(missing),
    });
    let settings = match loaded {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };
    let _log_guard = match telemetry::init(name, &settings.log) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("config: log.dir: {err:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command.shared() {
            Some(Shared::Migrate) => admin::migrate(name, &settings).await,
            Some(Shared::Check) => {
                command.check_more(&settings)?;
                admin::check(name, &settings).await
            }
            None => {
                // Signal handlers first, so a SIGTERM while connecting is
                // caught (and does not kill the process with the default
                // action).
                let shutdown = shutdown_token();
                let pool = if command.uses_working_database() {
                    admin::connect(name, &settings).await?
                } else {
                    admin::connect_lazy(name, &settings)?
                };
                let ctx = Context::new(name, settings, pool.clone(), shutdown);
                let result = execute(ctx, command).await;
                pool.close().await;
                result
            }
        }
    });
    // Don't let a stuck background task hold the process after the work is done.
    runtime.shutdown_timeout(Duration::from_secs(5));
    exit_code(name, result)
}

/// 2 for setup problems, 1 for anything else; the error is logged once.
fn exit_code(name: &str, result: anyhow::Result<()>) -> ExitCode {
    let Err(err) = result else {
        return ExitCode::SUCCESS;
    };
    if let Some(settings_error) = err.downcast_ref::<SettingsError>() {
        tracing::error!("{settings_error}");
        return ExitCode::from(2);
    }
    if let Some(db_error @ DbError::SchemaTooOld { .. }) = err.downcast_ref::<DbError>() {
        tracing::error!("{name}: {db_error}");
        return ExitCode::from(2);
    }
    tracing::error!("{name} failed: {err:#}");
    ExitCode::FAILURE
}
