//! `loader`: Loads listings from the upstream API into raw_data: the initial load, then daily changes.

use std::process::ExitCode;

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
    /// Run until SIGTERM or SIGINT: the daily update on its schedule.
    Serve,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    bootstrap::main("loader", |service| async move {
        match cli.command {
            Command::Migrate => service.migrate().await,
            Command::Serve => {
                let pool = service.connect().await?;
                loader::serve(&service.settings, pool, bootstrap::shutdown_signal()).await
            }
        }
    })
}
