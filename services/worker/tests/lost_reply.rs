//! A claim that committed while its reply was lost (the connection broke
//! after Postgres committed it): the worker stays alive, so cleanup
//! never takes those tasks and proxies; the worker itself hands them back
//! and the task is done once.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use domain::fleet::TaskKind;
use sqlx::PgPool;
use test_support::origin::Origin;
use tokio_util::sync::CancellationToken;

use support::cut::CuttingRelay;
use support::{count, fast, spawn_worker, wait_until};

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_claim_whose_commit_reply_was_lost_is_handed_back_by_the_live_worker_and_done_once(
    pool: PgPool,
) {
    let origin = Origin::start(Duration::ZERO).await;
    let _proxies = support::proxies(&pool, 2).await;
    let relay = CuttingRelay::start(&pool.connect_options()).await;
    let through_relay = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(relay.options(&pool.connect_options()))
        .await
        .unwrap();
    // Slow heartbeats: the only reconciles are at start and after the
    // failed claim; no cleanup, so nothing but the worker can free them.
    let settings = fast(&[
        ("worker.heartbeat_interval", "30s"),
        ("worker.cleanup.in_worker", "false"),
    ]);
    let stop = CancellationToken::new();
    let run = spawn_worker(&settings, through_relay, &stop);
    wait_until(Duration::from_secs(10), "the worker registered", || async {
        count(&pool, "SELECT count(*) FROM workers WHERE status = 'alive'").await == 1
    })
    .await;
    // Idle claims return no rows; the first claim with rows is cut.
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay.arm();
    db::tasks::insert(&pool, TaskKind::FetchUrl, &[origin.url("/lost")])
        .await
        .unwrap();
    wait_until(Duration::from_secs(15), "the task completed", || async {
        count(
            &pool,
            "SELECT count(*) FROM tasks WHERE status = 'completed'",
        )
        .await
            == 1
    })
    .await;
    assert_eq!(relay.cuts.load(Ordering::SeqCst), 1, "one reply was lost");
    assert_eq!(
        count(&pool, "SELECT sum(uses)::bigint FROM proxies").await,
        2,
        "claimed (reply lost), handed back, claimed again"
    );
    assert_eq!(origin.hits("/lost"), 1, "fetched once");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM results WHERE saves = 1").await,
        1
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM workers WHERE status = 'alive'").await,
        1,
        "the worker stayed alive under its first id"
    );
    stop.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(
        count(&pool, "SELECT count(*) FROM proxies WHERE status <> 'free'").await,
        0
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM workers WHERE status = 'stopped'"
        )
        .await,
        1
    );
}
