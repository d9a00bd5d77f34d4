//! `api`: serves processed_data to the frontend over an authenticated,
//! rate-limited HTTP API. Wiring only; the command line and the work are in
//! the library.

use std::process::ExitCode;

use api::cli::{execute, Cli};
use clap::Parser;

fn main() -> ExitCode {
    bootstrap::main("api", Cli::parse().command, execute)
}
