//! `sync serve` as deployed: production unreachable then back, a push on the
//! real normaliser's NOTIFY, and a pull missed while sync was down run at
//! start (before the loader's next run).

mod common;

use std::time::Duration;

use common::{contents, count, insert_processed, wait_for, Production, BIN};
use nix::sys::signal::Signal;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use test_support::cli::{run, Running};

const OFFER: &str = include_str!("../../../fixtures/upstream/offer.json");

fn env<'a>(working: &'a str, production: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("DATABASE_URL", working),
        ("TARGET_DATABASE_URL", production),
        ("CARFEED__SYNC__PUSH_INTERVAL", "1h"),
    ]
}

/// A loopback port nothing listens on (until `forward` binds it).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Production's server comes back at `port`: every connection there is
/// forwarded to the real server. Plain threads: the test's runtime is
/// blocked while it waits for the binary's log lines.
fn forward(port: u16, server: (String, u16)) {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(upstream) = std::net::TcpStream::connect(server.clone()) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                (upstream, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
}

/// The wait a "failed, retrying in X" line names.
fn retry_wait(line: &str) -> String {
    let after = line.split("retrying in ").nth(1).unwrap();
    after.split(':').next().unwrap().to_owned()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn serve_retries_an_unreachable_production_with_doubling_waits_and_pushes_once_it_is_back(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let production = Production::create(&connect).await;
    insert_processed(&working, 0, 40).await;
    let before = contents(&working, "processed_data", "inner_id").await;
    let port = free_port();
    let server_port = connect.get_port();
    let far = production
        .url
        .replace(&format!(":{server_port}/"), &format!(":{port}/"));
    assert_ne!(far, production.url);
    let url = test_support::database_url(&connect);
    let mut env = env(&url, &far);
    env.push(("CARFEED__SYNC__RETRY__INITIAL_INTERVAL", "200ms"));
    env.push(("CARFEED__SYNC__RETRY__MAX_INTERVAL", "800ms"));

    let mut serve = Running::start(BIN, &["serve"], &env);
    serve.wait_for_line("sync ready", Duration::from_secs(30));
    // One line per failed attempt, naming production; the waits double up
    // to the maximum.
    let mut waits = Vec::new();
    for _ in 0..4 {
        let line = serve.wait_for_line("sync push failed", Duration::from_secs(30));
        assert!(
            line.contains("Production database unreachable (check TARGET_DATABASE_URL)"),
            "{line}"
        );
        waits.push(retry_wait(&line));
    }
    assert_eq!(waits, ["200ms", "400ms", "800ms", "800ms"]);
    // The working database is untouched: no state, no log row, same rows.
    assert_eq!(
        count(&working, "SELECT count(*) FROM sync_table_state").await,
        0
    );
    assert_eq!(
        count(&working, "SELECT count(*) FROM operations_log").await,
        0
    );
    assert_eq!(
        contents(&working, "processed_data", "inner_id").await,
        before
    );

    // Production comes back: the next attempt pushes everything.
    let host = connect.get_host().to_owned();
    forward(port, (host, server_port));
    serve.wait_for_line("sync push succeeded after", Duration::from_secs(30));
    assert_eq!(
        contents(&production.pool, "processed_data", "inner_id").await,
        before
    );
    serve.signal(Signal::SIGTERM);
    assert!(serve.wait_exit(Duration::from_secs(10)).success());
    assert_eq!(
        count(
            &working,
            "SELECT count(*) FROM operations_log WHERE operation_type = 'sync_push' AND status = 'OK'"
        )
        .await,
        1
    );
    production.drop_database().await;
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn serve_pushes_what_the_real_normaliser_wrote_when_it_announces_its_run(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let production = Production::create(&connect).await;
    let url = test_support::database_url(&connect);
    let env = env(&url, &production.url);
    let mut serve = Running::start(BIN, &["serve"], &env);
    serve.wait_for_line("sync ready", Duration::from_secs(30));
    // The first push runs at start (nothing to send); the next is the NOTIFY's.
    serve.wait_for_line("processed_data:", Duration::from_secs(30));

    sqlx::query(
        "INSERT INTO raw_data (inner_id, change_type, created_at, data, source, active_status)
         SELECT id, 'added', now(), jsonb_set($1::jsonb, '{inner_id}', to_jsonb(id)), 'initial_load', 0
         FROM (SELECT (70000000 + g)::text AS id FROM generate_series(1, 30) AS g) AS t",
    )
    .bind(OFFER)
    .execute(&working)
    .await
    .unwrap();
    let normalizer = test_support::workspace_binary("normalizer");
    let out = run(&normalizer, &["run"], &[("DATABASE_URL", url.as_str())]);
    assert!(out.status.success(), "{:?}", test_support::cli::lines(&out));
    assert_eq!(
        count(&working, "SELECT count(*) FROM processed_data").await,
        30
    );

    serve.wait_for_line("The normaliser finished a run", Duration::from_secs(30));
    wait_for(&production.pool, "SELECT count(*) FROM processed_data", 30).await;
    assert_eq!(
        contents(&production.pool, "processed_data", "inner_id").await,
        contents(&working, "processed_data", "inner_id").await
    );
    serve.signal(Signal::SIGTERM);
    assert!(serve.wait_exit(Duration::from_secs(10)).success());
    production.drop_database().await;
}

const REF_TABLE: &str = "CREATE TABLE ref_models (
    mark text, model text, segment text,
    PRIMARY KEY (mark, model)
); SELECT sync_track('ref_models');";

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn serve_runs_a_scheduled_pull_it_missed_at_start_and_not_again_until_the_schedule(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let production = Production::create(&connect).await;
    for pool in [&working, &production.pool] {
        sqlx::raw_sql(REF_TABLE).execute(pool).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO ref_models SELECT 'BMW', 'M' || g, 'premium' FROM generate_series(1, 12) g",
    )
    .execute(&production.pool)
    .await
    .unwrap();
    let config =
        tempfile_with("sync:\n  pull_tables:\n    - name: ref_models\n      key: [mark, model]\n");
    let url = test_support::database_url(&connect);
    let mut env = env(&url, &production.url);
    env.push(("CONFIG_FILE", config.to_str().unwrap()));
    // The pull is scheduled once a year, long before the loader's run: the
    // last occurrence went by without a pull, so serve pulls at start.
    env.push(("CARFEED__SYNC__PULL_SCHEDULE", "0 0 1 1 *"));

    let mut serve = Running::start(BIN, &["serve"], &env);
    serve.wait_for_line(
        "The last scheduled pull did not run",
        Duration::from_secs(30),
    );
    serve.wait_for_line("ref_models:", Duration::from_secs(30));
    assert_eq!(
        contents(&working, "ref_models", "mark, model").await,
        contents(&production.pool, "ref_models", "mark, model").await
    );
    serve.signal(Signal::SIGTERM);
    assert!(serve.wait_exit(Duration::from_secs(10)).success());

    // Started again: the pull is up to date, it waits for its schedule.
    let mut again = Running::start(BIN, &["serve"], &env);
    again.wait_for_line("sync ready", Duration::from_secs(30));
    again.wait_for_line("processed_data:", Duration::from_secs(30));
    again.signal(Signal::SIGTERM);
    assert!(again.wait_exit(Duration::from_secs(10)).success());
    let output = again.output();
    assert!(
        !output.iter().any(|l| l.contains("did not run")),
        "{output:?}"
    );
    assert_eq!(
        count(
            &working,
            "SELECT count(*) FROM operations_log WHERE operation_type = 'sync_pull' AND status = 'OK'"
        )
        .await,
        1
    );
    std::fs::remove_file(config).unwrap();
    production.drop_database().await;
}

/// A config file of its own for one test (removed by the test).
fn tempfile_with(text: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("sync-serve-{}.yaml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, text).unwrap();
    path
}

/// The waits the lines containing `needle` name, in order.
fn waits_named(lines: &[String], needle: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains(needle))
        .map(|l| {
            let after = l.split(" in ").nth(1).unwrap();
            after.split(':').next().unwrap().to_owned()
        })
        .collect()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn serve_backs_off_while_the_working_database_refuses_connections_and_pushes_once_it_is_back(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = PgPool::connect_with(connect.clone()).await.unwrap();
    let production = Production::create(&connect).await;
    insert_processed(&working, 0, 40).await;
    let direct = test_support::database_url(&connect);
    let mut gate = common::Gate::new((connect.get_host().to_owned(), connect.get_port()));
    gate.open();
    let through_gate = gate.url(&direct);
    let env = vec![
        ("DATABASE_URL", through_gate.as_str()),
        ("TARGET_DATABASE_URL", production.url.as_str()),
        ("CARFEED__SYNC__PUSH_INTERVAL", "1s"),
        ("CARFEED__SYNC__RETRY__INITIAL_INTERVAL", "500ms"),
        ("CARFEED__SYNC__RETRY__MAX_INTERVAL", "2s"),
        ("CARFEED__DATABASE__ACQUIRE_TIMEOUT", "1s"),
    ];
    let mut serve = Running::start(BIN, &["serve"], &env);
    serve.wait_for_line("sync ready", Duration::from_secs(30));
    serve.wait_for_line(
        "processed_data: 40 changed rows read",
        Duration::from_secs(30),
    );
    let before = serve.output().len();

    // The working database refuses connections for 10 s; rows written to it
    // meanwhile (by a session that was not cut) wait for it to come back.
    gate.close();
    insert_processed(&working, 40, 7).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during: Vec<String> = serve.output()[before..].to_vec();
    gate.open();
    serve.wait_for_line("sync push succeeded after", Duration::from_secs(30));
    common::wait_for(&production.pool, "SELECT count(*) FROM processed_data", 47).await;
    // The LISTEN connection comes back on its own schedule (before or after
    // the push's success), and works.
    serve.wait_for_line_since(
        before,
        "LISTEN on normalizer_finished open again",
        Duration::from_secs(30),
    );
    sqlx::query("SELECT pg_notify('normalizer_finished', '')")
        .execute(&working)
        .await
        .unwrap();
    serve.wait_for_line(
        "The normaliser finished a run: pushing",
        Duration::from_secs(30),
    );
    serve.signal(Signal::SIGTERM);
    assert!(serve.wait_exit(Duration::from_secs(10)).success());
    let text = during.join("\n");

    // Pushes: one line per failed attempt, waits doubling to the maximum;
    // in 10 s that is a handful of attempts, not hundreds.
    let push_waits = waits_named(&during, "sync push failed, retrying in");
    assert!((3..=8).contains(&push_waits.len()), "{text}");
    let doubling = ["500ms", "1s", "2s", "2s", "2s", "2s", "2s", "2s"];
    assert_eq!(push_waits, doubling[..push_waits.len()], "{text}");
    // The LISTEN connection: lost once, then reopened on its own backoff.
    assert_eq!(
        during
            .iter()
            .filter(|l| l.contains("LISTEN connection lost, reopening in 500ms"))
            .count(),
        1,
        "{text}"
    );
    let listen_waits = waits_named(&during, "LISTEN on normalizer_finished failed, retrying in");
    assert!(listen_waits.len() <= 8, "{text}");
    assert_eq!(listen_waits, doubling[1..=listen_waits.len()], "{text}");
    // Nothing claims the normaliser ran, and the log stays short.
    assert!(!text.contains("The normaliser finished a run"), "{text}");
    assert!(during.len() < 40, "{} lines:\n{text}", during.len());
    assert_eq!(
        contents(&production.pool, "processed_data", "inner_id").await,
        contents(&working, "processed_data", "inner_id").await
    );
    production.drop_database().await;
}
