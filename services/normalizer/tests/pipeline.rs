//! A pipelined drain (`normalizer.pipeline_depth` > 1): several batches of
//! one instance in flight at once, each its own transaction, writing and
//! committing in the order they were claimed.

mod common;

use std::time::Duration;

use common::{count, insert, many, options, Gate};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

fn pipelined(batch_size: i64, depth: usize) -> normalizer::Options {
    let mut options = options(batch_size);
    options.pipeline_depth = depth;
    options
}

/// Batch transactions that claimed their rows (a claim locks rows, so the
/// transaction has an id) and wait idle: a pipelined batch waiting for its
/// turn to write. (The gate's transaction last ran its processed_data insert.)
const CLAIMED_AND_WAITING: &str = "SELECT count(*) FROM pg_stat_activity
     WHERE datname = current_database() AND state = 'idle in transaction'
       AND backend_xid IS NOT NULL AND query NOT LIKE '%processed_data%'";

const DONE: &str = "SELECT count(*) FROM raw_data WHERE is_processed";

async fn assert_every_row_normalised_once(pool: &PgPool, total: i64) {
    assert_eq!(
        count(pool, "SELECT count(*) FROM processed_data").await,
        total
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM processed_data WHERE updated_at <> created_at"
        )
        .await,
        0,
        "no row written twice"
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM raw_data WHERE NOT is_processed").await,
        0
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn batches_in_flight_in_one_instance_never_claim_the_same_row(pool: PgPool) {
    insert(&pool, &many(3_000)).await;
    let summary = normalizer::run_once(&pool, &pipelined(50, 3), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        (
            summary.created,
            summary.updated,
            summary.errors,
            summary.batches
        ),
        (3_000, 0, 0, 60)
    );
    assert_every_row_normalised_once(&pool, 3_000).await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn two_pipelined_instances_normalise_every_row_exactly_once(pool: PgPool) {
    insert(&pool, &many(6_000)).await;
    let instances: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                normalizer::run_once(&pool, &pipelined(100, 3), &CancellationToken::new())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = 0;
    let mut updated = 0;
    for instance in instances {
        let summary = instance.await.unwrap();
        created += summary.created;
        updated += summary.updated;
    }
    assert_eq!((created, updated), (6_000, 0), "no row written twice");
    assert_every_row_normalised_once(&pool, 6_000).await;
}

/// Batch 3 (rows 21-30) is held mid-write at a gate; the pipeline has
/// claimed batch 4 (rows 31-40) behind it. Batch 4 must not commit before
/// batch 3, and once shutdown is asked, nothing new is claimed: when the
/// gate opens, both commit whole and the drain ends.
#[sqlx::test(migrator = "db::MIGRATOR")]
async fn batches_commit_in_claim_order_and_shutdown_finishes_those_in_flight(pool: PgPool) {
    let rows = many(100);
    insert(&pool, &rows).await;
    let gate = Gate::close(&pool, &rows[24].inner_id).await;
    let shutdown = CancellationToken::new();
    let drain = {
        let (pool, shutdown) = (pool.clone(), shutdown.clone());
        tokio::spawn(async move { normalizer::run_once(&pool, &pipelined(10, 2), &shutdown).await })
    };
    gate.wait_for_a_batch(&pool).await;
    // Batch 4 is claimed and normalised, and waits for its turn.
    common::wait_for_count(&pool, CLAIMED_AND_WAITING, 1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(&pool, DONE).await,
        20,
        "batch 4 committed before batch 3"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM processed_data").await,
        20
    );
    assert_eq!(
        count(&pool, CLAIMED_AND_WAITING).await,
        1,
        "batch 4 still waits"
    );

    shutdown.cancel();
    gate.open().await;
    let summary = drain.await.unwrap().unwrap();
    assert_eq!((summary.created, summary.batches), (40, 4));
    assert_eq!(count(&pool, DONE).await, 40, "both batches in flight whole");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM processed_data").await,
        40
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM raw_data WHERE is_processed AND id > (SELECT min(id) + 39 FROM raw_data)"
        )
        .await,
        0,
        "nothing claimed after shutdown"
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_refused_record_in_a_pipelined_drain_costs_only_itself(pool: PgPool) {
    insert(&pool, &many(400)).await;
    // Row 117's price (batch 2 of 4): refused by Postgres alone.
    sqlx::query("ALTER TABLE processed_data ADD CONSTRAINT no_such_price CHECK (price <> 50819)")
        .execute(&pool)
        .await
        .unwrap();
    let summary = normalizer::run_once(&pool, &pipelined(100, 3), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        (summary.created, summary.errors, summary.batches),
        (399, 1, 4)
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM processed_data").await,
        399
    );
    let inner_id: String =
        sqlx::query_scalar("SELECT inner_id FROM raw_data WHERE normalize_error IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(inner_id, "60000117");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn an_infrastructure_error_in_a_pipelined_drain_leaves_only_whole_batches(pool: PgPool) {
    insert(&pool, &many(300)).await;
    // Not a refused value: every batch's write fails, none may half-commit.
    sqlx::query("ALTER TABLE processed_data RENAME COLUMN record TO record_gone")
        .execute(&pool)
        .await
        .unwrap();
    let err = normalizer::run_once(&pool, &pipelined(50, 3), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("processed_data"), "{err:#}");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM raw_data WHERE is_processed OR normalize_error IS NOT NULL"
        )
        .await,
        0
    );
    sqlx::query("ALTER TABLE processed_data RENAME COLUMN record_gone TO record")
        .execute(&pool)
        .await
        .unwrap();
    let summary = normalizer::run_once(&pool, &pipelined(50, 3), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!((summary.created, summary.batches), (300, 6));
    assert_every_row_normalised_once(&pool, 300).await;
}
