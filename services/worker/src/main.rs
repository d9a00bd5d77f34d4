//! `worker`: a fetch worker of the fleet, and the fleet's command-line tools.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "worker",
    version,
    about = "A fetch worker of the fleet: claims tasks and proxies through Postgres, stores results"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Healthcheck: exit 0 when the database answers with a current schema
    /// and no finished task of `worker run` here waited longer than
    /// worker.max_write_wait for its write.
    Check,
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
enum TasksCommand {
    /// Lines: URLs (fetch_url, render_url) or listing inner_ids (offer_refresh).
    /// URL tasks may also be JSON lines: {"url", "wait_for", "extract", "screenshot"}.
    Upload {
        file: PathBuf,
        #[arg(long, default_value = "fetch_url", value_parser = db::tasks::KINDS)]
        kind: String,
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
enum ProxiesCommand {
    /// Lines: host:port, host:port:user:pass or scheme://user:pass@host:port.
    Upload { file: PathBuf },
}

#[derive(Subcommand)]
enum ResultsCommand {
    /// Stream every result as JSON or CSV to stdout or --out.
    Export {
        #[arg(long, value_enum)]
        format: worker::export::Format,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    bootstrap::main("worker", |service| async move {
        let shutdown = bootstrap::shutdown_token();
        match cli.command {
            Command::Migrate => return service.migrate().await,
            Command::Check => {
                // A completer that cannot write fails the check even while
                // the database answers this process.
                let w = &service.settings.worker;
                worker::health::check(std::path::Path::new(&w.health_file), w.max_write_wait)?;
                return service.check().await;
            }
            _ => {}
        }
        let pool = service.connect().await?;
        let result = match cli.command {
            Command::Run => worker::run(&service.settings, pool.clone(), shutdown).await,
            Command::Cleanup => {
                tracing::info!("worker cleanup ready");
                worker::cleanup::run(
                    pool.clone(),
                    service.settings.worker.cleanup.clone(),
                    shutdown,
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
                let defaults = worker::page::TaskParams {
                    wait_for,
                    extract,
                    screenshot,
                };
                let profiles: Vec<String> =
                    service.settings.worker.extract.keys().cloned().collect();
                worker::upload::tasks_with(&pool, &file, &kind, &defaults, Some(&profiles))
                    .await
                    .and_then(worker::upload::fail_on_bad)
            }
            Command::Proxies(ProxiesCommand::Upload { file }) => {
                worker::upload::proxies(&pool, &file)
                    .await
                    .and_then(worker::upload::fail_on_bad)
            }
            Command::Status { json } => worker::status::print(&pool, json).await,
            Command::Results(ResultsCommand::Export { format, out }) => {
                worker::export::to_path(&pool, format, out.as_deref()).await
            }
            Command::Migrate | Command::Check => unreachable!("handled above"),
        };
        pool.close().await;
        result
    })
}
