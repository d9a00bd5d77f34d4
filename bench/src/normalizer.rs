//! The normaliser: rows/s draining raw rows from the simulator's catalogue
//! (50,000 and 250,000 unless `--rows` says), batch 200, on a freshly loaded
//! `raw_data` that was never analysed and on one after `VACUUM ANALYZE`, one
//! instance and two at once, against the in-database ceiling
//! (normalizer_ceiling.sql: one INSERT ... SELECT typing the main columns in
//! SQL) measured in the same run; the WAL each normalised row costs and the
//! size of `raw_data` and `processed_data` before and after a drain; the p99
//! of the batch transactions.
//!
//! Every run drains a database of its own, loaded for it, so that every
//! variant starts from the same state a new install is in: nothing
//! normalised yet, no dead tuples, a fresh checkpoint. Autovacuum is off on
//! both tables during the run, so "fresh" stays never-analysed however long
//! the drain takes, and "analysed" is exactly one `VACUUM ANALYZE raw_data`.

use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use che168_sim::SimConfig;
use db::copy::BinaryCopyWriter;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::harness::{per_second, BenchDatabase, Better, Figure, Measured, Plan, Report};

const DEFAULT_SIZES: [usize; 2] = [50_000, 250_000];
const COPY_CHUNK_ROWS: usize = 2_000;
const P99_GOAL_MS: f64 = 250.0;
/// Issue 27's goals: WAL per normalised row, and fresh against analysed.
const WAL_GOAL_BYTES: f64 = 2_800.0;
const FRESH_GOAL_RATIO: f64 = 0.9;

/// One variant of a run: what drains, and on which `raw_data`.
#[derive(Debug, Clone, Copy)]
struct Variant {
    label: &'static str,
    /// Normaliser instances (0: the in-database ceiling).
    instances: usize,
    analysed: bool,
}

const VARIANTS: [Variant; 5] = [
    Variant {
        label: "in_database_ceiling",
        instances: 0,
        analysed: true,
    },
    Variant {
        label: "1_instance_fresh",
        instances: 1,
        analysed: false,
    },
    Variant {
        label: "1_instance_analysed",
        instances: 1,
        analysed: true,
    },
    Variant {
        label: "2_instances_fresh",
        instances: 2,
        analysed: false,
    },
    Variant {
        label: "2_instances_analysed",
        instances: 2,
        analysed: true,
    },
];

/// What one drain cost besides time.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    wal_per_row: f64,
    raw_before_mb: f64,
    raw_after_mb: f64,
    processed_after_mb: f64,
}

pub async fn run(db: &BenchDatabase, plan: Plan, rows: Option<usize>) -> anyhow::Result<Report> {
    let shipped = instance_settings()?;
    let sizes = rows.map_or(DEFAULT_SIZES.to_vec(), |rows| vec![rows]);
    let mut figures = Vec::new();
    let mut avg_bytes = 0;
    for rows in &sizes {
        let (size_figures, bytes) = run_size(db, plan, *rows).await?;
        figures.extend(size_figures);
        avg_bytes = bytes;
    }
    let sizes = sizes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" and ");
    Ok(Report {
        bench: "normalizer",
        context: format!(
            "{sizes} raw rows from the simulator's catalogue (~{avg_bytes} bytes JSONB each), batch {}, pipeline depth {} (normalizer.batch_size and normalizer.pipeline_depth: config.yaml's, or CARFEED__NORMALIZER__*'s), each normaliser its own process with its own pool, asynchronous commit; every run on a database loaded for it (fresh: never analysed; analysed: VACUUM ANALYZE raw_data after the load; autovacuum off on both tables); WAL and sizes are medians over the runs; {} run(s) after {} warm-up",
            shipped.batch_size, shipped.pipeline_depth, plan.runs, plan.warmup
        ),
        figures,
    })
}

/// Every variant at `rows`, alternating run by run (ceiling, fresh, ...,
/// ceiling, ...) so machine drift does not masquerade as a difference. Each
/// instance is a process of its own with its own pool, as a container of
/// `--scale normalizer=2` would be.
async fn run_size(
    db: &BenchDatabase,
    plan: Plan,
    rows: usize,
) -> anyhow::Result<(Vec<Figure>, usize)> {
    let p99s = Mutex::new(Vec::new());
    let costs = Mutex::new(vec![Vec::new(); VARIANTS.len()]);
    let avg = Mutex::new(0);
    let labels: Vec<String> = VARIANTS
        .iter()
        .map(|v| format!("{rows}_{}", v.label))
        .collect();
    let label_refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let mut round = 0;
    let measured = plan
        .measure_alternating(&label_refs, |index| {
            round += 1;
            let (p99s, costs, avg) = (&p99s, &costs, &avg);
            let suffix = format!("n{round}");
            async move {
                let variant = VARIANTS[index];
                let run_db = db.sibling(&suffix).await?;
                let result = drain_once(&run_db, variant, rows).await;
                run_db.drop_database().await?;
                let (rate, cost, p99, bytes) = result?;
                *avg.lock().unwrap() = bytes;
                costs.lock().unwrap()[index].push(cost);
                if let Some(p99) = p99 {
                    p99s.lock().unwrap().push(p99);
                }
                eprintln!(
                    "    WAL {:.0} bytes/row; raw_data {:.0} -> {:.0} MB; processed_data {:.0} MB",
                    cost.wal_per_row,
                    cost.raw_before_mb,
                    cost.raw_after_mb,
                    cost.processed_after_mb
                );
                Ok(rate)
            }
        })
        .await?;
    let costs = costs.into_inner().unwrap();
    // Only the measured runs (the warm-ups came first).
    let measured_costs = |index: usize| -> Vec<Cost> {
        let all = &costs[index];
        all[all.len() - plan.runs..].to_vec()
    };
    let median_of = |index: usize, pick: fn(&Cost) -> f64| {
        Measured::from_runs(measured_costs(index).iter().map(pick).collect())
    };

    let median = |label: &str| {
        let index = VARIANTS.iter().position(|v| v.label == label).unwrap();
        measured[index].median
    };
    let name = |label: &str| format!("{rows}_{label}");
    let rows_per_s = |label: &str, baseline: Option<(&str, f64)>, goal: Option<f64>| {
        let index = VARIANTS.iter().position(|v| v.label == label).unwrap();
        let baseline = baseline.map(|(b, value)| (name(b), value));
        Figure::new(
            name(label),
            "rows/s",
            measured[index].clone(),
            baseline.as_ref().map(|(b, value)| (b.as_str(), *value)),
            Better::Higher,
            goal,
        )
    };
    let ceiling = ("in_database_ceiling", median("in_database_ceiling"));
    let one = ("1_instance_analysed", median("1_instance_analysed"));
    let two_analysed = ("2_instances_analysed", median("2_instances_analysed"));
    let mut figures = vec![
        rows_per_s("in_database_ceiling", None, None),
        rows_per_s("1_instance_analysed", Some(ceiling), None),
        rows_per_s("1_instance_fresh", Some(one), Some(FRESH_GOAL_RATIO)),
        rows_per_s("2_instances_analysed", Some(one), Some(1.7)),
        rows_per_s(
            "2_instances_fresh",
            Some(two_analysed),
            Some(FRESH_GOAL_RATIO),
        ),
    ];
    for (index, variant) in VARIANTS.iter().enumerate() {
        let goal = variant.instances > 0;
        figures.push(Figure::new(
            name(&format!("wal_per_row_{}", variant.label)),
            "bytes",
            median_of(index, |c| c.wal_per_row),
            goal.then_some(("goal (bytes)", WAL_GOAL_BYTES)),
            Better::Lower,
            goal.then_some(1.0),
        ));
    }
    let one_fresh = VARIANTS
        .iter()
        .position(|v| v.label == "1_instance_fresh")
        .unwrap();
    let mb = |label: &str, value: Measured, baseline: Option<(String, f64)>| {
        let baseline = baseline.as_ref().map(|(b, value)| (b.as_str(), *value));
        Figure::new(name(label), "MB", value, baseline, Better::Lower, None)
    };
    let raw_before = median_of(one_fresh, |c| c.raw_before_mb);
    figures.push(mb("raw_data_before_drain", raw_before.clone(), None));
    figures.push(mb(
        "raw_data_after_drain",
        median_of(one_fresh, |c| c.raw_after_mb),
        Some((name("raw_data_before_drain"), raw_before.median)),
    ));
    figures.push(mb(
        "processed_data_after_drain",
        median_of(one_fresh, |c| c.processed_after_mb),
        None,
    ));
    let mut p99_runs = p99s.into_inner().unwrap();
    // One per one-instance run, two variants a round: the measured ones last.
    let p99_runs = p99_runs.split_off(p99_runs.len() - 2 * plan.runs);
    figures.push(Figure::new(
        name("p99_batch_transaction"),
        "ms",
        Measured::from_runs(p99_runs),
        Some(("goal (ms)", P99_GOAL_MS)),
        Better::Lower,
        Some(1.0),
    ));
    let bytes = avg.into_inner().unwrap();
    Ok((figures, bytes))
}

/// Loads `rows` into the run's own database, analyses it or not, and drains
/// it once with `variant`: rows/s, what it cost, the p99 batch time of a
/// one-instance drain, and the average JSON size of a listing.
async fn drain_once(
    db: &BenchDatabase,
    variant: Variant,
    rows: usize,
) -> anyhow::Result<(f64, Cost, Option<f64>, usize)> {
    let pool = &db.pool;
    sqlx::raw_sql(
        "ALTER TABLE raw_data SET (autovacuum_enabled = false);
         ALTER TABLE processed_data SET (autovacuum_enabled = false)",
    )
    .execute(pool)
    .await?;
    let avg_bytes = load_raw_rows(pool, rows).await?;
    if variant.analysed {
        sqlx::query("VACUUM ANALYZE raw_data").execute(pool).await?;
    }
    sqlx::query("CHECKPOINT").execute(pool).await?;
    let raw_before = mb(pool, "raw_data").await?;
    let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
        .fetch_one(pool)
        .await?;

    let start = Instant::now();
    let mut p99 = None;
    if variant.instances == 0 {
        let done = sqlx::query(include_str!("normalizer_ceiling.sql"))
            .execute(pool)
            .await
            .context("ceiling INSERT ... SELECT")?;
        anyhow::ensure!(
            done.rows_affected() as usize == rows,
            "ceiling wrote {} rows",
            done.rows_affected()
        );
    } else {
        let drained = run_instances(&db.url(), variant.instances).await?;
        let created: u64 = drained.iter().map(|s| s.created).sum();
        let errors: u64 = drained.iter().map(|s| s.errors).sum();
        anyhow::ensure!(created as usize == rows && errors == 0, "{drained:?}");
        if variant.instances == 1 {
            p99 = Some(p99_ms(drained[0].batch_ms.clone()));
        }
    }
    let rate = per_second(rows, start.elapsed());

    let (wal, end): (f64, String) = sqlx::query_as(
        "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)::float8,
                pg_current_wal_insert_lsn()::text",
    )
    .bind(&lsn)
    .fetch_one(pool)
    .await?;
    // Where to look with `pg_waldump --stats=record -s FROM -e TO`.
    eprintln!("    WAL of the drain: {lsn} .. {end}");
    let cost = Cost {
        wal_per_row: wal / rows as f64,
        raw_before_mb: raw_before,
        raw_after_mb: mb(pool, "raw_data").await?,
        processed_after_mb: mb(pool, "processed_data").await?,
    };
    Ok((rate, cost, p99, avg_bytes))
}

/// A table's size with its indexes and TOAST, in MB.
async fn mb(pool: &PgPool, table: &str) -> anyhow::Result<f64> {
    let bytes: i64 = sqlx::query_scalar("SELECT pg_total_relation_size($1::regclass)")
        .bind(table)
        .fetch_one(pool)
        .await?;
    Ok(bytes as f64 / 1_048_576.0)
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

/// The shipped normaliser settings (config.yaml), with the process's
/// `CARFEED__NORMALIZER__*` overrides (to compare batch sizes and depths).
fn instance_settings() -> anyhow::Result<settings::NormalizerSettings> {
    let mut pairs = vec![
        (
            "CONFIG_FILE".to_owned(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/../config.yaml").to_owned(),
        ),
        ("DATABASE_URL".to_owned(), "postgres://unused/db".to_owned()),
    ];
    pairs.extend(std::env::vars().filter(|(name, _)| name.starts_with("CARFEED__NORMALIZER__")));
    let settings =
        settings::load_from(&settings::Env::from_pairs(pairs)).context("bench settings")?;
    Ok(settings.normalizer)
}

async fn drain_in_child(url: &str) -> anyhow::Result<()> {
    let settings = instance_settings()?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(settings.pipeline_depth as u32 + 1)
        .connect(url)
        .await?;
    let options = ::normalizer::Options {
        batch_size: settings.batch_size,
        pipeline_depth: settings.pipeline_depth,
        max_batches: None,
        progress_interval: Duration::from_secs(3600),
        mode: db::commit::Mode::new().commit(db::commit::Commit::Asynchronous),
        log_idle_runs: true,
    };
    let summary = ::normalizer::run_once(&pool, &options, &CancellationToken::new()).await?;
    pool.close().await;
    let per_row = |total: Duration| total.as_secs_f64() * 1e6 / summary.created.max(1) as f64;
    let phases = summary.phases;
    eprintln!(
        "normaliser instance: {} rows; per row: claim {:.0} us, normalise {:.0} us, upsert {:.0} us, mark {:.0} us, wait {:.0} us, commit {:.0} us",
        summary.created,
        per_row(phases.claim),
        per_row(phases.normalise),
        per_row(phases.upsert),
        per_row(phases.mark),
        per_row(phases.wait),
        per_row(phases.commit),
    );
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
