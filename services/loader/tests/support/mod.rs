//! Shared helpers of the loader's integration tests: a small simulator on
//! port 0, settings pointing at it with millisecond retries, and a checksum
//! of `raw_data` to compare runs with.
#![allow(dead_code)]

use che168_sim::{Faults, RunningSim, SimConfig};
use chrono::{Duration, NaiveDate, Utc};
use settings::{Env, Settings};
use sqlx::PgPool;

pub const LISTINGS: usize = 600; // 30 pages
pub const DAYS: u32 = 3;
pub const CHANGES_PER_DAY: usize = 200; // 10 pages a day

pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

pub fn sim_config(faults: Faults) -> SimConfig {
    SimConfig {
        listings: LISTINGS,
        first_day: today() - Duration::days(i64::from(DAYS) - 1),
        days: DAYS,
        changes_per_day: CHANGES_PER_DAY,
        faults,
        ..SimConfig::default()
    }
}

pub async fn sim(faults: Faults) -> RunningSim {
    che168_sim::spawn(sim_config(faults)).await.unwrap()
}

/// Environment for a loader pointed at `sim`, retrying every few milliseconds.
pub fn env_for(sim: &RunningSim, key: &str) -> Vec<(String, String)> {
    [
        ("CHE168_BASE_URL", sim.base_url()),
        ("CHE168_API_KEY", key.to_owned()),
        ("CARFEED__UPSTREAM__RETRY__INTERVAL", "2ms".into()),
        ("CARFEED__UPSTREAM__RETRY__MAX_ELAPSED", "60s".into()),
        ("CARFEED__UPSTREAM__REQUEST_TIMEOUT", "5s".into()),
        (
            "CARFEED__UPSTREAM__MAX_REQUESTS_PER_SECOND",
            "100000".into(),
        ),
        ("CARFEED__LOADER__PROGRESS_INTERVAL", "100ms".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

pub fn settings_for(sim: &RunningSim) -> Settings {
    settings::load_from(&Env::from_pairs(env_for(sim, "sim-key"))).unwrap()
}

pub fn settings_with(sim: &RunningSim, extra: &[(&str, &str)]) -> Settings {
    let mut env = env_for(sim, "sim-key");
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    settings::load_from(&Env::from_pairs(env)).unwrap()
}

/// Row count and an md5 over every column the loader decides (not the
/// timestamps of when it ran), in inner_id order.
pub async fn checksum(pool: &PgPool) -> (i64, String) {
    sqlx::query_as(
        "SELECT count(*), coalesce(md5(string_agg(
                inner_id || '|' || coalesce(upstream_id::text, '') || '|' || change_type || '|'
                || coalesce(created_at::text, '') || '|' || data::text || '|' || active_status
                || '|' || source, E'\\n' ORDER BY inner_id)), '')
           FROM raw_data",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Forgets everything the loader stored, for a second run in the same database.
pub async fn reset(pool: &PgPool) {
    sqlx::query("TRUNCATE raw_data, sync_state, initial_load_state, operations_log")
        .execute(pool)
        .await
        .unwrap();
}

/// Pretends the last successful date was `date`, so the next run starts the day after.
pub async fn mark_done(pool: &PgPool, date: NaiveDate) {
    sqlx::query(
        "INSERT INTO sync_state (sync_date, last_successful_date, last_change_id) VALUES ($1, $1, 0)",
    )
    .bind(date)
    .execute(pool)
    .await
    .unwrap();
}

pub async fn operations(pool: &PgPool) -> Vec<(String, String)> {
    sqlx::query_as("SELECT status, details FROM operations_log ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// A URL of the test's own database (pg-sandbox uses trust auth).
pub fn database_url(pool: &PgPool) -> String {
    let options = pool.connect_options();
    let server = std::env::var("DATABASE_URL").unwrap();
    let (server, _) = server.rsplit_once('/').unwrap();
    format!("{server}/{}", options.get_database().unwrap())
}

/// A complete initial load with default options; panics on failure.
pub async fn initial_load(settings: &Settings, pool: &PgPool) {
    loader::run_initial(
        settings,
        pool.clone(),
        tokio_util::sync::CancellationToken::new(),
        loader::InitialOptions::default(),
    )
    .await
    .unwrap();
}
