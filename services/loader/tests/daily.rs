//! The daily update against the simulator (SPEC 3.2, 3.3).

mod support;

use std::collections::{HashMap, HashSet};

use che168_sim::{Faults, RunningSim};
use chrono::{Duration, NaiveDate};
use loader::{run_daily, DailyOptions, RunReport};
use serde_json::{Map, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

fn day(n: i64) -> NaiveDate {
    support::today() - Duration::days(i64::from(support::DAYS) - 1) + Duration::days(n)
}

async fn initial(sim: &RunningSim, pool: &PgPool) {
    support::initial_load(&support::settings_for(sim), pool).await;
}

async fn daily_with(
    settings: &settings::Settings,
    pool: &PgPool,
    options: DailyOptions,
) -> RunReport {
    run_daily(settings, pool.clone(), CancellationToken::new(), options)
        .await
        .unwrap()
}

async fn daily(sim: &RunningSim, pool: &PgPool) -> RunReport {
    daily_with(&support::settings_for(sim), pool, DailyOptions::default()).await
}

/// What the rules of SPEC 3.2 give, written out plainly, one event at a
/// time: inner_id -> (data, active_status, change_type, event id).
type Model = HashMap<String, (Map<String, Value>, i32, String, i64)>;

fn model(sim: &RunningSim, days: std::ops::Range<u32>) -> Model {
    let mut rows = Model::new();
    for page in 1..=sim.catalogue().pages() {
        for item in sim.catalogue().offers_page(page)["result"]
            .as_array()
            .unwrap()
        {
            let data = item["data"].as_object().unwrap().clone();
            let id = item["id"].as_i64().unwrap();
            rows.insert(
                item["inner_id"].as_str().unwrap().to_owned(),
                (data, 0, "added".into(), id),
            );
        }
    }
    for d in days {
        for event in sim.catalogue().changes(d) {
            let kind = event.change_type.as_str().to_owned();
            let payload = event
                .data()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default();
            let id = i64::try_from(event.id).unwrap();
            let entry = rows.entry(event.inner_id.clone());
            match kind.as_str() {
                "added" => {
                    entry.insert_entry((payload, 0, kind, id));
                }
                "changed" => {
                    // A listing nobody sent in full stays inactive.
                    let row = entry.or_insert_with(|| (Map::new(), 1, String::new(), 0));
                    for (k, v) in payload {
                        let name = k.strip_prefix("new_").unwrap_or(&k).to_owned();
                        row.0.insert(name, v);
                    }
                    row.2 = kind;
                    row.3 = id;
                }
                _ => {
                    let row = entry.or_insert_with(|| (Map::new(), 1, String::new(), 0));
                    row.1 = 1;
                    row.2 = kind;
                    row.3 = id;
                }
            }
        }
    }
    rows
}

async fn stored(pool: &PgPool) -> Model {
    let rows: Vec<(String, Value, i32, String, Option<i64>)> = sqlx::query_as(
        "SELECT inner_id, data, active_status, change_type, upstream_id FROM raw_data",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(id, data, active, kind, upstream)| {
            (
                id,
                (
                    data.as_object().unwrap().clone(),
                    active,
                    kind,
                    upstream.unwrap_or(0),
                ),
            )
        })
        .collect()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn daily_update_applies_added_changed_removed_with_the_new_merge(pool: PgPool) {
    let sim = support::sim(Faults::default()).await;
    initial(&sim, &pool).await;
    support::mark_done(&pool, day(-1)).await;
    let report = daily(&sim, &pool).await;
    assert_eq!(report.received, 3 * support::CHANGES_PER_DAY as u64);
    let expected = model(&sim, 0..support::DAYS);
    let actual = stored(&pool).await;
    assert_eq!(actual.len(), expected.len());
    for (inner_id, row) in &expected {
        assert_eq!(actual.get(inner_id), Some(row), "listing {inner_id}");
    }
    // Rewritten rows are queued for the normaliser again.
    let unprocessed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM raw_data WHERE NOT is_processed")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(unprocessed, expected.len() as i64);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn changed_or_removed_for_a_listing_we_do_not_have_fetches_its_full_record_or_keeps_it_inactive(
    pool: PgPool,
) {
    // No initial load: every listing the day names is one we do not have.
    let sim = support::sim(Faults::default()).await;
    support::mark_done(&pool, day(-1)).await;
    daily_with(
        &support::settings_for(&sim),
        &pool,
        DailyOptions {
            max_dates: Some(1),
            ..DailyOptions::default()
        },
    )
    .await;
    let events = sim.catalogue().changes(0);
    let mut last: HashMap<&str, &che168_sim::ChangeEvent> = HashMap::new();
    for e in &events {
        last.insert(&e.inner_id, e);
    }
    let only_changed = |id: &str| {
        events
            .iter()
            .all(|o| o.inner_id != id || o.change_type.as_str() == "changed")
    };
    let row = |id: String| {
        let pool = pool.clone();
        async move {
            let row: (i32, String, Value) = sqlx::query_as(
                "SELECT active_status, source, data FROM raw_data WHERE inner_id = $1",
            )
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
            row
        }
    };
    let (mut unknown_changed, mut full_changed, mut removed) = (0, 0, 0);
    for (id, e) in &last {
        let (active, source, data) = row((*id).to_owned()).await;
        assert_eq!(source, "daily_update", "{id}");
        let offered = sim.catalogue().current_listing(id).is_some();
        match (e.change_type.as_str(), offered) {
            ("removed", _) => {
                removed += 1;
                assert_eq!(active, 1, "removed {id}");
            }
            ("changed", false) if only_changed(id) => {
                // /offer does not know it: only a price, never served.
                unknown_changed += 1;
                assert_eq!(active, 1, "changed {id} without a full record");
                assert!(
                    data.get("price").is_some() && data.get("new_price").is_none(),
                    "{data}"
                );
            }
            ("changed", true) if only_changed(id) => {
                // /offer sent the full record: the listing is on sale.
                full_changed += 1;
                assert_eq!(active, 0, "changed {id} with its full record");
                assert!(
                    data.get("mark").is_some() && data.get("price").is_some(),
                    "{data}"
                );
            }
            _ => {}
        }
    }
    assert!(
        unknown_changed > 0 && full_changed > 0 && removed > 0,
        "{unknown_changed} {full_changed} {removed}"
    );
    assert!(sim.requests("offer") > 0, "full records came from /offer");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn several_changes_for_one_inner_id_in_one_page_are_applied_in_order(pool: PgPool) {
    let sim = support::sim(Faults::default()).await;
    initial(&sim, &pool).await;
    support::mark_done(&pool, day(-1)).await;
    daily_with(
        &support::settings_for(&sim),
        &pool,
        DailyOptions {
            max_dates: Some(1),
            ..DailyOptions::default()
        },
    )
    .await;
    let events = sim.catalogue().changes(0);
    let expected = model(&sim, 0..1);
    let actual = stored(&pool).await;
    let mut repeated = 0;
    for page in events.chunks(20) {
        let mut seen = HashSet::new();
        for e in page {
            if !seen.insert(&e.inner_id) {
                repeated += 1;
                assert_eq!(
                    actual.get(&e.inner_id),
                    expected.get(&e.inner_id),
                    "{}",
                    e.inner_id
                );
            }
        }
    }
    assert!(
        repeated > 0,
        "the simulator put several events for one listing in a page"
    );
}

/// sync_date, last_successful_date, last_change_id, next_change_id.
type DateRow = (NaiveDate, Option<NaiveDate>, Option<i64>, Option<i64>);

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn missed_days_are_processed_in_order_up_to_today(pool: PgPool) {
    let sim = support::sim(Faults::default()).await;
    support::mark_done(&pool, day(-1)).await;
    let report = daily(&sim, &pool).await;
    assert_eq!(report.dates_completed, vec![day(0), day(1)]);
    let rows: Vec<DateRow> = sqlx::query_as(
        "SELECT sync_date, last_successful_date, last_change_id, next_change_id
           FROM sync_state WHERE sync_date >= $1 ORDER BY sync_date",
    )
    .bind(day(0))
    .fetch_all(&pool)
    .await
    .unwrap();
    let first = |d| i64::try_from(sim.catalogue().change_id_of(d).unwrap()).unwrap();
    let tip = i64::try_from(sim.catalogue().tip_change_id()).unwrap();
    assert_eq!(
        rows,
        vec![
            (
                day(0),
                Some(day(0)),
                Some(first(day(1)) - 1),
                Some(first(day(1)))
            ),
            (
                day(1),
                Some(day(1)),
                Some(first(day(2)) - 1),
                Some(first(day(2)))
            ),
            // Today is applied up to the tip and stays open for the next run.
            (day(2), None, Some(tip - 1), Some(tip)),
        ]
    );
    let ops = support::operations(&pool).await;
    assert_eq!(ops.len(), 1);
    assert!(
        ops[0]
            .1
            .contains(&format!("dates completed: {}, {}", day(0), day(1))),
        "{ops:?}"
    );
    // The next run resumes today where it stopped: nothing new.
    let again = daily(&sim, &pool).await;
    assert_eq!(again.received, 0);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn without_any_sync_state_the_daily_update_starts_today(pool: PgPool) {
    let sim = support::sim(Faults::default()).await;
    let report = daily(&sim, &pool).await;
    assert_eq!(report.received, support::CHANGES_PER_DAY as u64);
    let dates: Vec<NaiveDate> = sqlx::query_scalar("SELECT sync_date FROM sync_state")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(dates, vec![day(2)]);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_first_daily_run_starts_at_the_day_the_initial_load_started(pool: PgPool) {
    let sim = support::sim(Faults::default()).await;
    initial(&sim, &pool).await;
    // The initial load took two days: it began at the first simulated day.
    sqlx::query("UPDATE initial_load_state SET started_at = $1::date + time '10:00'")
        .bind(day(0))
        .execute(&pool)
        .await
        .unwrap();
    let report = daily(&sim, &pool).await;
    assert_eq!(report.dates_completed, vec![day(0), day(1)]);
    assert_eq!(
        report.received,
        3 * support::CHANGES_PER_DAY as u64,
        "the changes made during the load are applied"
    );
    let expected = model(&sim, 0..support::DAYS);
    let actual = stored(&pool).await;
    assert_eq!(actual.len(), expected.len());
    for (inner_id, row) in &expected {
        assert_eq!(actual.get(inner_id), Some(row), "listing {inner_id}");
    }
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_date_that_cannot_be_completed_stays_unfinished_and_the_next_run_resumes_from_the_last_applied_change(
    pool: PgPool,
) {
    let sim = support::sim(Faults::default()).await;
    initial(&sim, &pool).await;
    support::mark_done(&pool, day(-1)).await;
    daily(&sim, &pool).await;
    let clean = support::checksum(&pool).await;
    support::reset(&pool).await;
    initial(&sim, &pool).await;
    support::mark_done(&pool, day(-1)).await;

    let first = sim.catalogue().change_id_of(day(0)).unwrap();
    let broken = first + 100; // page 6 of the first date
    sim.set_faults(Faults {
        fail_change_ids: HashSet::from([broken]),
        ..Faults::default()
    });
    let settings = support::settings_with(&sim, &[("CARFEED__UPSTREAM__RETRY__MAX_ATTEMPTS", "2")]);
    let failed = daily_with(&settings, &pool, DailyOptions::default()).await;
    assert_eq!(failed.failed_date, Some(day(0)));
    assert!(failed.dates_completed.is_empty());
    let cursor: (Option<i64>, Option<NaiveDate>) = sqlx::query_as(
        "SELECT next_change_id, last_successful_date FROM sync_state WHERE sync_date = $1",
    )
    .bind(day(0))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(cursor, (Some(i64::try_from(broken).unwrap()), None));
    assert_eq!(support::operations(&pool).await.last().unwrap().0, "ERROR");

    sim.set_faults(Faults::default());
    let first_page_requests = sim.change_requests(first);
    let resumed = daily(&sim, &pool).await;
    assert_eq!(resumed.dates_completed, vec![day(0), day(1)]);
    assert_eq!(
        sim.change_requests(first),
        first_page_requests,
        "the date was not restarted from its first change"
    );
    assert_eq!(support::checksum(&pool).await, clean);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn rerunning_a_date_writes_no_tuples(pool: PgPool) {
    let sim = support::sim(Faults::default()).await;
    initial(&sim, &pool).await;
    support::mark_done(&pool, day(-1)).await;
    daily(&sim, &pool).await;
    let before: Vec<(String, String)> =
        sqlx::query_as("SELECT inner_id, xmin::text FROM raw_data ORDER BY inner_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let settings = support::settings_for(&sim);
    let rerun = daily_with(
        &settings,
        &pool,
        DailyOptions {
            date: Some(day(0)),
            ..DailyOptions::default()
        },
    )
    .await;
    assert_eq!(rerun.received, support::CHANGES_PER_DAY as u64);
    assert_eq!((rerun.inserted, rerun.updated), (0, 0));
    assert_eq!(rerun.dates_completed, vec![day(0)]);
    let after: Vec<(String, String)> =
        sqlx::query_as("SELECT inner_id, xmin::text FROM raw_data ORDER BY inner_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(before, after);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_stalled_feed_is_reported_as_nothing_new_not_as_an_error(pool: PgPool) {
    let sim = support::sim(Faults {
        empty_tip: true,
        ..Faults::default()
    })
    .await;
    let report = daily(&sim, &pool).await;
    assert_eq!(report.received, 0);
    let ops = support::operations(&pool).await;
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].0, "OK");
    assert!(ops[0].1.contains("nothing new"), "{ops:?}");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn every_run_writes_one_operations_log_row_with_its_counts(pool: PgPool) {
    let sim = support::sim(Faults::default()).await;
    initial(&sim, &pool).await;
    support::mark_done(&pool, day(-1)).await;
    let report = daily(&sim, &pool).await;
    let ops: Vec<(String, String, String, f64)> = sqlx::query_as(
        "SELECT operation_type, status, details, duration FROM operations_log ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(ops.len(), 2);
    assert!(ops
        .iter()
        .all(|o| o.0 == "data_fetch" && o.1 == "OK" && o.3 >= 0.0));
    let expected = format!(
        "pages={} received={} inserted={} updated={} skipped={}",
        report.pages, report.received, report.inserted, report.updated, report.skipped
    );
    assert!(
        ops[1].2.starts_with(&expected),
        "{} vs {expected}",
        ops[1].2
    );
    assert!(report.inserted > 0 && report.updated > 0);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn faults_in_the_changes_feed_give_the_same_table_as_a_clean_run(pool: PgPool) {
    let sim = support::sim(Faults::default()).await;
    support::mark_done(&pool, day(-1)).await;
    daily(&sim, &pool).await;
    let clean = support::checksum(&pool).await;
    support::reset(&pool).await;
    support::mark_done(&pool, day(-1)).await;
    sim.set_faults(Faults {
        server_error_rate: 0.3,
        truncated_rate: 0.15,
        reset_rate: 0.15,
        ..Faults::default()
    });
    let report = daily(&sim, &pool).await;
    assert!(report.failed_date.is_none());
    assert_eq!(support::checksum(&pool).await, clean);
}
