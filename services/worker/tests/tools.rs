//! The command-line tools as a user runs them: uploads, status, export.

mod support;

use std::time::Duration;

use domain::fleet::{ProxyStatus, TaskKind, TaskStatus};
use sqlx::PgPool;
use test_support::cli::{lines, run};
use test_support::origin::Origin;
use tokio_util::sync::CancellationToken;

use support::{count, fast, spawn_worker, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_worker");

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn bad_upload_lines_are_named_skipped_and_exit_1_while_the_good_ones_are_stored(
    pool: PgPool,
) {
    let url = test_support::database_url(&pool.connect_options());
    let env = [("DATABASE_URL", url.as_str())];
    let dir = tempfile::tempdir().unwrap();
    let proxies = dir.path().join("proxies.txt");
    std::fs::write(
        &proxies,
        "10.0.0.1:3128\n\n10.0.0.1:3128\nnot-a-proxy\n10.0.0.2:3128:bob:pw\nhttp://u:p@10.0.0.3:8080\n",
    )
    .unwrap();
    let out = run(BIN, &["proxies", "upload", proxies.to_str().unwrap()], &env);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = lines(&out).join("\n");
    assert!(text.contains("line 4"), "{text}");
    assert_eq!(count(&pool, "SELECT count(*) FROM proxies").await, 3);

    let tasks = dir.path().join("tasks.txt");
    std::fs::write(&tasks, "http://a.test/1\nhttp://a.test/2\n").unwrap();
    let out = run(BIN, &["tasks", "upload", tasks.to_str().unwrap()], &env);
    assert!(out.status.success(), "{out:?}");
    let again = run(BIN, &["tasks", "upload", tasks.to_str().unwrap()], &env);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(count(&pool, "SELECT count(*) FROM tasks").await, 2);

    let status = run(BIN, &["status", "--json"], &env);
    assert!(status.status.success(), "{status:?}");
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        json["tasks"][0],
        serde_json::json!({"status": TaskStatus::Pending.as_str(), "count": 2})
    );
    assert_eq!(
        json["proxies"][0],
        serde_json::json!({"status": ProxyStatus::Free.as_str(), "count": 3})
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn uploaded_tasks_come_back_in_the_json_and_csv_exports(pool: PgPool) {
    let origin = Origin::start(Duration::ZERO).await;
    let proxy = test_support::proxy::TestProxy::start(Some(("bob", "pw"))).await;
    let url = test_support::database_url(&pool.connect_options());
    let env = [("DATABASE_URL", url.as_str())];
    let dir = tempfile::tempdir().unwrap();
    let proxies = dir.path().join("proxies.txt");
    std::fs::write(
        &proxies,
        format!("127.0.0.1:{}:bob:pw\n", proxy.addr.port()),
    )
    .unwrap();
    assert!(
        run(BIN, &["proxies", "upload", proxies.to_str().unwrap()], &env)
            .status
            .success()
    );
    let targets: Vec<String> = (0..20)
        .map(|i| origin.url(&format!("/x/{i}?q=\"a,b\"")))
        .collect();
    let tasks = dir.path().join("tasks.txt");
    std::fs::write(&tasks, targets.join("\n")).unwrap();
    assert!(run(
        BIN,
        &[
            "tasks",
            "upload",
            tasks.to_str().unwrap(),
            "--kind",
            TaskKind::FetchUrl.as_str()
        ],
        &env
    )
    .status
    .success());
    // The upload left the planner statistics the claims need (db::tasks::
    // refresh_planner_stats): a never-analysed table has reltuples -1.
    let planned_rows: f32 =
        sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE relname = 'tasks'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        planned_rows, 20.0,
        "the upload refreshes the statistics of tasks"
    );

    let settings = fast(&[]);
    let stop = CancellationToken::new();
    let worker = spawn_worker(&settings, pool.clone(), &stop);
    wait_until(Duration::from_secs(20), "all fetched", || async {
        count(
            &pool,
            "SELECT count(*) FROM tasks WHERE status = 'completed'",
        )
        .await
            == 20
    })
    .await;
    stop.cancel();
    worker.await.unwrap().unwrap();
    assert!(
        proxy.forwarded() >= 20,
        "went through the authenticated proxy"
    );

    let json_path = dir.path().join("out.json");
    let out = run(
        BIN,
        &[
            "results",
            "export",
            "--format",
            "json",
            "--out",
            json_path.to_str().unwrap(),
        ],
        &env,
    );
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let mut exported: Vec<String> = rows
        .iter()
        .map(|r| r["target"].as_str().unwrap().to_owned())
        .collect();
    let mut stored: Vec<String> = sqlx::query_scalar("SELECT target FROM tasks")
        .fetch_all(&pool)
        .await
        .unwrap();
    exported.sort();
    stored.sort();
    assert_eq!(exported, stored);

    let out = run(BIN, &["results", "export", "--format", "csv"], &env);
    assert!(out.status.success(), "{out:?}");
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let mut from_csv: Vec<String> = reader
        .records()
        .map(|r| r.unwrap().get(2).unwrap().to_owned())
        .collect();
    from_csv.sort();
    assert_eq!(from_csv, stored);
}
