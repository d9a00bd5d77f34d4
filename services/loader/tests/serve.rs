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
        async move { loader::run(bootstrap::Context::new("loader", settings, pool, shutdown)).await }
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

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn serve_with_one_percent_poison_finishes_the_initial_load_fetches_its_missing_page_again_and_moves_on_to_the_daily_update(
    pool: PgPool,
) {
    let poison = Faults {
        poison_rate: 0.01,
        ..Faults::default()
    };
    let sim = support::sim(Faults {
        fail_pages: std::collections::HashSet::from([7]),
        ..poison.clone()
    })
    .await;
    let settings = support::settings_with(
        &sim,
        &[
            ("CARFEED__LOADER__SCHEDULE", "* * * * *"),
            ("CARFEED__LOADER__FAILED_PAGE_ROUNDS", "1"),
            ("CARFEED__UPSTREAM__RETRY__MAX_ATTEMPTS", "2"),
        ],
    );
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn({
        let (settings, pool, shutdown) = (settings.clone(), pool.clone(), shutdown.clone());
        async move { loader::run(bootstrap::Context::new("loader", settings, pool, shutdown)).await }
    });
    // The load finishes (its one round over page 7 ran out) despite the
    // poisoned listings.
    let deadline = Instant::now() + Duration::from_secs(60);
    while loader::initial_load_pending(&pool).await.unwrap() {
        assert!(Instant::now() < deadline, "the initial load did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(loader::missing_pages(&pool).await.unwrap(), vec![7]);
    sim.set_faults(poison);
    // At the next minute: page 7 is fetched again, then the daily update runs.
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let dates: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sync_state WHERE sync_date IS NOT NULL AND changes > 0",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if dates > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not move on to the daily update"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(loader::missing_pages(&pool).await.unwrap().is_empty());
    let poisoned: usize = (1..=30u32)
        .flat_map(|page| {
            sim.catalogue().offers_page(page)["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["inner_id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|id| che168_sim::poison_kind(168, id, 0.01, &che168_sim::PoisonKind::ALL).is_some())
        .count();
    assert!(poisoned > 0, "the seed poisons some listings");
    let (from_offers, stored): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM rejected_items WHERE endpoint = '/offers'),
                (SELECT count(*) FROM raw_data WHERE source = 'initial_load')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(from_offers as usize, poisoned);
    assert_eq!(stored as usize, support::LISTINGS - poisoned);
}
