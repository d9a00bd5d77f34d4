//! `bench status`: what one uncached computation of the operator's status
//! page costs (`api::admin::compute`: the read-only snapshot of
//! `db::status` plus the rules) at 1,000,000 listings, offers and tasks,
//! against the naive full counts of `/stats` (`db::stats::pipeline_counts`,
//! a count of every raw and processed row) on the same data.

use std::time::Instant;

use anyhow::Context;
use sqlx::PgPool;

use crate::harness::{BenchDatabase, Better, Figure, Plan, Report};

/// Listings, offers and tasks (each).
const ROWS: usize = 1_000_000;

pub async fn run(
    database: &BenchDatabase,
    plan: Plan,
    rows: Option<usize>,
) -> anyhow::Result<Report> {
    let rows = rows.unwrap_or(ROWS);
    let pool = &database.pool;
    fill(pool, rows).await?;

    let config = ::api::Config::for_tests();
    let state = ::api::AppState::new(
        ::api::pool::bounded(pool, config.api.statement_timeout),
        config,
    );
    let status = ::api::admin::compute(&state).await?;
    eprintln!(
        "bench status: state {:?}; waiting {}, tasks pending {}, completed {}",
        status.state,
        status.normalizer.waiting,
        status.fleet.tasks.pending,
        status.fleet.tasks.completed
    );

    let figures = plan
        .measure_alternating(&["status", "pipeline_counts"], |i| {
            let state = state.clone();
            async move {
                let start = Instant::now();
                if i == 0 {
                    ::api::admin::compute(&state).await?;
                } else {
                    let mut conn = state.pool.acquire().await?;
                    conn.run(async |c| db::stats::pipeline_counts(&mut *c).await)
                        .await?;
                }
                Ok(start.elapsed().as_secs_f64() * 1000.0)
            }
        })
        .await?;
    let [status_ms, naive_ms] =
        <[_; 2]>::try_from(figures).map_err(|_| anyhow::anyhow!("two figures"))?;
    let naive = naive_ms.median;
    Ok(Report {
        bench: "status",
        context: format!(
            "{rows} raw_data rows (2,000 waiting, 50 failed), {rows} processed_data rows (the api bench's fill), {rows} tasks (97% completed over a week), 100 proxies, 10 workers, 1,000 rejected items, 10,000 operations_log rows; api pool with statement_timeout 2 s; {} run(s) after {} warm-up",
            plan.runs, plan.warmup
        ),
        figures: vec![Figure::new(
            "one uncached /status computation",
            "ms",
            status_ms,
            Some((
                &format!("/stats' full counts of raw_data and processed_data ({naive:.0} ms)"),
                naive,
            )),
            Better::Lower,
            None,
        )],
    })
}

async fn fill(pool: &PgPool, rows: usize) -> anyhow::Result<()> {
    let start = Instant::now();
    crate::api::fill(pool, rows).await?;
    let n = rows as i64;
    sqlx::raw_sql(&format!(
        "INSERT INTO raw_data (inner_id, change_type, data, source, is_processed, last_updated_at)
         SELECT inner_id, 'added', '{{}}'::jsonb, 'initial_load', true, now() - interval '2 days'
           FROM processed_data;
         UPDATE raw_data SET is_processed = false, last_updated_at = now() - interval '3 minutes'
          WHERE id % 500 = 0;
         UPDATE raw_data SET normalize_error = 'bad year' WHERE id % 500 = 0 AND id % 20000 = 0;
         INSERT INTO workers (name, slots, stale_after, status)
         SELECT 'host-' || g, 8, '90 seconds', CASE WHEN g <= 8 THEN 'alive' ELSE 'dead' END
           FROM generate_series(1, 10) g;
         INSERT INTO proxies (url, status, blocked_until)
         SELECT 'http://10.0.' || (g / 256) || '.' || (g % 256) || ':3128',
                CASE WHEN g % 10 = 0 THEN 'blocked' ELSE 'free' END,
                CASE WHEN g % 10 = 0 THEN now() + interval '10 minutes' END
           FROM generate_series(1, 100) g;
         INSERT INTO tasks (kind, target, status, finished_at, outcome)
         SELECT 'fetch_url', 'https://example.com/car/' || g,
                CASE WHEN g % 100 < 97 THEN 'completed' WHEN g % 100 < 98 THEN 'failed' ELSE 'pending' END,
                CASE WHEN g % 100 < 98 THEN now() - (g % 604800) * interval '1 second' END,
                CASE WHEN g % 100 < 97 THEN 'ok' END
           FROM generate_series(1, {n}) g;
         INSERT INTO rejected_items (endpoint, page, inner_id, reason, raw, rejected_at)
         SELECT '/offers', g / 20, 'x' || g, 'a NUL escape in data.title', '{{}}', now() - g * interval '1 minute'
           FROM generate_series(1, 1000) g;
         INSERT INTO operations_log (operation_type, started_at, duration, status, details)
         SELECT (ARRAY['data_fetch','normalization','sync_push','worker_cleanup','backup'])[1 + g % 5],
                now() - g * interval '1 minute', 1.5, 'OK', 'processed=200 created=0 updated=200 errors=0 batches=1'
           FROM generate_series(1, 10000) g;
         INSERT INTO sync_table_state (direction, table_name, watermark, last_success_at)
         VALUES ('push', 'processed_data', pg_current_snapshot(), now() - interval '10 minutes');
         UPDATE processed_data SET price = price + 1 WHERE inner_id::bigint % 1000 = 0;
         VACUUM ANALYZE raw_data, processed_data, tasks, rejected_items, operations_log;"
    ))
    .execute(pool)
    .await
    .context("fill the status bench's tables")?;
    eprintln!(
        "bench status: filled in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
