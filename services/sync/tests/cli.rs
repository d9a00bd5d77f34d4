//! The `sync` binary as a user runs it: help, start-up checks, SIGTERM.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use test_support::cli::checks;

const BIN: &str = env!("CARGO_BIN_EXE_sync");

#[test]
fn help_describes_the_binary_and_its_subcommands() {
    checks::help_works(BIN);
}

#[test]
fn a_missing_database_url_exits_2_with_one_line() {
    checks::missing_database_url_exits_2_with_one_line(BIN, &["serve"]);
}

#[sqlx::test(migrations = false)]
async fn an_invalid_setting_exits_2_naming_the_key(_: PgPoolOptions, options: PgConnectOptions) {
    checks::invalid_setting_exits_2_naming_the_key(
        BIN,
        &["serve"],
        &test_support::database_url(&options),
    );
}

#[sqlx::test(migrations = false)]
async fn serve_refuses_an_unmigrated_database(_: PgPoolOptions, options: PgConnectOptions) {
    checks::refuses_an_unmigrated_database(BIN, &["serve"], &test_support::database_url(&options));
}

#[sqlx::test(migrations = false)]
async fn migrate_then_serve_until_sigterm(_: PgPoolOptions, options: PgConnectOptions) {
    let url = test_support::database_url(&options);
    checks::migrate_applies_the_schema_once(BIN, &url);
    checks::serves_until_sigterm(BIN, &["serve"], &[("DATABASE_URL", &url)], "sync ready");
}
