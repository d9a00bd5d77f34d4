//! `worker`: a fetch worker of the fleet, and the fleet's command-line
//! tools. Wiring only; the command line and the work are in the library.

use std::process::ExitCode;

use worker::cli::{execute, Command, ABOUT};

fn main() -> ExitCode {
    let command = bootstrap::parse::<Command>("worker", ABOUT);
    bootstrap::main("worker", command, execute)
}
