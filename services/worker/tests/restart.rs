//! Postgres restarted under running workers: they reconnect and carry on,
//! with nothing lost and nothing doubled.

mod support;

use std::time::Duration;

use domain::fleet::TaskKind;
use sqlx::PgPool;
use test_support::origin::Origin;
use tokio_util::sync::CancellationToken;

use support::{count, fast, spawn_worker, wait_until};

#[tokio::test]
async fn workers_carry_on_after_a_postgres_restart_with_nothing_lost_or_doubled() {
    let server =
        tokio::task::spawn_blocking(|| pg_sandbox::PgSandbox::start(pg_sandbox::Profile::Fast))
            .await
            .unwrap()
            .unwrap();
    let admin = PgPool::connect(server.url()).await.unwrap();
    sqlx::query("CREATE DATABASE worker_restart")
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let url = server.url_for("worker_restart");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap();
    db::migrate(&pool).await.unwrap();

    let origin = Origin::start(Duration::from_millis(2)).await;
    let _proxies = support::proxies(&pool, 8).await;
    let tasks = 2000;
    let targets: Vec<String> = (0..tasks).map(|i| origin.url(&format!("/r/{i}"))).collect();
    db::tasks::insert(&pool, TaskKind::FetchUrl, &targets)
        .await
        .unwrap();
    let settings = fast(&[
        ("worker.slots", "4"),
        ("worker.heartbeat_interval", "1s"),
        ("worker.stale_after_beats", "5"),
        ("database.acquire_timeout", "2s"),
    ]);
    let stop = CancellationToken::new();
    let mut running = Vec::new();
    for _ in 0..2 {
        let (settings, stop) = (settings.clone(), stop.clone());
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(2))
            .connect(&url)
            .await
            .unwrap();
        running.push(spawn_worker(&settings, pool, &stop));
    }
    wait_until(Duration::from_secs(60), "some work done", || async {
        count(
            &pool,
            "SELECT count(*) FROM tasks WHERE status = 'completed'",
        )
        .await
            >= 300
    })
    .await;
    let server = tokio::task::spawn_blocking(move || {
        server.restart().unwrap();
        server
    })
    .await
    .unwrap();
    wait_until(
        Duration::from_secs(90),
        "every task completed after the restart",
        || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM tasks WHERE status = 'completed'")
                .fetch_one(&pool)
                .await
                .is_ok_and(|n| n == tasks as i64)
        },
    )
    .await;
    stop.cancel();
    for run in running {
        run.await.unwrap().unwrap();
    }
    assert_eq!(
        count(&pool, "SELECT count(*) FROM results").await,
        tasks as i64
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM results WHERE saves <> 1").await,
        0
    );
    assert!(
        origin.overlaps().is_empty(),
        "a task was fetched by two holders at once"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM proxies WHERE status <> 'free'").await,
        0
    );
    pool.close().await;
    drop(server);
}
