//! `normalizer`: turns raw_data rows into typed processed_data rows, in transactional batches.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "normalizer",
    version,
    about = "Turns raw_data rows into typed processed_data rows, in transactional batches"
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    bootstrap::main("normalizer", |service| async move {
        let settings = &service.settings.normalizer;
        let mut options = normalizer::Options::from_settings(settings);
        if let Command::Run {
            batch_size,
            max_batches,
        } = cli.command
        {
            options.batch_size = batch_size.unwrap_or(options.batch_size);
            options.max_batches = max_batches;
        }
        match cli.command {
            Command::Migrate => return service.migrate().await,
            Command::Check => return service.check().await,
            _ => {}
        }
        // Signal handlers first, so a SIGTERM during start-up is caught.
        let shutdown = bootstrap::shutdown_token();
        let pool = service.connect().await?;
        if let Command::Requeue { errors, inner_ids } = cli.command {
            let which = db::queue::Requeue {
                errors_only: errors,
                inner_ids,
            };
            normalizer::requeue(&pool, &which).await?;
        } else if matches!(cli.command, Command::Serve) {
            options.log_idle_runs = false;
            normalizer::serve(&pool, &options, settings.poll_interval, shutdown).await?;
        } else {
            normalizer::run_once(&pool, &options, &shutdown).await?;
        }
        pool.close().await;
        Ok(())
    })
}
