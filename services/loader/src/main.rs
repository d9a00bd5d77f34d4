//! `loader`: loads listings from the upstream API into raw_data: the initial
//! load, then daily changes. Wiring only; the command line and the work are
//! in the library.

use std::process::ExitCode;

use loader::cli::{execute, Command, ABOUT};

fn main() -> ExitCode {
    let command = bootstrap::parse::<Command>("loader", ABOUT);
    bootstrap::main("loader", command, execute)
}
