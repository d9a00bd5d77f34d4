//! `worker`: a fetch worker of the fleet, and the fleet's command-line
//! tools. Wiring only; the command line and the work are in the library.

use std::process::ExitCode;

use clap::Parser;
use worker::cli::{execute, Cli};

fn main() -> ExitCode {
    bootstrap::main("worker", Cli::parse().command, execute)
}
