//! `sync`: replicates the final tables from the working database to
//! production, and reference tables back. Wiring only; the command line and
//! the work are in the library.

use std::process::ExitCode;

use clap::Parser;
use sync::cli::{execute, Cli};

fn main() -> ExitCode {
    bootstrap::main("sync", Cli::parse().command, execute)
}
