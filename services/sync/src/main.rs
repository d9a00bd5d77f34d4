//! `sync`: Replicates the final tables from the working database to production, and reference tables back.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sync",
    version,
    about = "Replicates the final tables from the working database to production, and reference tables back"
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
    /// Run until SIGTERM or SIGINT: replicate on its schedule.
    Serve,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    bootstrap::main("sync", |service| async move {
        match cli.command {
            Command::Migrate => service.migrate().await,
            Command::Check => service.check().await,
            Command::Serve => {
                let shutdown = bootstrap::shutdown_signal();
                let pool = service.connect().await?;
                sync::serve(&service.settings, pool, shutdown).await
            }
        }
    })
}
