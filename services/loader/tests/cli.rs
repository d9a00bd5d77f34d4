//! The `loader` binary as a user runs it: start-up checks and SIGTERM.

mod support;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use test_support::cli::checks;

const BIN: &str = env!("CARGO_BIN_EXE_loader");

#[test]
fn help_describes_the_binary() {
    checks::help_works(BIN);
}

#[test]
fn a_missing_database_url_exits_2_with_one_line() {
    checks::missing_database_url_exits_2_with_one_line(BIN, &["initial"]);
}

#[sqlx::test(migrations = false)]
async fn an_invalid_setting_exits_2_naming_the_key(_: PgPoolOptions, options: PgConnectOptions) {
    let url = test_support::database_url(&options);
    checks::invalid_setting_exits_2_naming_the_key(BIN, &["serve"], &url);
    let out = test_support::cli::run(
        BIN,
        &["initial"],
        &[
            ("DATABASE_URL", &url),
            ("CARFEED__LOADER__FAILED_PAGE_ROUNDS", "0"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        test_support::cli::lines(&out),
        vec!["config: loader.failed_page_rounds must be between 1 and 1000, got 0".to_owned()]
    );
}

#[sqlx::test(migrations = false)]
async fn initial_refuses_an_unmigrated_database(_: PgPoolOptions, options: PgConnectOptions) {
    checks::refuses_an_unmigrated_database(
        BIN,
        &["initial"],
        &test_support::database_url(&options),
    );
}

#[sqlx::test(migrations = false)]
async fn migrate_then_serve_until_sigterm(_: PgPoolOptions, options: PgConnectOptions) {
    let url = test_support::database_url(&options);
    checks::migrate_applies_the_schema_once(BIN, &url);
    let sim = support::sim(che168_sim::Faults::default()).await;
    let env: Vec<(String, String)> = support::env_for(&sim, "sim-key")
        .into_iter()
        .chain([("DATABASE_URL".to_owned(), url)])
        .collect();
    // SIGTERM while the initial load runs: it stops between pages, exit 0.
    // (On a blocking thread: the simulator answers on this test's runtime.)
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        checks::serves_until_sigterm(BIN, &["serve"], &env, "Loader started");
    })
    .await
    .unwrap();
}
