//! One bad listing costs only itself (issue 13): the simulator's poison
//! fault sends listings with a value the database or serde_json refuses,
//! among good ones, through real HTTP and the real loader. For each kind:
//! the good listings of the page are stored, the bad one is in
//! `rejected_items` with its reason, and a second run neither fails nor
//! fetches a finished page again.

mod support;

use std::collections::HashSet;

use che168_sim::{Faults, PoisonKind, RunningSim};
use loader::{run_daily, run_initial, DailyOptions, InitialOptions, RunReport};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const RATE: f64 = 0.05;

/// endpoint, page, inner_id, reason, raw.
type Rejected = (String, Option<i32>, Option<String>, String, String);
/// endpoint, change_id, inner_id, reason, raw.
type RejectedChange = (String, Option<i64>, Option<String>, String, String);

fn poisoned(kinds: &[PoisonKind]) -> Faults {
    Faults {
        poison_rate: RATE,
        poison_kinds: kinds.to_vec(),
        ..Faults::default()
    }
}

async fn initial(sim: &RunningSim, pool: &PgPool) -> RunReport {
    run_initial(
        &support::settings_for(sim),
        pool.clone(),
        CancellationToken::new(),
        InitialOptions::default(),
    )
    .await
    .unwrap()
}

/// The catalogue's listings the poison fault breaks, by page.
fn expected_poisoned(sim: &RunningSim, kinds: &[PoisonKind]) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for page in 1..=30u32 {
        for item in sim.catalogue().offers_page(page)["result"]
            .as_array()
            .unwrap()
        {
            let id = item["inner_id"].as_str().unwrap();
            if che168_sim::poison_kind(168, id, RATE, kinds).is_some() {
                out.push((i32::try_from(page).unwrap(), id.to_owned()));
            }
        }
    }
    out
}

/// Runs a whole initial load against a simulator poisoning with `kind`, and
/// checks what issue 13 asks; returns the reasons recorded.
async fn one_kind_costs_only_its_listings(pool: PgPool, kind: PoisonKind) -> Vec<String> {
    let sim = support::sim(poisoned(&[kind])).await;
    let bad = expected_poisoned(&sim, &[kind]);
    assert!(!bad.is_empty(), "the seed poisons some listings");

    let report = initial(&sim, &pool).await;
    assert_eq!(report.pages, 30);
    assert_eq!(report.malformed, bad.len() as u64);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM raw_data")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        stored as usize,
        support::LISTINGS - bad.len(),
        "the good listings of every page are stored"
    );

    let rejected: Vec<Rejected> = sqlx::query_as(
        "SELECT endpoint, page, inner_id, reason, raw FROM rejected_items ORDER BY page, id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rejected.len(), bad.len());
    for ((endpoint, page, inner_id, _, raw), (want_page, want_id)) in rejected.iter().zip(&bad) {
        assert_eq!(endpoint, "/offers");
        assert_eq!(page, &Some(*want_page));
        assert!(
            inner_id.as_deref().unwrap().ends_with(want_id.as_str()),
            "{inner_id:?} {want_id}"
        );
        assert!(raw.contains(want_id.as_str()), "the item's text is kept");
    }
    let ops = support::operations(&pool).await;
    assert!(
        ops[0].1.contains(&format!("malformed={}", bad.len())),
        "{ops:?}"
    );

    // A second run neither fails nor fetches a finished page again.
    let requests = sim.requests("offers");
    let again = initial(&sim, &pool).await;
    assert_eq!((again.pages, again.received), (0, 0));
    assert_eq!(sim.requests("offers"), requests);
    rejected.into_iter().map(|r| r.3).collect()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_listing_with_a_nul_escape_is_rejected_and_the_rest_of_its_page_stored(pool: PgPool) {
    let reasons = one_kind_costs_only_its_listings(pool, PoisonKind::NulEscape).await;
    assert!(reasons.iter().all(|r| r.contains("\\u0000")), "{reasons:?}");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_listing_whose_inner_id_is_longer_than_the_column_is_rejected_and_the_rest_of_its_page_stored(
    pool: PgPool,
) {
    let reasons = one_kind_costs_only_its_listings(pool, PoisonKind::LongInnerId).await;
    assert!(
        reasons.iter().all(|r| r.contains("70 characters")),
        "{reasons:?}"
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_listing_with_a_timestamp_out_of_range_is_rejected_and_the_rest_of_its_page_stored(
    pool: PgPool,
) {
    let reasons = one_kind_costs_only_its_listings(pool, PoisonKind::AncientTimestamp).await;
    assert!(
        reasons
            .iter()
            .all(|r| r.contains("outside Postgres' range")),
        "{reasons:?}"
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_listing_with_a_number_outside_f64_is_rejected_and_the_rest_of_its_page_stored(
    pool: PgPool,
) {
    let reasons = one_kind_costs_only_its_listings(pool, PoisonKind::HugeNumber).await;
    assert!(
        reasons.iter().all(|r| r.contains("number out of range")),
        "{reasons:?}"
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_listing_nested_deeper_than_serde_json_reads_is_rejected_and_the_rest_of_its_page_stored(
    pool: PgPool,
) {
    let reasons = one_kind_costs_only_its_listings(pool, PoisonKind::DeepNesting).await;
    assert!(
        reasons.iter().all(|r| r.contains("recursion limit")),
        "{reasons:?}"
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn bad_listings_in_the_changes_feed_are_rejected_and_the_rest_of_their_page_applied(
    pool: PgPool,
) {
    let sim = support::sim(Faults::default()).await;
    initial(&sim, &pool).await;
    sim.set_faults(poisoned(&PoisonKind::ALL));
    let settings = support::settings_for(&sim);
    let report = run_daily(
        &settings,
        pool.clone(),
        CancellationToken::new(),
        DailyOptions::default(),
    )
    .await
    .unwrap();
    let rejected: Vec<(String, Option<i64>, String)> =
        sqlx::query_as("SELECT endpoint, change_id, reason FROM rejected_items ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(!rejected.is_empty(), "the seed poisons some changes");
    assert!(
        rejected
            .iter()
            .all(|(e, c, _)| e == "/changes" && c.is_some()),
        "{rejected:?}"
    );
    assert_eq!(report.malformed, rejected.len() as u64);
    assert_eq!(
        report.received + report.malformed,
        support::CHANGES_PER_DAY as u64,
        "every other change of the day is applied"
    );
    // A second run neither fails nor applies anything again.
    let again = run_daily(
        &settings,
        pool.clone(),
        CancellationToken::new(),
        DailyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(again.received, 0);
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM rejected_items")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(after as usize, rejected.len(), "nothing is rejected twice");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_listing_only_postgres_refuses_is_isolated_by_halving_and_the_rest_of_its_page_stored(
    pool: PgPool,
) {
    // A lone surrogate escape passes every check before the write; only
    // jsonb refuses it, so the COPY fails and the rows go in by halves.
    let reasons = one_kind_costs_only_its_listings(pool, PoisonKind::LoneSurrogate).await;
    assert!(
        reasons
            .iter()
            .all(|r| r.contains("Postgres refused it: invalid input syntax for type json")),
        "{reasons:?}"
    );
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_change_only_postgres_refuses_is_isolated_by_halving_and_the_rest_of_its_page_applied(
    pool: PgPool,
) {
    let sim = support::sim(Faults::default()).await;
    initial(&sim, &pool).await;
    // A rule only the database knows (a check an operator added): the
    // changes of one listing break it.
    let events = sim.catalogue().changes(2);
    let victim = events[7].inner_id.clone();
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.inner_id = '{victim}' THEN
             RAISE EXCEPTION 'refuse_one: % is refused', NEW.inner_id
               USING ERRCODE = 'check_violation';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_one BEFORE INSERT OR UPDATE ON raw_data
           FOR EACH ROW EXECUTE FUNCTION refuse_one();"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let settings = support::settings_for(&sim);
    let report = run_daily(
        &settings,
        pool.clone(),
        CancellationToken::new(),
        DailyOptions::default(),
    )
    .await
    .unwrap();
    let rejected: Vec<RejectedChange> = sqlx::query_as(
        "SELECT endpoint, change_id, inner_id, reason, raw FROM rejected_items ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    let (endpoint, change_id, inner_id, reason, raw) = &rejected[0];
    assert_eq!(endpoint, "/changes");
    assert!(change_id.is_some());
    assert_eq!(inner_id.as_deref(), Some(victim.as_str()));
    assert!(reason.contains("refuse_one"), "{reason}");
    assert!(raw.contains(&victim), "{raw}");
    assert_eq!(report.malformed, 1);
    assert_eq!(
        report.received,
        support::CHANGES_PER_DAY as u64,
        "every change of the day was read"
    );
    // Every other listing the day names carries one of the day's events.
    let ids: Vec<i64> = events
        .iter()
        .map(|e| i64::try_from(e.id).unwrap())
        .collect();
    let named: std::collections::HashSet<&str> =
        events.iter().map(|e| e.inner_id.as_str()).collect();
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM raw_data WHERE upstream_id = ANY($1)")
            .bind(&ids)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(applied as usize, named.len() - 1);
    let again = run_daily(
        &settings,
        pool.clone(),
        CancellationToken::new(),
        DailyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(again.received, 0, "the page is not applied twice");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_next_page_not_after_the_current_page_stops_the_load_with_an_error_after_storing_the_page(
    pool: PgPool,
) {
    let sim = support::sim(Faults {
        next_page_not_after: HashSet::from([5]),
        ..Faults::default()
    })
    .await;
    let settings = support::settings_for(&sim);
    let err = run_initial(
        &settings,
        pool.clone(),
        CancellationToken::new(),
        InitialOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("Page 5 names page 5 as the next one"),
        "{err:#}"
    );
    assert_eq!(sim.page_requests(6), 0, "the load did not march on");
    assert_eq!(
        support::checksum(&pool).await.0,
        100,
        "pages 1-5 are stored"
    );
    let ops = support::operations(&pool).await;
    assert_eq!(ops[0].0, "ERROR");
    assert!(ops[0].1.contains("Page 5 names page 5"), "{ops:?}");

    // The upstream mends its feed: the next run goes on from page 5, and
    // stores nothing twice.
    sim.set_faults(Faults::default());
    let again = initial(&sim, &pool).await;
    assert_eq!(again.inserted, support::LISTINGS as u64 - 100);
    assert_eq!(support::checksum(&pool).await.0, support::LISTINGS as i64);
    assert!(!loader::initial_load_pending(&pool).await.unwrap());
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_page_whose_meta_has_no_next_page_is_retried_as_malformed_then_fetched_again_later(
    pool: PgPool,
) {
    let sim = support::sim(Faults {
        next_page_missing: HashSet::from([4]),
        ..Faults::default()
    })
    .await;
    let settings = support::settings_with(&sim, &[("CARFEED__UPSTREAM__RETRY__MAX_ATTEMPTS", "2")]);
    let report = run_initial(
        &settings,
        pool.clone(),
        CancellationToken::new(),
        InitialOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.failed_pages, vec![4]);
    assert_eq!(report.missing_pages, vec![4]);
    assert_eq!(
        sim.page_requests(4),
        4,
        "two attempts in order, two at the end"
    );
    assert_eq!(
        support::checksum(&pool).await.0,
        support::LISTINGS as i64 - 20,
        "the feed did not end at page 4: every other page is stored"
    );
    sim.set_faults(Faults::default());
    let again = run_initial(
        &settings,
        pool.clone(),
        CancellationToken::new(),
        InitialOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!((again.pages, again.inserted), (1, 20));
    assert_eq!(support::checksum(&pool).await.0, support::LISTINGS as i64);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_feed_ending_far_below_the_expected_total_is_a_warning_recorded_in_operations_log(
    pool: PgPool,
) {
    let sim = support::sim(Faults::default()).await;
    let settings = support::settings_with(&sim, &[("CARFEED__LOADER__EXPECTED_TOTAL", "10000")]);
    let report = run_initial(
        &settings,
        pool.clone(),
        CancellationToken::new(),
        InitialOptions::default(),
    )
    .await
    .unwrap();
    let note = "feed ended far below loader.expected_total (600 of 10000)";
    assert!(report.notes.iter().any(|n| n == note), "{:?}", report.notes);
    let ops = support::operations(&pool).await;
    assert!(ops[0].1.contains(note), "{ops:?}");
    assert_eq!(ops[0].0, "OK", "a warning, not an error");
}
