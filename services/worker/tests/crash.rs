//! The real `worker` binary killed with -9 and stopped with SIGTERM.

mod support;

use std::time::{Duration, Instant};

use db::tasks::Lease;
use domain::fleet::{TaskKind, WorkerStatus};
use nix::sys::signal::Signal;
use sqlx::PgPool;
use test_support::cli::Running;
use test_support::origin::Origin;
use tokio_util::sync::CancellationToken;

use support::{count, env_name, fast, spawn_worker, wait_until};

fn binary_env(url: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![("DATABASE_URL".to_owned(), url.to_owned())];
    for (k, v) in support::FAST.iter().chain(extra) {
        env.push((env_name(k), (*v).to_owned()));
    }
    env
}

fn start(url: &str, extra: &[(&str, &str)]) -> Running {
    let env = binary_env(url, extra);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut worker = Running::start(env!("CARGO_BIN_EXE_worker"), &["run"], &pairs);
    worker.wait_for_line("worker ready", Duration::from_secs(20));
    worker
}

async fn held_by(pool: &PgPool) -> Vec<(i64, i64, i64)> {
    sqlx::query_as("SELECT id, lease, worker_id FROM tasks WHERE status = 'running' ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_killed_workers_tasks_and_proxies_are_reclaimed_finished_elsewhere_and_its_late_completion_rejected(
    pool: PgPool,
) {
    let origin = Origin::start(Duration::from_secs(3)).await;
    let _proxies = support::proxies(&pool, 4).await;
    let targets: Vec<String> = (0..4).map(|i| origin.url(&format!("/k/{i}"))).collect();
    db::tasks::insert(&pool, TaskKind::FetchUrl, &targets)
        .await
        .unwrap();
    let url = test_support::database_url(&pool.connect_options());
    let victim = start(&url, &[("worker.slots", "4")]);
    wait_until(
        Duration::from_secs(10),
        "the victim holds all tasks",
        || async { held_by(&pool).await.len() == 4 },
    )
    .await;
    let held = held_by(&pool).await;
    let victim_id = held[0].2;
    victim.signal(Signal::SIGKILL);
    let killed = Instant::now();

    let settings = fast(&[]);
    let stop = CancellationToken::new();
    let rescuer = spawn_worker(&settings, pool.clone(), &stop);
    wait_until(
        Duration::from_secs(10),
        "the victim's claims reclaimed",
        || async {
            count(
                &pool,
                &format!("SELECT count(*) FROM tasks WHERE worker_id = {victim_id}"),
            )
            .await
                == 0
                && count(
                    &pool,
                    &format!("SELECT count(*) FROM proxies WHERE worker_id = {victim_id}"),
                )
                .await
                    == 0
        },
    )
    .await;
    let reclaimed = killed.elapsed();
    // heartbeat 200 ms x 3 beats + sweep every 200 ms, plus scheduling slack.
    assert!(
        reclaimed < Duration::from_secs(4),
        "reclaimed after {reclaimed:?}"
    );
    wait_until(
        Duration::from_secs(20),
        "another worker finished them",
        || async {
            count(
                &pool,
                "SELECT count(*) FROM tasks WHERE status = 'completed'",
            )
            .await
                == 4
        },
    )
    .await;
    assert_eq!(
        count(
            &pool,
            &format!("SELECT count(*) FROM results WHERE worker_id = {victim_id}")
        )
        .await,
        0
    );
    let status: String = sqlx::query_scalar("SELECT status FROM workers WHERE id = $1")
        .bind(victim_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, WorkerStatus::Dead.as_str());

    // The victim's completion arriving late under its old lease changes nothing.
    let mut conn = pool.acquire().await.unwrap();
    let (id, lease, _) = held[0];
    let late = db::claims::finish_claims(
        &mut conn,
        &[],
        &[Lease {
            id,
            lease,
            worker_id: victim_id,
        }],
        &[],
    )
    .await
    .unwrap();
    assert!(late.gone.is_empty());
    let saved = db::results::save_result(
        &mut conn,
        &[db::results::NewResult {
            task_id: id,
            lease,
            worker_id: victim_id,
            status_code: 200,
            headers: serde_json::json!({}),
            body: None,
            body_truncated: false,
        }],
    )
    .await
    .unwrap();
    assert!(saved.is_empty());
    assert_eq!(
        count(&pool, "SELECT count(*) FROM results WHERE saves <> 1").await,
        0
    );
    stop.cancel();
    rescuer.await.unwrap().unwrap();
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn sigterm_hands_everything_back_at_once_after_the_grace_period_and_exits_0(pool: PgPool) {
    let origin = Origin::start(Duration::from_secs(60)).await;
    let _proxies = support::proxies(&pool, 2).await;
    db::tasks::insert(
        &pool,
        TaskKind::FetchUrl,
        &[origin.url("/a"), origin.url("/b")],
    )
    .await
    .unwrap();
    let url = test_support::database_url(&pool.connect_options());
    let mut worker = start(
        &url,
        &[
            ("worker.grace_period", "500ms"),
            ("worker.request_timeout", "120s"),
        ],
    );
    wait_until(Duration::from_secs(10), "both tasks in flight", || async {
        count(&pool, "SELECT count(*) FROM tasks WHERE status = 'running'").await == 2
    })
    .await;
    let asked = Instant::now();
    worker.signal(Signal::SIGTERM);
    let exit = worker.wait_exit(Duration::from_secs(10));
    assert!(exit.success(), "{exit:?}: {:?}", worker.output());
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "took {:?}",
        asked.elapsed()
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM tasks WHERE status = 'pending'").await,
        2
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM proxies WHERE status = 'free'").await,
        2
    );
    let status: String = sqlx::query_scalar("SELECT status FROM workers")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, WorkerStatus::Stopped.as_str());
}
