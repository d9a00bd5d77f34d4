//! `api`: serves processed_data to the frontend over an authenticated,
//! rate-limited HTTP API. Wiring only; the command line and the work are in
//! the library.

use std::process::ExitCode;

use api::cli::{execute, Command, ABOUT};

fn main() -> ExitCode {
    let command = bootstrap::parse::<Command>("api", ABOUT);
    bootstrap::main("api", command, execute)
}
