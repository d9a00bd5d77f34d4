//! `sync`: Replicates the final tables from the working database to production, and reference tables back.

use std::process::ExitCode;

use clap::Parser;
use sync::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    bootstrap::main("sync", |service| sync::cli::execute(service, cli.command))
}
