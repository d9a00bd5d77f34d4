//! The command line: `normalizer run | serve | requeue`, plus bootstrap's
//! `migrate` and `check`. It calls the service's commands, never back.

use bootstrap::{Context, Shared};
use clap::Subcommand;

use crate::Options;

/// `--help`'s one line.
pub const ABOUT: &str =
    "Turns raw_data rows into typed processed_data rows, in transactional batches";

#[derive(Subcommand)]
pub enum Command {
    #[command(flatten)]
    Shared(Shared),
    /// Drain the queue (raw rows with is_processed = false) once, then exit.
    Run {
        /// Rows per transaction (default: normalizer.batch_size).
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        batch_size: Option<i64>,
        /// Stop after this many batches.
        #[arg(long)]
        max_batches: Option<u64>,
    },
    /// Run until SIGTERM or SIGINT: normalise whenever rows are waiting.
    Serve,
    /// Put rows back in the queue, clearing their normalize_error (after a
    /// fix of the rules). Without options: every row.
    Requeue {
        /// Only rows whose normalisation failed.
        #[arg(long)]
        errors: bool,
        /// Only these listings (repeatable).
        #[arg(long = "inner-id", value_name = "ID")]
        inner_ids: Vec<String>,
    },
}

impl bootstrap::Command for Command {
    bootstrap::shared_variant!();
}

/// Runs one of the normaliser's own subcommands.
pub async fn execute(ctx: Context, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Shared(_) => unreachable!("bootstrap runs the shared subcommands"),
        Command::Run {
            batch_size,
            max_batches,
        } => {
            let mut options = Options::from_settings(&ctx.settings.normalizer);
            if let Some(batch_size) = batch_size {
                options.batch_size = batch_size;
            }
            options.max_batches = max_batches;
            crate::run_once(&ctx.pool, &options, &ctx.shutdown)
                .await
                .map(drop)
        }
        Command::Serve => crate::run(ctx).await,
        Command::Requeue { errors, inner_ids } => {
            let which = db::queue::Requeue {
                errors_only: errors,
                inner_ids,
            };
            crate::requeue(&ctx.pool, &which).await.map(drop)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        bootstrap::cli::<Command>("normalizer", ABOUT).debug_assert();
    }
}
