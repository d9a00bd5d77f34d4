//! `loader serve` and the command line.

mod support;

use std::time::{Duration, Instant};

use che168_sim::Faults;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn serve_finishes_an_unfinished_initial_load_first_and_stops_on_shutdown(pool: PgPool) {
    let sim = support::sim(Faults::default()).await;
    let settings = support::settings_for(&sim);
    loader::run_initial(
        &settings,
        pool.clone(),
        CancellationToken::new(),
        loader::InitialOptions { max_pages: Some(3) },
    )
    .await
    .unwrap();
    assert!(loader::initial_load_pending(&pool).await.unwrap());
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn({
        let (settings, pool, shutdown) = (settings.clone(), pool.clone(), shutdown.clone());
        async move { loader::serve(&settings, pool, shutdown).await }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while loader::initial_load_pending(&pool).await.unwrap() {
        assert!(
            Instant::now() < deadline,
            "serve did not finish the initial load"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(support::checksum(&pool).await.0, support::LISTINGS as i64);
    assert_eq!(
        sim.requests("changes"),
        0,
        "the daily update waits for its schedule"
    );
}

#[test]
fn loader_help_lists_the_subcommands() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_loader"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for command in ["migrate", "initial", "daily", "serve"] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_loader"))
        .args(["daily", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(
        help.contains("--date") && help.contains("--max-dates"),
        "{help}"
    );
}
