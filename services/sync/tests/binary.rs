//! The real `sync` binary: production unreachable, kill -9 in the middle of
//! a push and of a table migration, and `serve` pushing on the normaliser's
//! NOTIFY.

mod common;

use std::time::Duration;

use common::{contents, count, insert_processed, Production, BIN};
use nix::sys::signal::Signal;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use test_support::cli::{lines, run, Running};

const ROWS: usize = 20_000;
const BATCH: i64 = 100;

fn env<'a>(working: &'a str, production: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("DATABASE_URL", working),
        ("TARGET_DATABASE_URL", production),
        // A progress line after every batch: the tests kill on them.
        ("CARFEED__SYNC__PROGRESS_INTERVAL", "1ms"),
    ]
}

/// The number in a `<table>: N changed rows read` line.
fn rows_read(out: &[String]) -> i64 {
    let line = out
        .iter()
        .find(|l| l.contains("processed_data: ") && l.contains("changed rows read"))
        .unwrap_or_else(|| panic!("no report line in {out:?}"));
    let after = line.split("processed_data: ").nth(1).unwrap();
    after
        .split_whitespace()
        .next()
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap()
}

async fn wait_backends_gone(pool: &PgPool) {
    common::wait_for(
        pool,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sync'",
        0,
    )
    .await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn an_unreachable_production_is_one_line_a_non_zero_exit_and_the_working_side_untouched(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    insert_processed(&working, 0, 10).await;
    let url = test_support::database_url(&connect);
    let out = run(
        BIN,
        &["push"],
        &env(&url, "postgres://postgres@127.0.0.1:1/production"),
    );
    assert_eq!(out.status.code(), Some(1));
    let printed = lines(&out);
    assert_eq!(printed.len(), 1, "{printed:?}");
    assert!(
        printed[0].contains("Production database unreachable (check TARGET_DATABASE_URL)"),
        "{printed:?}"
    );
    assert_eq!(
        count(&working, "SELECT count(*) FROM operations_log").await,
        0
    );
    assert_eq!(
        count(&working, "SELECT count(*) FROM sync_table_state").await,
        0
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_push_killed_mid_run_resumes_sending_at_most_one_batch_twice_and_verify_passes(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let production = Production::create(&connect).await;
    insert_processed(&working, 0, ROWS).await;
    let url = test_support::database_url(&connect);
    let env = env(&url, &production.url);
    let batch = BATCH.to_string();

    let mut push = Running::start(BIN, &["push", "--batch-size", &batch], &env);
    for _ in 0..10 {
        push.wait_for_line("processed_data: Progress", Duration::from_secs(30));
    }
    push.signal(Signal::SIGKILL);
    push.wait_exit(Duration::from_secs(10));
    wait_backends_gone(&working).await;
    wait_backends_gone(&production.pool).await;
    let landed = count(&production.pool, "SELECT count(*) FROM processed_data").await;
    assert!(
        landed > 0 && landed < ROWS as i64,
        "killed too late: {landed}"
    );

    let out = run(BIN, &["push", "--batch-size", &batch], &env);
    assert!(out.status.success(), "{:?}", lines(&out));
    let read = rows_read(&lines(&out));
    assert!(
        read <= ROWS as i64 - landed + BATCH,
        "read {read} after {landed} had landed"
    );
    let out = run(BIN, &["verify"], &env);
    assert!(out.status.success(), "{:?}", lines(&out));
    production.drop_database().await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_table_migration_killed_mid_copy_resumes_above_the_target_and_ends_verified(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let production = Production::create(&connect).await;
    insert_processed(&working, 0, ROWS).await;
    let url = test_support::database_url(&connect);
    let env = env(&url, &production.url);
    let batch = BATCH.to_string();
    let args = [
        "migrate",
        "--tables",
        "processed_data",
        "--batch-size",
        &batch,
    ];

    let mut copy = Running::start(BIN, &args, &env);
    for _ in 0..10 {
        copy.wait_for_line("processed_data: Progress", Duration::from_secs(30));
    }
    copy.signal(Signal::SIGKILL);
    copy.wait_exit(Duration::from_secs(10));
    wait_backends_gone(&production.pool).await;
    let landed = count(&production.pool, "SELECT count(*) FROM processed_data").await;
    assert!(
        landed > 0 && landed < ROWS as i64,
        "killed too late: {landed}"
    );

    let out = run(BIN, &args, &env);
    let printed = lines(&out);
    assert!(out.status.success(), "{printed:?}");
    assert!(
        rows_read(&printed) <= ROWS as i64 - landed + BATCH,
        "{printed:?}"
    );
    assert!(
        printed
            .iter()
            .any(|l| l.contains("every table verified identical")),
        "{printed:?}"
    );
    assert_eq!(
        contents(&working, "processed_data", "inner_id").await,
        contents(&production.pool, "processed_data", "inner_id").await
    );
    production.drop_database().await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn serve_pushes_when_the_normaliser_announces_a_finished_run(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let production = Production::create(&connect).await;
    let url = test_support::database_url(&connect);
    let mut env = env(&url, &production.url);
    env.push(("CARFEED__SYNC__PUSH_INTERVAL", "1h"));
    let mut serve = Running::start(BIN, &["serve"], &env);
    serve.wait_for_line("sync ready", Duration::from_secs(30));
    // The first push runs at start; wait for it before adding rows.
    serve.wait_for_line("processed_data:", Duration::from_secs(30));
    insert_processed(&working, 0, 25).await;
    sqlx::query("SELECT pg_notify('normalizer_finished', '')")
        .execute(&working)
        .await
        .unwrap();
    common::wait_for(&production.pool, "SELECT count(*) FROM processed_data", 25).await;
    serve.signal(Signal::SIGTERM);
    assert!(serve.wait_exit(Duration::from_secs(10)).success());
    let pushes = count(
        &working,
        "SELECT count(*) FROM operations_log WHERE operation_type = 'sync_push' AND status = 'OK'",
    )
    .await;
    assert_eq!(pushes, 2);
    production.drop_database().await;
}
