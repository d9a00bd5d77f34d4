//! `api`: serves processed_data to the frontend over an authenticated,
//! rate-limited HTTP API. Wiring only; see lib.rs.

use std::process::ExitCode;

use api::cli::{Cli, Command};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    bootstrap::main("api", |service| async move {
        match cli.command {
            Command::Migrate => service.migrate().await,
            Command::Check => service.check().await,
            Command::Serve => {
                let pool = service.connect().await?;
                // Refuse to start without a usable SECRET_KEY (exit code 2).
                let key = api::config::secret_key(&service.settings)?;
                api::serve(&service.settings, key, pool, bootstrap::shutdown_signal()).await
            }
            Command::Tokens(command) => {
                let pool = service.connect().await?;
                api::cli::tokens(&service.settings, &pool, command).await
            }
        }
    })
}
