//! `loader`: loads listings from the upstream API into raw_data: the initial
//! load, then daily changes. Wiring only; the command line and the work are
//! in the library.

use std::process::ExitCode;

use clap::Parser;
use loader::cli::{execute, Cli};

fn main() -> ExitCode {
    bootstrap::main("loader", Cli::parse().command, execute)
}
