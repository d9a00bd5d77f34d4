//! The `normalizer` binary as a user runs it: help, start-up checks, SIGTERM.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use test_support::cli::checks;

const BIN: &str = env!("CARGO_BIN_EXE_normalizer");

#[test]
fn help_describes_the_binary_and_its_subcommands() {
    checks::help_works(BIN);
    let out = test_support::cli::run(BIN, &["run", "--help"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--batch-size") && text.contains("--max-batches"),
        "{text}"
    );
    assert!(
        !text.contains("hold-before-commit"),
        "no test hook among the production flags (tests hold batches from their side): {text}"
    );
}

#[test]
fn a_missing_database_url_exits_2_with_one_line() {
    checks::missing_database_url_exits_2_with_one_line(BIN, &["run"]);
}

#[sqlx::test(migrations = false)]
async fn an_invalid_setting_exits_2_naming_the_key(_: PgPoolOptions, options: PgConnectOptions) {
    checks::invalid_setting_exits_2_naming_the_key(
        BIN,
        &["run"],
        &test_support::database_url(&options),
    );
}

#[sqlx::test(migrations = false)]
async fn run_refuses_an_unmigrated_database(_: PgPoolOptions, options: PgConnectOptions) {
    checks::refuses_an_unmigrated_database(BIN, &["run"], &test_support::database_url(&options));
}

#[sqlx::test(migrations = false)]
async fn migrate_then_serve_until_sigterm(_: PgPoolOptions, options: PgConnectOptions) {
    let url = test_support::database_url(&options);
    checks::migrate_applies_the_schema_once(BIN, &url);
    checks::serves_until_sigterm(
        BIN,
        &["serve"],
        &[("DATABASE_URL", &url)],
        "Normalizer serving",
    );
}

#[sqlx::test(migrations = false)]
async fn run_on_an_empty_queue_exits_0_and_logs_the_run(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let url = test_support::database_url(&options);
    checks::migrate_applies_the_schema_once(BIN, &url);
    let out = test_support::cli::run(BIN, &["run"], &[("DATABASE_URL", &url)]);
    assert!(out.status.success(), "{out:?}");
    let lines = test_support::cli::lines(&out);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[INFO] Normalisation run finished")),
        "{lines:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn check_fails_before_migrate_and_passes_after(_: PgPoolOptions, options: PgConnectOptions) {
    let url = test_support::database_url(&options);
    let env = [("DATABASE_URL", url.as_str())];
    let before = test_support::cli::run(BIN, &["check"], &env);
    assert_eq!(before.status.code(), Some(2), "{before:?}");
    checks::migrate_applies_the_schema_once(BIN, &url);
    let after = test_support::cli::run(BIN, &["check"], &env);
    assert!(after.status.success(), "{after:?}");
    assert!(
        String::from_utf8_lossy(&after.stdout).contains("normalizer: ok"),
        "{after:?}"
    );
}

#[test]
fn check_fails_when_the_database_is_unreachable() {
    // Port 1 on loopback: nothing listens there.
    let env = [("DATABASE_URL", "postgres://carfeed:x@127.0.0.1:1/carfeed")];
    let out = test_support::cli::run(BIN, &["check"], &env);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(test_support::cli::lines(&out).len(), 1, "{out:?}");
}

#[sqlx::test(migrations = false)]
async fn requeue_from_the_command_line_says_how_many_rows_went_back(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let url = test_support::database_url(&options);
    checks::migrate_applies_the_schema_once(BIN, &url);
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO raw_data (inner_id, change_type, source, is_processed, normalize_error)
         VALUES ('a', 'added', 'initial_load', true, NULL),
                ('b', 'added', 'initial_load', false, 'year: bad'),
                ('c', 'added', 'initial_load', false, 'year: bad')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let out = test_support::cli::run(
        BIN,
        &["requeue", "--errors", "--inner-id", "b", "--inner-id", "a"],
        &[("DATABASE_URL", &url)],
    );
    assert!(out.status.success(), "{out:?}");
    let lines = test_support::cli::lines(&out);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[INFO] Put 1 raw rows back in the queue")),
        "{lines:?}"
    );
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM raw_data WHERE NOT is_processed AND normalize_error IS NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(waiting, 1);
    pool.close().await;
}
