//! `normalizer`: turns raw_data rows into typed processed_data rows, in
//! transactional batches. Wiring only; the command line and the work are in
//! the library.

use std::process::ExitCode;

use normalizer::cli::{execute, Command, ABOUT};

fn main() -> ExitCode {
    let command = bootstrap::parse::<Command>("normalizer", ABOUT);
    bootstrap::main("normalizer", command, execute)
}
