//! `normalizer`: Turns raw_data rows into typed processed_data rows, in transactional batches.

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
    /// Run until SIGTERM or SIGINT: normalise whenever rows are waiting.
    Serve,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    bootstrap::main("normalizer", |service| async move {
        match cli.command {
            Command::Migrate => service.migrate().await,
            Command::Serve => {
                let pool = service.connect().await?;
                normalizer::serve(&service.settings, pool, bootstrap::shutdown_signal()).await
            }
        }
    })
}
