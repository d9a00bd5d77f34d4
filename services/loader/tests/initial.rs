//! The initial load against the simulator (SPEC 3.1, 3.3).

mod support;

use std::collections::HashSet;

use che168_sim::Faults;
use loader::{run_initial, InitialOptions, RunReport};
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

async fn initial(
    settings: &settings::Settings,
    pool: &PgPool,
    max_pages: Option<u32>,
) -> RunReport {
    run_initial(
        settings,
        pool.clone(),
        CancellationToken::new(),
        InitialOptions { max_pages },
    )
    .await
    .unwrap()
}

/// inner_id, upstream_id, change_type, source, active_status, is_processed, data, has created_at.
type StoredRow = (String, Option<i64>, String, String, i32, bool, Value, bool);

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn initial_load_stores_every_listing_with_its_columns(pool: PgPool) {
    let sim = support::sim(Faults::default()).await;
    let report = initial(&support::settings_for(&sim), &pool, None).await;
    assert_eq!(report.pages, 30);
    assert_eq!(report.inserted, support::LISTINGS as u64);
    let rows: Vec<StoredRow> = sqlx::query_as(
        "SELECT inner_id, upstream_id, change_type, source, active_status, is_processed, data,
                created_at IS NOT NULL
           FROM raw_data ORDER BY inner_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), support::LISTINGS);
    let first = sim.catalogue().offers_page(1)["result"][0].clone();
    let row = rows
        .iter()
        .find(|r| r.0 == first["inner_id"].as_str().unwrap())
        .unwrap();
    assert_eq!(row.1, first["id"].as_i64());
    assert_eq!(
        (row.2.as_str(), row.3.as_str(), row.4, row.5),
        ("added", "initial_load", 0, false)
    );
    assert_eq!(row.6, first["data"]);
    assert!(rows.iter().all(|r| r.7), "created_at comes from the API");
    let state: (i32, i64, bool) = sqlx::query_as(
        "SELECT pages_stored, records_stored, finished_at IS NOT NULL FROM initial_load_state",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(state, (30, support::LISTINGS as i64, true));
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn initial_load_ignores_inner_ids_already_stored_and_counts_them_as_skipped(pool: PgPool) {
    let sim = support::sim(Faults::default()).await;
    let first = sim.catalogue().offers_page(2)["result"][0].clone();
    sqlx::query(
        "INSERT INTO raw_data (inner_id, change_type, data, source) VALUES ($1, 'changed', '{\"price\": 1}', 'daily_update')",
    )
    .bind(first["inner_id"].as_str().unwrap())
    .execute(&pool)
    .await
    .unwrap();
    let report = initial(&support::settings_for(&sim), &pool, None).await;
    assert_eq!(report.skipped, 1);
    assert_eq!(report.inserted, support::LISTINGS as u64 - 1);
    let data: Value = sqlx::query_scalar("SELECT data FROM raw_data WHERE inner_id = $1")
        .bind(first["inner_id"].as_str().unwrap())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(data, serde_json::json!({"price": 1}));
    let ops = support::operations(&pool).await;
    assert_eq!(ops.len(), 1);
    assert!(ops[0].1.contains("skipped=1"), "{ops:?}");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn interrupted_initial_load_resumes_at_the_next_page_and_stores_no_page_twice(pool: PgPool) {
    let sim = support::sim(Faults::default()).await;
    let settings = support::settings_for(&sim);
    let first = initial(&settings, &pool, Some(4)).await;
    assert_eq!(first.pages, 4);
    let next_page: i32 = sqlx::query_scalar("SELECT next_page FROM initial_load_state")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(next_page, 5);
    let second = initial(&settings, &pool, None).await;
    assert_eq!(second.pages, 26);
    assert_eq!(
        second.skipped, 0,
        "no listing of the first run was offered again"
    );
    for page in 1..=30 {
        assert_eq!(sim.page_requests(page), 1, "page {page} fetched once");
    }
    let third = initial(&settings, &pool, None).await;
    assert_eq!(third.pages, 0);
    assert_eq!(support::checksum(&pool).await.0, support::LISTINGS as i64);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn next_page_zero_ends_the_initial_load_like_null(pool: PgPool) {
    let sim = support::sim(Faults {
        next_page_zero: true,
        ..Faults::default()
    })
    .await;
    let report = initial(&support::settings_for(&sim), &pool, None).await;
    assert_eq!(report.pages, 30);
    assert_eq!(sim.page_requests(31), 0);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_page_that_fails_every_attempt_is_skipped_fetched_again_at_the_end_and_by_the_next_run(
    pool: PgPool,
) {
    let sim = support::sim(Faults {
        fail_pages: HashSet::from([7]),
        ..Faults::default()
    })
    .await;
    let settings = support::settings_with(&sim, &[("CARFEED__UPSTREAM__RETRY__MAX_ATTEMPTS", "3")]);
    let report = initial(&settings, &pool, None).await;
    assert_eq!(report.failed_pages, vec![7]);
    assert_eq!(report.missing_pages, vec![7]);
    assert_eq!(
        sim.page_requests(7),
        6,
        "three attempts in order, three at the end"
    );
    assert_eq!(report.inserted, support::LISTINGS as u64 - 20);
    let failed: Vec<i32> = sqlx::query_scalar("SELECT failed_pages FROM initial_load_state")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(failed, vec![7]);
    let ops = support::operations(&pool).await;
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].0, "ERROR");
    assert!(
        ops[0].1.contains("failed=1")
            && ops[0].1.contains("failed pages: 7")
            && ops[0].1.contains("missing pages: 7"),
        "{ops:?}"
    );

    // The upstream recovers: the next run fetches only the missing page.
    sim.set_faults(Faults::default());
    let again = initial(&settings, &pool, None).await;
    assert_eq!((again.pages, again.inserted), (1, 20));
    assert!(again.missing_pages.is_empty());
    assert_eq!(sim.page_requests(7), 7);
    assert_eq!(
        sim.page_requests(6),
        1,
        "finished pages are not fetched again"
    );
    let state: (Vec<i32>, i64, i32) =
        sqlx::query_as("SELECT failed_pages, records_stored, pages_stored FROM initial_load_state")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(state, (vec![], support::LISTINGS as i64, 30));
    let ops = support::operations(&pool).await;
    assert_eq!(ops[1].0, "OK", "{ops:?}");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_load_is_finished_only_when_no_failed_page_remains_or_the_rounds_run_out_and_names_the_missing_pages(
    pool: PgPool,
) {
    let sim = support::sim(Faults {
        fail_pages: HashSet::from([7]),
        ..Faults::default()
    })
    .await;
    let settings = support::settings_with(
        &sim,
        &[
            ("CARFEED__UPSTREAM__RETRY__MAX_ATTEMPTS", "2"),
            ("CARFEED__LOADER__FAILED_PAGE_ROUNDS", "2"),
        ],
    );
    // Round 1 (the end of the feed): page 7 still fails; not finished.
    let first = initial(&settings, &pool, None).await;
    assert_eq!(first.missing_pages, vec![7]);
    assert!(loader::initial_load_pending(&pool).await.unwrap());
    // Round 2: the rounds run out; the load counts as finished, saying so.
    let second = initial(&settings, &pool, None).await;
    assert_eq!((second.pages, second.missing_pages.clone()), (0, vec![7]));
    assert!(!loader::initial_load_pending(&pool).await.unwrap());
    assert_eq!(loader::missing_pages(&pool).await.unwrap(), vec![7]);
    let ops = support::operations(&pool).await;
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[1].0, "ERROR");
    assert!(
        ops[1].1.contains("missing pages: 7")
            && ops[1]
                .1
                .contains("initial load finished after 2 rounds with pages missing"),
        "{ops:?}"
    );
    let stats = db::stats::initial_load(&pool).await.unwrap().unwrap();
    assert_eq!(
        (stats.finished, stats.missing_pages, stats.refetch_rounds),
        (true, vec![7], 2)
    );
    // Later runs keep fetching it; once it comes, nothing is missing.
    sim.set_faults(Faults::default());
    let third = initial(&settings, &pool, None).await;
    assert_eq!((third.pages, third.inserted), (1, 20));
    assert!(third.missing_pages.is_empty());
    assert!(loader::missing_pages(&pool).await.unwrap().is_empty());
    assert_eq!(support::checksum(&pool).await.0, support::LISTINGS as i64);
    for page in [1, 6, 8, 30] {
        assert_eq!(sim.page_requests(page), 1, "page {page} fetched once");
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn consecutive_failed_pages_stop_the_load_instead_of_marking_every_page_failed(pool: PgPool) {
    let sim = support::sim(Faults {
        fail_pages: (4..=30).collect(),
        ..Faults::default()
    })
    .await;
    let settings = support::settings_with(
        &sim,
        &[
            ("CARFEED__UPSTREAM__RETRY__MAX_ATTEMPTS", "2"),
            ("CARFEED__LOADER__MAX_CONSECUTIVE_FAILED_PAGES", "3"),
        ],
    );
    let err = run_initial(
        &settings,
        pool.clone(),
        CancellationToken::new(),
        InitialOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("3 pages in a row failed"),
        "{err:#}"
    );
    // The download may run a page or two ahead of the writer, no further.
    assert_eq!(sim.page_requests(12), 0, "the load stopped after page 6");
    let failed: Vec<i32> = sqlx::query_scalar("SELECT failed_pages FROM initial_load_state")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(failed, vec![4, 5, 6]);
    let ops = support::operations(&pool).await;
    assert_eq!(ops[0].0, "ERROR");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_wrong_key_stops_at_once_with_a_clear_message(pool: PgPool) {
    let sim = support::sim(Faults::default()).await;
    let settings = support::settings_with(&sim, &[("CHE168_API_KEY", "wrong-key")]);
    let err = run_initial(
        &settings,
        pool.clone(),
        CancellationToken::new(),
        InitialOptions::default(),
    )
    .await
    .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("refused our key") && message.contains("CHE168_API_KEY"),
        "{message}"
    );
    assert!(
        !message.contains("wrong-key"),
        "the key is never printed: {message}"
    );
    assert_eq!(sim.requests("offers"), 1, "401 is not retried");
    let ops = support::operations(&pool).await;
    assert_eq!(ops[0].0, "ERROR");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn faults_of_30_percent_5xx_truncated_bodies_and_resets_give_the_same_table_as_a_clean_run(
    pool: PgPool,
) {
    let sim = support::sim(Faults::default()).await;
    let settings = support::settings_for(&sim);
    initial(&settings, &pool, None).await;
    let clean = support::checksum(&pool).await;
    support::reset(&pool).await;
    sim.set_faults(Faults {
        server_error_rate: 0.3,
        truncated_rate: 0.15,
        reset_rate: 0.15,
        rate_limit_rate: 0.05,
        retry_after_secs: 0,
        ..Faults::default()
    });
    let report = initial(&settings, &pool, None).await;
    assert!(report.failed_pages.is_empty());
    assert!(
        sim.requests("offers") > 40,
        "faults happened: {}",
        sim.requests("offers")
    );
    assert_eq!(support::checksum(&pool).await, clean);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_second_run_while_another_holds_the_lock_does_nothing_and_succeeds(pool: PgPool) {
    let sim = support::sim(Faults::default()).await;
    let mut holder = pool.acquire().await.unwrap();
    let key: i64 = 0x6361_7266_6c6f_6164;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut *holder)
        .await
        .unwrap();
    assert!(locked);
    let report = initial(&support::settings_for(&sim), &pool, None).await;
    assert!(report.locked_out);
    assert_eq!(sim.requests("offers"), 0);
    assert_eq!(support::checksum(&pool).await.0, 0);
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(key)
        .execute(&mut *holder)
        .await
        .unwrap();
    let report = initial(&support::settings_for(&sim), &pool, Some(1)).await;
    assert!(!report.locked_out);
    assert_eq!(report.pages, 1);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_run_that_changed_rows_notifies_raw_data_changed(pool: PgPool) {
    let sim = support::sim(Faults::default()).await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    listener.listen("raw_data_changed").await.unwrap();
    initial(&support::settings_for(&sim), &pool, Some(2)).await;
    let note = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .expect("a notification")
        .unwrap();
    assert_eq!(note.payload(), "initial load 40");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_shutdown_stops_the_load_between_pages_and_the_next_run_resumes(pool: PgPool) {
    let sim = support::sim(Faults {
        latency: std::time::Duration::from_millis(20),
        ..Faults::default()
    })
    .await;
    let settings = support::settings_for(&sim);
    let shutdown = CancellationToken::new();
    let stopper = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        stopper.cancel();
    });
    let report = run_initial(&settings, pool.clone(), shutdown, InitialOptions::default())
        .await
        .unwrap();
    assert!(report.interrupted);
    assert!(report.pages < 30);
    let rest = initial(&settings, &pool, None).await;
    assert_eq!(report.pages + rest.pages, 30);
    assert_eq!(support::checksum(&pool).await.0, support::LISTINGS as i64);
}
