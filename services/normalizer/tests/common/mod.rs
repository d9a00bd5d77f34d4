//! Raw rows for the normaliser's tests, written the way the loader writes
//! them (one set-based INSERT), from the upstream samples.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;

pub const OFFERS_PAGE: &str = include_str!("../../../../fixtures/upstream/offers_page.json");
pub const OFFER: &str = include_str!("../../../../fixtures/upstream/offer.json");

/// A raw row to insert: inner_id, data, active_status.
pub struct Raw {
    pub inner_id: String,
    pub data: Value,
    pub active_status: i32,
}

impl Raw {
    pub fn active(inner_id: &str, data: Value) -> Self {
        Self {
            inner_id: inner_id.to_owned(),
            data,
            active_status: 0,
        }
    }
}

/// The listings of the sample `/offers` page.
pub fn sample_page() -> Vec<Raw> {
    let page: Value = serde_json::from_str(OFFERS_PAGE).unwrap();
    page["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| Raw::active(item["inner_id"].as_str().unwrap(), item["data"].clone()))
        .collect()
}

/// `count` distinct listings made from the sample offer.
pub fn many(count: usize) -> Vec<Raw> {
    let template: Value = serde_json::from_str(OFFER).unwrap();
    (0..count)
        .map(|i| {
            let inner_id = (60_000_000 + i).to_string();
            let mut data = template.clone();
            data["inner_id"] = Value::from(inner_id.clone());
            data["price"] = Value::from((50_000 + i * 7).to_string());
            Raw::active(&inner_id, data)
        })
        .collect()
}

/// Inserts raw rows as unprocessed `initial_load` rows, created_at fixed.
pub async fn insert(pool: &PgPool, rows: &[Raw]) {
    let ids: Vec<&str> = rows.iter().map(|r| r.inner_id.as_str()).collect();
    let data: Vec<String> = rows.iter().map(|r| r.data.to_string()).collect();
    let status: Vec<i32> = rows.iter().map(|r| r.active_status).collect();
    sqlx::query(
        "INSERT INTO raw_data (inner_id, change_type, created_at, data, source, active_status)
         SELECT i, 'added', '2026-08-18T06:41:27.312Z', d::jsonb, 'initial_load', s
         FROM UNNEST($1::varchar[], $2::text[], $3::int[]) AS t(i, d, s)",
    )
    .bind(&ids)
    .bind(&data)
    .bind(&status)
    .execute(pool)
    .await
    .unwrap();
}

pub fn options(batch_size: i64) -> normalizer::Options {
    normalizer::Options {
        batch_size,
        // One batch after the other, as these tests were written for; the
        // pipelined drain has tests of its own (pipeline.rs).
        pipeline_depth: 1,
        max_batches: None,
        progress_interval: Duration::from_secs(3600),
        mode: db::commit::Mode::new().commit(db::commit::Commit::Asynchronous),
        log_idle_runs: true,
    }
}

pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Polls `sql` (a count) until it equals `want`, or panics after `timeout`.
pub async fn wait_for_count(pool: &PgPool, sql: &str, want: i64, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let got = count(pool, sql).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sql}: {got}, expected {want} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Holds a batch from the test side: an uncommitted `processed_data` row
/// for `inner_id`, so the batch that writes that listing waits in its upsert
/// (a second insert of a key waits for the first inserter) with its rows
/// claimed and its transaction open, until the gate is dropped or rolled
/// back. Nothing in the normaliser knows about it.
pub struct Gate {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
}

impl Gate {
    pub async fn close(pool: &PgPool, inner_id: &str) -> Self {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO processed_data (inner_id, raw_id, record) VALUES ($1, 0, '{}')")
            .bind(inner_id)
            .execute(&mut *tx)
            .await
            .unwrap();
        Self { tx }
    }

    /// Waits until a normaliser's batch waits at the gate.
    pub async fn wait_for_a_batch(&self, pool: &PgPool) {
        wait_for_count(
            pool,
            "SELECT count(*) FROM pg_stat_activity
              WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO processed_data%'",
            1,
            Duration::from_secs(30),
        )
        .await;
    }

    /// Lets the held batch go on (its write then finds no row in the way).
    pub async fn open(self) {
        self.tx.rollback().await.unwrap();
    }
}
