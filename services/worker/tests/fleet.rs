//! The fleet in process: several `worker::run`s over one database, real
//! proxies (test-support) in front of a local origin or the simulator.

mod support;

use std::time::Duration;

use domain::fleet::{TaskKind, TaskStatus, WorkerStatus};
use sqlx::PgPool;
use test_support::origin::Origin;
use tokio_util::sync::CancellationToken;

use support::{count, fast, own_pool, spawn_worker, wait_until};

/// target, status, outcome, attempts, last_error
type TaskRow = (String, String, Option<String>, i32, Option<String>);

/// Runs `workers` workers with `slots` each over `tasks` fetch_url tasks and
/// checks every result is saved once and no task was fetched twice or by
/// two holders at the same time.
async fn fleet_over(pool: PgPool, workers: usize, slots: &str, tasks: usize) {
    // Warnings (late or failed heartbeats, dropped outcomes) show in the
    // test's output when it fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let origin = Origin::start(Duration::ZERO).await;
    let _proxies = support::proxies(&pool, 16).await;
    let targets: Vec<String> = (0..tasks).map(|i| origin.url(&format!("/t/{i}"))).collect();
    db::tasks::insert(&pool, TaskKind::FetchUrl, &targets)
        .await
        .unwrap();
    // Heartbeats slow enough that a worker starved of CPU by the other
    // tests is not declared dead (that path has its own tests).
    let settings = fast(&[
        ("worker.slots", slots),
        ("worker.heartbeat_interval", "1s"),
        ("worker.stale_after_beats", "5"),
    ]);
    let stop = CancellationToken::new();
    let mut running = Vec::new();
    for _ in 0..workers {
        let (settings, stop) = (settings.clone(), stop.clone());
        let pool = own_pool(&pool).await;
        running.push(spawn_worker(&settings, pool, &stop));
    }
    wait_until(Duration::from_secs(240), "every task completed", || async {
        count(
            &pool,
            "SELECT count(*) FROM tasks WHERE status = 'completed'",
        )
        .await
            == tasks as i64
    })
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
    assert_eq!(
        origin.total_hits(),
        tasks as u64,
        "each task fetched exactly once"
    );
    assert!(
        origin.overlaps().is_empty(),
        "a task was fetched by two holders at once"
    );
    assert_eq!(
        count(&pool, "SELECT sum(tasks_completed)::bigint FROM workers").await,
        tasks as i64
    );
    let busy: Vec<i64> = sqlx::query_scalar("SELECT DISTINCT worker_id FROM results")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(busy.len(), workers, "every worker did some of the work");
    let workers_left: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, status FROM workers WHERE status <> 'stopped' ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(workers_left, Vec::new(), "every worker row ends stopped");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM workers").await,
        workers as i64,
        "one row per worker"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM proxies WHERE status <> 'free'").await,
        0
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn two_workers_over_ten_thousand_tasks_save_every_result_exactly_once(pool: PgPool) {
    fleet_over(pool, 2, "8", 10_000).await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn eight_workers_over_ten_thousand_tasks_save_every_result_exactly_once(pool: PgPool) {
    fleet_over(pool, 8, "4", 10_000).await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn outcomes_404_completes_5xx_retries_then_fails_and_403_blocks_the_proxy_until_its_cooldown(
    pool: PgPool,
) {
    let origin = Origin::start(Duration::ZERO).await;
    let proxies = support::proxies(&pool, 1).await;
    // The only proxy is banned at first: the task is retried, the proxy rests.
    proxies[0].refuse_all(true);
    db::tasks::insert(&pool, TaskKind::FetchUrl, &[origin.url("/ok")])
        .await
        .unwrap();
    let settings = fast(&[
        ("worker.max_attempts", "3"),
        ("worker.proxy_cooldown", "600ms"),
    ]);
    let stop = CancellationToken::new();
    let run = spawn_worker(&settings, pool.clone(), &stop);
    wait_until(Duration::from_secs(10), "the proxy blocked", || async {
        count(
            &pool,
            "SELECT count(*) FROM proxies WHERE status = 'blocked'",
        )
        .await
            == 1
    })
    .await;
    let task: (String, Option<String>) = sqlx::query_as("SELECT status, last_error FROM tasks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(task.0, TaskStatus::Pending.as_str(), "retried, not failed");
    assert!(task.1.unwrap().contains("403"));
    proxies[0].refuse_all(false);
    // After its cooldown cleanup frees the proxy and the task completes.
    wait_until(Duration::from_secs(10), "the task completed", || async {
        count(
            &pool,
            "SELECT count(*) FROM tasks WHERE status = 'completed'",
        )
        .await
            == 1
    })
    .await;
    assert_eq!(count(&pool, "SELECT count(*) FROM results").await, 1);

    db::tasks::insert(
        &pool,
        TaskKind::FetchUrl,
        &[origin.url("/status/404"), origin.url("/status/503")],
    )
    .await
    .unwrap();
    wait_until(Duration::from_secs(10), "404 and 503 settled", || async {
        count(
            &pool,
            "SELECT count(*) FROM tasks WHERE status IN ('completed', 'failed')",
        )
        .await
            == 3
    })
    .await;
    let rows: Vec<TaskRow> = sqlx::query_as(
        "SELECT target, status, outcome, attempts, last_error FROM tasks ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows[1].1, TaskStatus::Completed.as_str());
    assert_eq!(rows[1].2.as_deref(), Some("not_found"));
    assert_eq!(
        (rows[2].1.as_str(), rows[2].3),
        (TaskStatus::Failed.as_str(), 3)
    );
    assert_eq!(rows[2].4.as_deref(), Some("HTTP 503"));
    assert_eq!(origin.hits("/status/503"), 3, "one fetch per attempt");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM results").await,
        1,
        "no result for 404 or 503"
    );
    stop.cancel();
    run.await.unwrap().unwrap();
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn offer_refresh_writes_the_listing_like_a_daily_update_and_a_404_marks_it_inactive(
    pool: PgPool,
) {
    let sim = che168_sim::spawn(che168_sim::SimConfig {
        listings: 50,
        // No simulated changes: every catalogue listing is on sale.
        changes_per_day: 0,
        ..Default::default()
    })
    .await
    .unwrap();
    let known = sim.catalogue().inner_id(3);
    // A listing we hold that the upstream no longer has.
    sqlx::query(
        "INSERT INTO raw_data (inner_id, upstream_id, change_type, data, source, is_processed)
         VALUES ('gone-1', 5, 'added', '{\"price\": 1}', 'initial_load', true)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let _proxies = support::proxies(&pool, 2).await;
    db::tasks::insert(
        &pool,
        TaskKind::OfferRefresh,
        &[known.clone(), "gone-1".into()],
    )
    .await
    .unwrap();
    let base = sim.base_url();
    let settings = fast(&[("upstream.base_url", base.as_str())]);
    let stop = CancellationToken::new();
    let run = spawn_worker(&settings, pool.clone(), &stop);
    wait_until(Duration::from_secs(10), "both refreshed", || async {
        count(
            &pool,
            "SELECT count(*) FROM tasks WHERE status = 'completed'",
        )
        .await
            == 2
    })
    .await;
    stop.cancel();
    run.await.unwrap().unwrap();
    let fresh: (String, i32, bool, bool) = sqlx::query_as(
        "SELECT source, active_status, is_processed, data ? 'price' FROM raw_data WHERE inner_id = $1",
    )
    .bind(&known)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(fresh, ("daily_update".into(), 0, false, true));
    let gone: (i32, String, bool) = sqlx::query_as(
        "SELECT active_status, change_type, is_processed FROM raw_data WHERE inner_id = 'gone-1'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(gone, (1, "removed".into(), false));
    assert_eq!(sim.requests("offer"), 2);
}

/// A worker's last heartbeat may be in flight while it marks itself
/// stopped: the heartbeat must not take `stopped` for "declared dead" and
/// register a new, never-ending row. Heartbeats every 5 ms make that
/// overlap near certain; cleanup is off, so nothing is declared dead.
#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_heartbeat_racing_the_shutdown_leaves_one_stopped_row_per_worker(pool: PgPool) {
    let settings = fast(&[
        ("worker.heartbeat_interval", "5ms"),
        ("worker.stale_after_beats", "100"),
        ("worker.cleanup.in_worker", "false"),
    ]);
    let rounds = 20;
    for _ in 0..rounds {
        let stop = CancellationToken::new();
        let run = spawn_worker(&settings, pool.clone(), &stop);
        tokio::time::sleep(Duration::from_millis(30)).await;
        stop.cancel();
        run.await.unwrap().unwrap();
    }
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, status FROM workers ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), rounds, "one row per worker run: {rows:?}");
    assert!(
        rows.iter()
            .all(|(_, status)| status == WorkerStatus::Stopped.as_str()),
        "every worker ended stopped: {rows:?}"
    );
}
