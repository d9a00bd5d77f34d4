//! kill -9 in the middle of a batch, with the real `normalizer` binary: no
//! partial rows, the batch is redone, nothing is done twice.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{count, insert, many, Gate};
use nix::sys::signal::Signal;
use sqlx::PgPool;
use test_support::cli::Running;

const BIN: &str = env!("CARGO_BIN_EXE_normalizer");

/// Every raw row marked processed has its processed_data row and no other
/// row exists: a batch is all there or not at all.
async fn assert_no_partial_batch(pool: &PgPool) {
    // The killed backend may still be rolling back: wait until it is gone.
    common::wait_for_count(
        pool,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'normalizer'",
        0,
        Duration::from_secs(10),
    )
    .await;
    let processed = count(pool, "SELECT count(*) FROM raw_data WHERE is_processed").await;
    let written = count(pool, "SELECT count(*) FROM processed_data").await;
    assert_eq!(
        processed, written,
        "processed raw rows and processed_data rows differ"
    );
    let orphans = count(
        pool,
        "SELECT count(*) FROM processed_data p JOIN raw_data r ON r.id = p.raw_id WHERE NOT r.is_processed",
    )
    .await;
    assert_eq!(orphans, 0);
}

/// Finishes the queue with a clean run and checks nothing was done twice.
async fn finish_and_check_exactly_once(pool: &PgPool, url: &str, total: i64, before: i64) {
    let out = test_support::cli::run(
        BIN,
        &["run", "--batch-size", "50"],
        &[("DATABASE_URL", url)],
    );
    assert!(out.status.success(), "{:?}", test_support::cli::lines(&out));
    assert_eq!(
        count(pool, "SELECT count(*) FROM processed_data").await,
        total
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM raw_data WHERE NOT is_processed").await,
        0
    );
    // A row normalised twice would have been updated after it was created.
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM processed_data WHERE updated_at <> created_at"
        )
        .await,
        0
    );
    let details: String = sqlx::query_scalar(
        "SELECT details FROM operations_log WHERE operation_type = 'normalization' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let created = total - before;
    assert!(
        details.starts_with(&format!(
            "processed={created} created={created} updated=0 errors=0"
        )),
        "{details}"
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn kill_9_while_a_batch_is_open_loses_nothing_and_redoes_nothing(pool: PgPool) {
    let url = test_support::database_url(&pool.connect_options());
    let rows = many(1_000);
    insert(&pool, &rows).await;
    // Batch 4 (rows 301-400) is held open mid-write by the test, from outside.
    let gate = Gate::close(&pool, &rows[349].inner_id).await;

    let mut normalizer = Running::start(
        BIN,
        &["run", "--batch-size", "100"],
        &[("DATABASE_URL", &url), ("CARFEED__LOG__LEVEL", "debug")],
    );
    normalizer.wait_for_line("Stored batch 3 ", Duration::from_secs(30));
    // Batch 4 is now claimed, partly written and waiting at the gate.
    gate.wait_for_a_batch(&pool).await;
    normalizer.signal(Signal::SIGKILL);
    normalizer.wait_exit(Duration::from_secs(10));
    // The orphaned backend finishes its statement, finds its client gone
    // and rolls back; it never sees a COMMIT.
    gate.open().await;

    assert_no_partial_batch(&pool).await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM processed_data").await,
        300,
        "exactly the three committed batches"
    );
    finish_and_check_exactly_once(&pool, &url, 1_000, 300).await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn kill_9_at_random_moments_over_many_batches_keeps_every_batch_whole(pool: PgPool) {
    let url = test_support::database_url(&pool.connect_options());
    insert(&pool, &many(3_000)).await;
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    for round in 0..3u32 {
        let delay = 150 + u64::from(seed.wrapping_mul(round + 7) % 400);
        let mut normalizer = Running::start(
            BIN,
            &["run", "--batch-size", "50"],
            &[("DATABASE_URL", &url)],
        );
        tokio::time::sleep(Duration::from_millis(delay)).await;
        normalizer.signal(Signal::SIGKILL);
        normalizer.wait_exit(Duration::from_secs(10));
        assert_no_partial_batch(&pool).await;
        let done = count(&pool, "SELECT count(*) FROM processed_data").await;
        eprintln!("round {round}: killed after {delay} ms, {done} rows committed so far");
    }
    let before = count(&pool, "SELECT count(*) FROM processed_data").await;
    assert_eq!(
        before % 50,
        0,
        "only whole batches of 50 were committed: {before}"
    );
    assert!(before < 3_000, "the kills came after the queue was drained");
    finish_and_check_exactly_once(&pool, &url, 3_000, before).await;
}
