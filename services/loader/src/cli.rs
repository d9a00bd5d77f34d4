//! The command line: `loader initial | daily | serve`, plus bootstrap's
//! `migrate` and `check`. It calls the service's commands, never back.

use bootstrap::{Context, Shared};
use chrono::NaiveDate;
use clap::Subcommand;

use crate::{DailyOptions, InitialOptions};

/// `--help`'s one line.
pub const ABOUT: &str =
    "Loads listings from the upstream API into raw_data: the initial load, then daily changes";

#[derive(Subcommand)]
pub enum Command {
    #[command(flatten)]
    Shared(Shared),
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

impl bootstrap::Command for Command {
    bootstrap::shared_variant!();
}

/// Runs one of the loader's own subcommands.
pub async fn execute(ctx: Context, command: Command) -> anyhow::Result<()> {
    let Context {
        settings,
        pool,
        shutdown,
        ..
    } = ctx.clone();
    match command {
        Command::Shared(_) => unreachable!("bootstrap runs the shared subcommands"),
        Command::Initial { max_pages } => {
            let options = InitialOptions { max_pages };
            crate::run_initial(&settings, pool, shutdown, options)
                .await
                .map(drop)
        }
        Command::Daily { max_dates, date } => {
            let options = DailyOptions {
                max_dates,
                date,
                today: None,
            };
            crate::run_daily(&settings, pool, shutdown, options)
                .await
                .map(drop)
        }
        Command::Serve => crate::run(ctx).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        bootstrap::cli::<Command>("loader", ABOUT).debug_assert();
    }
}
