//! `worker`: A fetch worker of the fleet: claims tasks and proxies through Postgres, stores results.

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
    /// Healthcheck: exit 0 when the database answers with a current schema.
    Check,
    /// Run until SIGTERM or SIGINT: claim and process tasks.
    Serve,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    bootstrap::main("worker", |service| async move {
        match cli.command {
            Command::Migrate => service.migrate().await,
            Command::Check => service.check().await,
            Command::Serve => {
                let shutdown = bootstrap::shutdown_signal();
                let pool = service.connect().await?;
                worker::serve(&service.settings, pool, shutdown).await
            }
        }
    })
}
