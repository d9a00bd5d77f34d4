//! `normalizer`: turns raw_data rows into typed processed_data rows, in
//! transactional batches. Wiring only; the command line and the work are in
//! the library.

use std::process::ExitCode;

use clap::Parser;
use normalizer::cli::{execute, Cli};

fn main() -> ExitCode {
    bootstrap::main("normalizer", Cli::parse().command, execute)
}
