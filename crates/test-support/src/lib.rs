//! Helpers for carfeed's tests, shared by the services' integration tests.
//!
//! Tests still talk to real things: a real Postgres (each `#[sqlx::test]`
//! database) and the real service binaries (`env!("CARGO_BIN_EXE_<name>")`).
//! Nothing here is used outside tests.

pub mod cli;
pub mod origin;
pub mod proxy;

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
