//! kill -9 of the real `loader` binary mid-run, and Postgres restarted
//! mid-run: the next run completes and the final `raw_data` equals an
//! uninterrupted run's.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use che168_sim::{Faults, RunningSim};
use loader::{run_daily, run_initial, DailyOptions, InitialOptions};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

fn loader(sim: &RunningSim, pool: &PgPool, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loader"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", support::database_url(pool))
        .envs(support::env_for(sim, "sim-key"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Starts the binary, waits until `ready` says enough was stored, kills it with SIGKILL.
async fn kill_when(mut child: Child, pool: &PgPool, query: &str, at_least: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored: i64 = sqlx::query_scalar(query).fetch_one(pool).await.unwrap();
        if stored >= at_least {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the loader stored only {stored} in time"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the loader exited before the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    kill(
        Pid::from_raw(i32::try_from(child.id()).unwrap()),
        Signal::SIGKILL,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not finished");
}

/// Runs the binary to its end (off the runtime: the simulator lives on it).
async fn run_to_end(mut cmd: Command) {
    let status = tokio::task::spawn_blocking(move || cmd.status().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "the loader failed: {status}");
}

async fn clean_run(sim: &RunningSim, pool: &PgPool, daily: bool) -> (i64, String) {
    support::reset(pool).await;
    sim.set_faults(Faults::default());
    let settings = support::settings_for(sim);
    support::initial_load(&settings, pool).await;
    if daily {
        support::mark_done(
            pool,
            support::today() - chrono::Duration::days(i64::from(support::DAYS)),
        )
        .await;
        run_daily(
            &settings,
            pool.clone(),
            CancellationToken::new(),
            DailyOptions::default(),
        )
        .await
        .unwrap();
    }
    support::checksum(pool).await
}

fn slow() -> Faults {
    Faults {
        latency: Duration::from_millis(25),
        ..Faults::default()
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn kill_9_during_the_initial_load_then_a_rerun_gives_the_uninterrupted_table(pool: PgPool) {
    let sim = support::sim(slow()).await;
    let child = loader(&sim, &pool, &["initial"]).spawn().unwrap();
    kill_when(child, &pool, "SELECT count(*) FROM raw_data", 200).await;
    let (stored, finished): (i64, bool) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM raw_data), finished_at IS NOT NULL FROM initial_load_state",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        stored < support::LISTINGS as i64 && !finished,
        "killed mid-run ({stored} stored)"
    );
    run_to_end(loader(&sim, &pool, &["initial"])).await;
    let (pages, records): (i32, i64) =
        sqlx::query_as("SELECT pages_stored, records_stored FROM initial_load_state")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (pages, records),
        (30, support::LISTINGS as i64),
        "no page stored twice"
    );
    let killed = support::checksum(&pool).await;
    assert_eq!(killed, clean_run(&sim, &pool, false).await);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn kill_9_during_a_daily_update_then_a_rerun_gives_the_uninterrupted_table(pool: PgPool) {
    let sim = support::sim(Faults::default()).await;
    let settings = support::settings_for(&sim);
    support::initial_load(&settings, &pool).await;
    support::mark_done(
        &pool,
        support::today() - chrono::Duration::days(i64::from(support::DAYS)),
    )
    .await;
    sim.set_faults(slow());
    let child = loader(&sim, &pool, &["daily"]).spawn().unwrap();
    kill_when(
        child,
        &pool,
        "SELECT coalesce(sum(pages), 0)::bigint FROM sync_state",
        8,
    )
    .await;
    let done: i64 = sqlx::query_scalar("SELECT coalesce(sum(changes), 0)::bigint FROM sync_state")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(done < 3 * support::CHANGES_PER_DAY as i64, "killed mid-run");
    run_to_end(loader(&sim, &pool, &["daily"])).await;
    let (pages, changes): (i64, i64) =
        sqlx::query_as("SELECT sum(pages)::bigint, sum(changes)::bigint FROM sync_state")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (pages, changes),
        (30, 3 * support::CHANGES_PER_DAY as i64),
        "no page applied twice"
    );
    let killed = support::checksum(&pool).await;
    assert_eq!(killed, clean_run(&sim, &pool, true).await);
}

#[tokio::test]
async fn postgres_restarted_mid_run_fails_cleanly_and_the_next_run_completes_with_nothing_lost() {
    let server =
        tokio::task::spawn_blocking(|| pg_sandbox::PgSandbox::start(pg_sandbox::Profile::Fast))
            .await
            .unwrap()
            .unwrap();
    let admin = PgPool::connect(server.url()).await.unwrap();
    sqlx::query("CREATE DATABASE loader_restart")
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&server.url_for("loader_restart"))
        .await
        .unwrap();
    db::migrate(&pool).await.unwrap();
    let sim = support::sim(slow()).await;
    let settings = support::settings_for(&sim);

    let run = tokio::spawn({
        let (settings, pool) = (settings.clone(), pool.clone());
        async move {
            run_initial(
                &settings,
                pool,
                CancellationToken::new(),
                InitialOptions::default(),
            )
            .await
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM raw_data")
            .fetch_one(&pool)
            .await
            .unwrap();
        if stored >= 100 {
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let server = tokio::task::spawn_blocking(move || {
        server.restart().unwrap();
        server
    })
    .await
    .unwrap();
    // Finished or failed, but never hung and never half-written.
    let first = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .unwrap()
        .unwrap();
    if let Err(err) = &first {
        eprintln!("the interrupted run failed cleanly: {err:#}");
    }
    let second = run_initial(
        &settings,
        pool.clone(),
        CancellationToken::new(),
        InitialOptions::default(),
    )
    .await
    .unwrap();
    assert!(!second.has_errors());
    let (pages, records, finished): (i32, i64, bool) = sqlx::query_as(
        "SELECT pages_stored, records_stored, finished_at IS NOT NULL FROM initial_load_state",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (pages, records, finished),
        (30, support::LISTINGS as i64, true)
    );
    let restarted = support::checksum(&pool).await;
    assert_eq!(restarted, clean_run(&sim, &pool, false).await);
    pool.close().await;
    drop(server);
}
