//! Shared by the worker's integration tests: settings with short intervals,
//! proxies, and waiting on the database with a deadline.

#![allow(dead_code)]

pub mod cut;

use std::future::Future;
use std::time::{Duration, Instant};

use settings::{Env, Settings};
use sqlx::PgPool;
use test_support::proxy::TestProxy;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The shipped config.yaml with `overrides` (`worker.slots` -> value).
pub fn settings(overrides: &[(&str, &str)]) -> Settings {
    let mut pairs: Vec<(String, String)> = vec![
        (
            "CONFIG_FILE".into(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../config.yaml").into(),
        ),
        ("DATABASE_URL".into(), "postgres://unused/db".into()),
        // The origins and proxies of the tests listen on 127.0.0.1.
        (env_name("worker.allow_private_targets"), "true".into()),
    ];
    pairs.extend(
        overrides
            .iter()
            .map(|(k, v)| (env_name(k), (*v).to_owned())),
    );
    settings::load_from(&Env::from_pairs(pairs)).expect("test settings")
}

/// `worker.cleanup.interval` -> `CARFEED__WORKER__CLEANUP__INTERVAL`.
pub fn env_name(key: &str) -> String {
    format!("CARFEED__{}", key.replace('.', "__").to_ascii_uppercase())
}

/// Fast heartbeats and sweeps, short grace: what most tests want.
pub const FAST: &[(&str, &str)] = &[
    ("worker.heartbeat_interval", "200ms"),
    ("worker.stale_after_beats", "3"),
    ("worker.cleanup.interval", "200ms"),
    ("worker.grace_period", "2s"),
    ("worker.idle_poll", "50ms"),
    ("worker.retry_backoff", "50ms"),
    ("worker.retry_backoff_max", "100ms"),
    ("worker.request_timeout", "5s"),
    ("worker.allow_private_targets", "true"),
];

pub fn fast(extra: &[(&str, &str)]) -> Settings {
    let mut all: Vec<(&str, &str)> = FAST.to_vec();
    all.extend_from_slice(extra);
    settings(&all)
}

pub async fn proxies(pool: &PgPool, n: usize) -> Vec<TestProxy> {
    let mut started = Vec::new();
    for _ in 0..n {
        started.push(TestProxy::start(None).await);
    }
    let urls: Vec<String> = started.iter().map(|p| p.url(None)).collect();
    db::proxies::insert(pool, &urls).await.unwrap();
    started
}

/// Polls `check` every 20 ms until it is true; panics after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// A pool of its own for one in-process worker (like a separate process).
pub async fn own_pool(pool: &PgPool) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap()
}

/// Runs one worker as `worker run` does, on its own task, until `stop` is
/// cancelled.
pub fn spawn_worker(
    settings: &Settings,
    pool: PgPool,
    stop: &CancellationToken,
) -> JoinHandle<anyhow::Result<()>> {
    let ctx = bootstrap::Context::new("worker", settings.clone(), pool, stop.clone());
    tokio::spawn(worker::run(ctx))
}
