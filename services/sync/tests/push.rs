//! `sync push` between two real databases: full, incremental, commit-safe.

mod common;

use common::{contents, count, insert_processed, options, push, tuples_written, Production};
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_first_push_copies_everything_and_a_second_with_nothing_changed_writes_no_tuple(
    _: sqlx::postgres::PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let production = Production::create(&connect).await;
    insert_processed(&working, 0, 2_500).await;

    let first = push(&working, &production, &options(1_000)).await;
    assert_eq!(
        (first.read, first.inserted, first.updated),
        (2_500, 2_500, 0)
    );
    assert_eq!(first.batches, 3);
    assert_eq!(
        contents(&working, "processed_data", "inner_id").await,
        contents(&production.pool, "processed_data", "inner_id").await
    );
    let written = tuples_written(&production.pool, "processed_data").await;
    assert_eq!(written, 2_500);

    let second = push(&working, &production, &options(1_000)).await;
    assert_eq!((second.inserted, second.updated), (0, 0));
    assert_eq!(
        tuples_written(&production.pool, "processed_data").await,
        written
    );

    // 1% of the rows change: exactly those are written.
    sqlx::query("UPDATE processed_data SET price = price + 1 WHERE inner_id LIKE '%00' OR inner_id LIKE '%50'")
        .execute(&working)
        .await
        .unwrap();
    let third = push(&working, &production, &options(1_000)).await;
    assert_eq!((third.read, third.inserted, third.updated), (50, 0, 50));
    assert_eq!(
        tuples_written(&production.pool, "processed_data").await,
        written + 50
    );
    assert_eq!(
        contents(&working, "processed_data", "inner_id").await,
        contents(&production.pool, "processed_data", "inner_id").await
    );
    production.drop_database().await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_transaction_that_commits_after_the_push_read_its_mark_is_sent_by_the_next_push(
    _: sqlx::postgres::PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let production = Production::create(&connect).await;
    insert_processed(&working, 0, 100).await;
    push(&working, &production, &options(1_000)).await;

    // A writer starts first (its transaction id is below any later one), the
    // push runs while it is open, then it commits.
    let mut late = working.begin().await.unwrap();
    sqlx::query("UPDATE processed_data SET price = 1 WHERE inner_id = 'k000007'")
        .execute(&mut *late)
        .await
        .unwrap();
    // Another writer that starts after and commits before the push.
    sqlx::query("UPDATE processed_data SET price = 2 WHERE inner_id = 'k000008'")
        .execute(&working)
        .await
        .unwrap();
    let during = push(&working, &production, &options(1_000)).await;
    assert_eq!(during.updated, 1);
    late.commit().await.unwrap();

    let after = push(&working, &production, &options(1_000)).await;
    assert_eq!(after.updated, 1, "{after:?}");
    assert_eq!(
        contents(&working, "processed_data", "inner_id").await,
        contents(&production.pool, "processed_data", "inner_id").await
    );
    production.drop_database().await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_concurrent_writer_during_a_push_misses_nothing_by_the_next_push(
    _: sqlx::postgres::PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let production = Production::create(&connect).await;
    insert_processed(&working, 0, 5_000).await;
    let writer = {
        let working = working.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                let mut tx = working.begin().await.unwrap();
                sqlx::query("UPDATE processed_data SET price = price + 1 WHERE inner_id = $1")
                    .bind(format!("k{:06}", (i * 37) % 5_000))
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
                tx.commit().await.unwrap();
            }
        })
    };
    push(&working, &production, &options(100)).await;
    writer.await.unwrap();
    push(&working, &production, &options(100)).await;
    assert_eq!(
        contents(&working, "processed_data", "inner_id").await,
        contents(&production.pool, "processed_data", "inner_id").await
    );
    assert_eq!(
        count(&production.pool, "SELECT count(*) FROM processed_data").await,
        5_000
    );
    production.drop_database().await;
}
