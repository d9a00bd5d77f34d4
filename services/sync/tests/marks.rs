//! Marks bound to the production they were taken against: a push to
//! another production is full, `--full` forces one, and two pushes never
//! interleave (the second waits for the first's lock).

mod common;

use std::time::Duration;

use common::{contents, count, insert_processed, options, push, Production, BIN};
use db::sync_tables::{run_lock_key, Direction, RUN_LOCK_CLASS};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use test_support::cli::{lines, run, Running};

async fn production_id_of_marks(working: &PgPool) -> Option<String> {
    sqlx::query_scalar(
        "SELECT production_id FROM sync_table_state
         WHERE direction = 'push' AND table_name = 'processed_data'",
    )
    .fetch_one(working)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_push_to_a_fresh_target_after_pushes_to_another_sends_every_row(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let first = Production::create(&connect).await;
    insert_processed(&working, 0, 50).await;
    push(&working, &first, &options(20)).await;
    // One row changes and a second push to the same production sends it alone.
    sqlx::query("UPDATE processed_data SET price = 1 WHERE inner_id = 'k000003'")
        .execute(&working)
        .await
        .unwrap();
    let again = push(&working, &first, &options(20)).await;
    assert_eq!((again.read, again.updated), (1, 1));
    let first_id = db::sync_tables::database_id(&first.pool).await.unwrap();
    assert_eq!(
        production_id_of_marks(&working).await,
        Some(first_id.clone())
    );

    // Pointed at another database, the marks say nothing: every row goes.
    let second = Production::create(&connect).await;
    let report = push(&working, &second, &options(20)).await;
    assert_eq!((report.read, report.inserted), (50, 50), "{report:?}");
    assert_eq!(
        contents(&second.pool, "processed_data", "inner_id").await,
        contents(&working, "processed_data", "inner_id").await
    );
    let second_id = db::sync_tables::database_id(&second.pool).await.unwrap();
    assert_ne!(first_id, second_id);
    assert_eq!(production_id_of_marks(&working).await, Some(second_id));

    // And back to the first: full again, nothing to rewrite there.
    let back = push(&working, &first, &options(20)).await;
    assert_eq!((back.read, back.inserted, back.updated), (50, 0, 0));
    first.drop_database().await;
    second.drop_database().await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_full_push_mends_a_target_that_lost_rows_behind_the_marks(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let production = Production::create(&connect).await;
    insert_processed(&working, 0, 40).await;
    push(&working, &production, &options(15)).await;
    // Production loses and changes rows behind sync's back (a restore of an
    // older dump, a manual edit): an incremental push cannot see it.
    sqlx::query("DELETE FROM processed_data WHERE inner_id < 'k000010'")
        .execute(&production.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE processed_data SET price = 0 WHERE inner_id = 'k000020'")
        .execute(&production.pool)
        .await
        .unwrap();
    let incremental = push(&working, &production, &options(15)).await;
    assert_eq!(incremental.read, 0);
    assert_eq!(
        count(&production.pool, "SELECT count(*) FROM processed_data").await,
        30
    );

    let mut full = options(15);
    full.full = true;
    let report = push(&working, &production, &full).await;
    assert_eq!(
        (report.read, report.inserted, report.updated),
        (40, 10, 1),
        "{report:?}"
    );
    assert_eq!(
        contents(&production.pool, "processed_data", "inner_id").await,
        contents(&working, "processed_data", "inner_id").await
    );
    // The marks are whole again: the next push has nothing to send.
    let next = push(&working, &production, &options(15)).await;
    assert_eq!(next.read, 0);
    production.drop_database().await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn sync_push_full_from_the_command_line_says_so_and_sends_every_row(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let production = Production::create(&connect).await;
    insert_processed(&working, 0, 12).await;
    let url = test_support::database_url(&connect);
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("TARGET_DATABASE_URL", production.url.as_str()),
    ];
    let out = run(BIN, &["push"], &env);
    assert!(out.status.success(), "{:?}", lines(&out));
    let out = run(BIN, &["push", "--full"], &env);
    let printed = lines(&out);
    assert!(out.status.success(), "{printed:?}");
    assert!(
        printed
            .iter()
            .any(|l| l.contains("full push (--full)") && l.contains("processed_data")),
        "{printed:?}"
    );
    assert!(
        printed
            .iter()
            .any(|l| l.contains("processed_data: 12 changed rows read")),
        "{printed:?}"
    );
    production.drop_database().await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_second_push_waits_for_the_first_and_says_why(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let production = Production::create(&connect).await;
    insert_processed(&working, 0, 30).await;
    // The first push, held from the test side: its lock, on a session of ours.
    let mut first = working.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1, $2)")
        .bind(RUN_LOCK_CLASS)
        .bind(run_lock_key(Direction::Push))
        .execute(&mut *first)
        .await
        .unwrap();
    let url = test_support::database_url(&connect);
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("TARGET_DATABASE_URL", production.url.as_str()),
    ];
    let mut second = Running::start(BIN, &["push"], &env);
    let line = second.wait_for_line("Another sync push is running", Duration::from_secs(30));
    assert!(line.contains("waiting for it to finish"), "{line}");
    // It really waits: nothing is written while the first holds the lock.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        count(&production.pool, "SELECT count(*) FROM processed_data").await,
        0
    );
    assert_eq!(
        count(&working, "SELECT count(*) FROM sync_table_state").await,
        0
    );
    sqlx::query("SELECT pg_advisory_unlock($1, $2)")
        .bind(RUN_LOCK_CLASS)
        .bind(run_lock_key(Direction::Push))
        .execute(&mut *first)
        .await
        .unwrap();
    assert!(second.wait_exit(Duration::from_secs(30)).success());
    assert_eq!(
        contents(&production.pool, "processed_data", "inner_id").await,
        contents(&working, "processed_data", "inner_id").await
    );
    production.drop_database().await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn two_pushes_started_together_run_one_after_the_other_and_agree(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let production = Production::create(&connect).await;
    insert_processed(&working, 0, 3_000).await;
    let options = options(100);
    let (a, b) = tokio::join!(
        push(&working, &production, &options),
        push(&working, &production, &options)
    );
    // One of them sent every row into the empty table; the other, run
    // after it, found nothing left to send.
    let mut reads = [a.read, b.read];
    reads.sort_unstable();
    assert_eq!(reads, [0, 3_000], "{a:?} {b:?}");
    assert_eq!(a.inserted + b.inserted, 3_000);
    assert_eq!(
        contents(&production.pool, "processed_data", "inner_id").await,
        contents(&working, "processed_data", "inner_id").await
    );
    production.drop_database().await;
}
