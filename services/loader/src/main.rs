//! `loader`: loads listings from the upstream API into raw_data: the initial
//! load, then daily changes. Wiring only; the work is in lib.rs.

use std::process::ExitCode;

use chrono::NaiveDate;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "loader",
    version,
    about = "Loads listings from the upstream API into raw_data: the initial load, then daily changes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Healthcheck: exit 0 when the database answers with a current schema.
    Check,
    /// The initial load of every listing (/offers), resumed where it stopped.
    Initial {
        /// Stop after this many pages (the next run resumes there).
        #[arg(long)]
        max_pages: Option<u32>,
    },
    /// The daily update (/changes): every date from the day after the last success up to today.
    Daily {
        /// Process at most this many dates.
        #[arg(long)]
        max_dates: Option<u32>,
        /// Process exactly this date (YYYY-MM-DD), for re-runs and backfills.
        #[arg(long)]
        date: Option<NaiveDate>,
    },
    /// Run until SIGTERM or SIGINT: finish an unfinished initial load, then the daily update on its schedule.
    Serve,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    bootstrap::main("loader", |service| async move {
        match cli.command {
            Command::Migrate => return service.migrate().await,
            Command::Check => return service.check().await,
            _ => {}
        }
        let pool = service.connect().await?;
        let settings = &service.settings;
        let shutdown = bootstrap::shutdown_token();
        match cli.command {
            Command::Migrate | Command::Check => Ok(()),
            Command::Initial { max_pages } => {
                let options = loader::InitialOptions { max_pages };
                loader::run_initial(settings, pool, shutdown, options)
                    .await
                    .map(drop)
            }
            Command::Daily { max_dates, date } => {
                let options = loader::DailyOptions {
                    max_dates,
                    date,
                    today: None,
                };
                loader::run_daily(settings, pool, shutdown, options)
                    .await
                    .map(drop)
            }
            Command::Serve => loader::serve(settings, pool, shutdown).await,
        }
    })
}
