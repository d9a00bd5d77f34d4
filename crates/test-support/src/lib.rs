//! Helpers for carfeed's tests, shared by the services' integration tests.
//!
//! Tests still talk to real things: a real Postgres (each `#[sqlx::test]`
//! database) and the real service binaries (`env!("CARGO_BIN_EXE_<name>")`).
//! Nothing here is used outside tests.

pub mod cli;
pub mod nginx;
pub mod origin;
pub mod proxy;
pub mod site;
pub mod tool;

use sqlx::postgres::PgConnectOptions;

/// A connection URL for the test database `options` points at, with the
/// credentials of the server `DATABASE_URL` names (sqlx::test keeps them).
pub fn database_url(options: &PgConnectOptions) -> String {
    let server = std::env::var("DATABASE_URL").expect("tests run with DATABASE_URL set");
    let database = options.get_database().unwrap_or("postgres");
    match server.rsplit_once('/') {
        Some((prefix, _)) if prefix.contains("://") && prefix.len() > "postgres://".len() => {
            format!("{prefix}/{database}")
        }
        _ => format!(
            "postgres://{}@{}:{}/{database}",
            options.get_username(),
            options.get_host(),
            options.get_port()
        ),
    }
}

/// The path of another crate's binary, as cargo built it beside the running
/// test (`target/<profile>/<name>`). `env!("CARGO_BIN_EXE_..")` only names a
/// crate's own binaries; a test of several services finds them here, built
/// by `cargo build` (scripts/test.sh builds every target first).
pub fn workspace_binary(name: &str) -> String {
    let test = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let binary = test
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join(name))
        .expect("the test runs from target/<profile>/deps");
    assert!(
        binary.is_file(),
        "{} is missing: build it first (cargo build --bins, or run scripts/test.sh)",
        binary.display()
    );
    binary.to_string_lossy().into_owned()
}
