//! The normaliser: rows/s draining 250,000 raw rows from the simulator's
//! catalogue with batch 200, one instance and two at once, against the
//! in-database ceiling (normalizer_ceiling.sql: one INSERT ... SELECT typing
//! the main columns in SQL) measured in the same run; plus the p99 of the
//! batch transactions.

use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use che168_sim::SimConfig;
use db::copy::BinaryCopyWriter;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::harness::{per_second, BenchDatabase, Better, Figure, Measured, Plan, Report};

const DEFAULT_ROWS: usize = 250_000;
const BATCH: i64 = 200;
const COPY_CHUNK_ROWS: usize = 2_000;
const P99_GOAL_MS: f64 = 250.0;

pub async fn run(db: &BenchDatabase, plan: Plan, rows: Option<usize>) -> anyhow::Result<Report> {
    let pool = &db.pool;
    let rows = rows.unwrap_or(DEFAULT_ROWS);
    let avg_bytes = load_raw_rows(pool, rows).await?;
    let url = db.url();

    // The three variants alternate run by run (ceiling, one, two, ceiling,
    // ...), so machine drift does not masquerade as scaling. Each instance
    // is a process of its own with its own pool, as a container of
    // `--scale normalizer=2` would be.
    let p99s = Mutex::new(Vec::new());
    let labels = [
        "in_database_ceiling",
        "normalizer_1_instance",
        "normalizer_2_instances",
    ];
    let measured = plan
        .measure_alternating(&labels, |variant| {
            let (url, p99s) = (&url, &p99s);
            async move {
                reset(pool).await?;
                let start = Instant::now();
                if variant == 0 {
                    let done = sqlx::query(include_str!("normalizer_ceiling.sql"))
                        .execute(pool)
                        .await
                        .context("ceiling INSERT ... SELECT")?;
                    anyhow::ensure!(
                        done.rows_affected() as usize == rows,
                        "ceiling wrote {} rows",
                        done.rows_affected()
                    );
                    return Ok(per_second(rows, start.elapsed()));
                }
                let drained = run_instances(url, variant).await?;
                let elapsed = start.elapsed();
                let created: u64 = drained.iter().map(|s| s.created).sum();
                let errors: u64 = drained.iter().map(|s| s.errors).sum();
                anyhow::ensure!(created as usize == rows && errors == 0, "{drained:?}");
                if variant == 1 {
                    p99s.lock()
                        .unwrap()
                        .push(p99_ms(drained[0].batch_ms.clone()));
                }
                Ok(per_second(rows, elapsed))
            }
        })
        .await?;
    let [ceiling, one, two]: [Measured; 3] = measured
        .try_into()
        .map_err(|_| anyhow::anyhow!("three variants measured"))?;

    let mut p99_runs = p99s.into_inner().unwrap();
    // Only the measured runs (the warm-ups came first).
    let p99_runs = p99_runs.split_off(p99_runs.len() - plan.runs);
    let rows_per_s = |name: &str, value, baseline: (&str, f64), goal: f64| Figure {
        name: name.into(),
        unit: "rows/s".into(),
        value,
        baseline: Some(baseline.0.to_owned()),
        baseline_value: Some(baseline.1),
        better: Better::Higher,
        goal_ratio: Some(goal),
    };
    let one_median = one.median;
    let ceiling_median = ceiling.median;
    Ok(Report {
        bench: "normalizer",
        context: format!(
            "{rows} raw rows from the simulator's catalogue (~{avg_bytes} bytes JSONB each), batch {BATCH}, each normaliser its own process with its own pool, asynchronous commit; {} run(s) after {} warm-up",
            plan.runs, plan.warmup
        ),
        figures: vec![
            Figure {
                name: "in_database_ceiling".into(),
                unit: "rows/s".into(),
                value: ceiling,
                baseline: None,
                baseline_value: None,
                better: Better::Higher,
                goal_ratio: None,
            },
            rows_per_s("normalizer_1_instance", one, ("in_database_ceiling", ceiling_median), 1.0),
            rows_per_s("normalizer_2_instances", two, ("normalizer_1_instance", one_median), 1.7),
            Figure {
                name: "p99_batch_transaction".into(),
                unit: "ms".into(),
                value: Measured::from_runs(p99_runs),
                baseline: Some("goal (ms)".into()),
                baseline_value: Some(P99_GOAL_MS),
                better: Better::Lower,
                goal_ratio: Some(1.0),
            },
        ],
    })
}

/// Set in a normaliser instance's process: the database URL to drain.
const CHILD_ENV: &str = "CARFEED_BENCH_NORMALIZER_CHILD";

/// What one instance did, as its process reports it on stdout.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Drained {
    created: u64,
    errors: u64,
    batch_ms: Vec<f64>,
}

/// In a normaliser instance's process: drains the queue once, prints what it
/// did as one JSON line. `None` in the bench itself.
pub fn child_main() -> Option<ExitCode> {
    crate::harness::child_process(CHILD_ENV, "normaliser instance", |url| async move {
        drain_in_child(&url).await
    })
}

async fn drain_in_child(url: &str) -> anyhow::Result<()> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await?;
    let options = ::normalizer::Options {
        batch_size: BATCH,
        max_batches: None,
        progress_interval: Duration::from_secs(3600),
        hold_before_commit: Duration::ZERO,
        commit: db::commit::Commit::Asynchronous,
        log_idle_runs: true,
    };
    let summary = ::normalizer::run_once(&pool, &options, &CancellationToken::new()).await?;
    pool.close().await;
    let drained = Drained {
        created: summary.created,
        errors: summary.errors,
        batch_ms: summary
            .batch_times
            .iter()
            .map(|t| t.as_secs_f64() * 1000.0)
            .collect(),
    };
    println!("{}", serde_json::to_string(&drained)?);
    Ok(())
}

/// Drains the queue with `count` normaliser processes at once.
async fn run_instances(url: &str, count: usize) -> anyhow::Result<Vec<Drained>> {
    let mut children = Vec::with_capacity(count);
    for _ in 0..count {
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("normalizer") // never parsed: the child sees CHILD_ENV first
            .env(CHILD_ENV, url)
            .env_remove("DATABASE_URL")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("start a normaliser instance")?;
        children.push(child);
    }
    let mut drained = Vec::with_capacity(count);
    for child in children {
        let output = child.wait_with_output().await?;
        anyhow::ensure!(output.status.success(), "a normaliser instance failed");
        drained.push(serde_json::from_slice(&output.stdout)?);
    }
    Ok(drained)
}

/// The 99th percentile of the batch transaction times, in milliseconds.
fn p99_ms(mut times: Vec<f64>) -> f64 {
    if times.is_empty() {
        return 0.0;
    }
    times.sort_by(f64::total_cmp);
    let index = ((times.len() as f64 * 0.99).ceil() as usize).clamp(1, times.len()) - 1;
    times[index]
}

/// Every run starts from the same state: the whole queue waiting, an empty
/// processed_data, no dead tuples, a fresh checkpoint.
async fn reset(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("TRUNCATE processed_data").execute(pool).await?;
    sqlx::query("UPDATE raw_data SET is_processed = false WHERE is_processed")
        .execute(pool)
        .await?;
    sqlx::query("VACUUM ANALYZE raw_data").execute(pool).await?;
    sqlx::query("CHECKPOINT").execute(pool).await?;
    Ok(())
}

/// Loads `rows` listings of the simulator's catalogue into raw_data by binary
/// COPY, as the loader's initial load would have left them. Returns the
/// average size of a listing's JSON.
async fn load_raw_rows(pool: &PgPool, rows: usize) -> anyhow::Result<usize> {
    let catalogue = SimConfig::default().catalogue();
    anyhow::ensure!(
        rows <= catalogue.total_listings(),
        "the catalogue has {} listings",
        catalogue.total_listings()
    );
    let created_at = chrono::Utc::now();
    let mut conn = pool.acquire().await?;
    let mut copy = conn
        .copy_in_raw(
            "COPY raw_data (inner_id, upstream_id, change_type, created_at, data, source) FROM STDIN (FORMAT binary)",
        )
        .await?;
    let mut writer = BinaryCopyWriter::new();
    let mut bytes = 0;
    for start in (0..rows).step_by(COPY_CHUNK_ROWS) {
        for index in start..(start + COPY_CHUNK_ROWS).min(rows) {
            let data = catalogue.listing(index as u64).to_string();
            bytes += data.len();
            writer
                .begin_row(6)
                .text(&catalogue.inner_id(index as u64))
                .int8(index as i64 + 1)
                .text("added")
                .timestamptz(created_at)
                .jsonb(&data)
                .text("initial_load");
        }
        copy.send(writer.take()).await?;
    }
    copy.send(writer.finish()).await?;
    copy.finish().await.context("COPY raw_data")?;
    drop(conn);
    eprintln!("  loaded {rows} raw rows from the simulator's catalogue");
    Ok(bytes / rows.max(1))
}
