//! The command line: `worker run | cleanup | tasks | proxies | status |
//! results`, plus bootstrap's `migrate` and `check` (to which the worker
//! adds its write health). It calls the service's commands, never back.

use std::path::PathBuf;

use bootstrap::{Context, Shared};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Subcommand;
use domain::fleet::TaskKind;
use settings::Settings;

/// `--help`'s one line.
pub const ABOUT: &str =
    "A fetch worker of the fleet: claims tasks and proxies through Postgres, stores results";

#[derive(Subcommand)]
pub enum Command {
    /// `check` also fails when a finished task of `worker run` here waited
    /// longer than worker.max_write_wait for its write.
    #[command(flatten)]
    Shared(Shared),
    /// Run until SIGTERM or SIGINT: claim tasks and proxies, fetch, store results.
    Run,
    /// Run only the cleanup sweep (dead workers, their tasks and proxies, expired blocks, purge).
    Cleanup,
    /// Upload tasks from a text file, one per line.
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// Upload proxies from a text file, one per line.
    #[command(subcommand)]
    Proxies(ProxiesCommand),
    /// Tasks and proxies by status, workers, throughput over the last hour.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Export results.
    #[command(subcommand)]
    Results(ResultsCommand),
}

#[derive(Subcommand)]
pub enum TasksCommand {
    /// Lines: URLs (fetch_url, render_url) or listing inner_ids (offer_refresh).
    /// URL tasks may also be JSON lines: {"url", "wait_for", "extract", "screenshot"}.
    Upload {
        file: PathBuf,
        #[arg(
            long,
            default_value_t = TaskKind::FetchUrl,
            value_parser = PossibleValuesParser::new(db::tasks::KINDS).try_map(|word| word.parse::<TaskKind>())
        )]
        kind: TaskKind,
        /// Extraction profile (worker.extract.<PROFILE>) for every line.
        #[arg(long, value_name = "PROFILE")]
        extract: Option<String>,
        /// render_url: wait until this CSS selector matches (default: network idle).
        #[arg(long, value_name = "CSS")]
        wait_for: Option<String>,
        /// render_url: keep a PNG screenshot.
        #[arg(long)]
        screenshot: bool,
    },
}

#[derive(Subcommand)]
pub enum ProxiesCommand {
    /// Lines: host:port, host:port:user:pass or scheme://user:pass@host:port.
    Upload { file: PathBuf },
}

#[derive(Subcommand)]
pub enum ResultsCommand {
    /// Stream every result as JSON or CSV to stdout or --out.
    Export {
        #[arg(long, value_enum)]
        format: crate::export::Format,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

impl bootstrap::Command for Command {
    bootstrap::shared_variant!();

    /// A completer that cannot write fails the check even while the
    /// database answers this process.
    fn check_more(&self, settings: &Settings) -> anyhow::Result<()> {
        let w = &settings.worker;
        crate::health::check(std::path::Path::new(&w.health_file), w.max_write_wait)
    }
}

/// Runs one of the worker's own subcommands.
pub async fn execute(ctx: Context, command: Command) -> anyhow::Result<()> {
    let pool = &ctx.pool;
    match command {
        Command::Shared(_) => unreachable!("bootstrap runs the shared subcommands"),
        Command::Run => crate::run(ctx).await,
        Command::Cleanup => {
            tracing::info!("worker cleanup ready");
            crate::cleanup::run(
                pool.clone(),
                ctx.settings.worker.cleanup.clone(),
                ctx.shutdown.clone(),
            )
            .await;
            Ok(())
        }
        Command::Tasks(TasksCommand::Upload {
            file,
            kind,
            extract,
            wait_for,
            screenshot,
        }) => {
            let defaults = crate::page::TaskParams {
                wait_for,
                extract,
                screenshot,
            };
            let profiles: Vec<String> = ctx.settings.worker.extract.keys().cloned().collect();
            crate::upload::tasks_with(pool, &file, kind, &defaults, Some(&profiles))
                .await
                .and_then(crate::upload::fail_on_bad)
        }
        Command::Proxies(ProxiesCommand::Upload { file }) => crate::upload::proxies(pool, &file)
            .await
            .and_then(crate::upload::fail_on_bad),
        Command::Status { json } => crate::status::print(pool, json).await,
        Command::Results(ResultsCommand::Export { format, out }) => {
            crate::export::to_path(pool, format, out.as_deref()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        bootstrap::cli::<Command>("worker", ABOUT).debug_assert();
    }
}
