//! `api`: Serves processed_data to the frontend over an authenticated, rate-limited HTTP API.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "api",
    version,
    about = "Serves processed_data to the frontend over an authenticated, rate-limited HTTP API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Run until SIGTERM or SIGINT: serve the HTTP API.
    Serve,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    bootstrap::main("api", |service| async move {
        match cli.command {
            Command::Migrate => service.migrate().await,
            Command::Serve => {
                let pool = service.connect().await?;
                api::serve(&service.settings, pool, bootstrap::shutdown_signal()).await
            }
        }
    })
}
