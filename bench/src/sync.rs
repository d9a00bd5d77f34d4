//! Sync: two databases on the bench's server, the working one (the bench
//! database) and production (a sibling). Each figure beside a baseline
//! measured in the same run:
//! - full push of 250,000 processed_data rows against a raw binary
//!   `COPY (SELECT ...) TO STDOUT | COPY ... FROM STDIN` pipe into the same,
//!   identically indexed, table on production;
//! - incremental push of 15,000 changed rows, against the full push's time;
//! - verify (both sides' checksums), against the full push's time;
//! - full push over an emulated 50 ms link (slow_link.rs) against row-by-row
//!   upserts over the same link, measured on fewer rows and taken per row;
//!   with the round trips per batch the link saw.

use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use db::sync_tables::Direction;
use futures::StreamExt;
use settings::SyncTable;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::harness::{per_second, BenchDatabase, Better, Figure, Measured, Plan, Report};
use crate::slow_link::SlowLink;

const DEFAULT_ROWS: usize = 250_000;
/// The incremental figure changes this share of the rows (15,000 of 250,000).
const CHANGED_PER_MILLE: usize = 60;
const BATCH: usize = 1_000;
const FILL_CHUNK_ROWS: usize = 100_000;
const LINK_RTT: Duration = Duration::from_millis(50);
/// Rows the row-by-row baseline upserts over the slow link (one round trip
/// each: the whole table would take hours); its figure is per row.
const ROW_BY_ROW_ROWS: usize = 200;

struct Sides {
    working: PgPool,
    production: PgPool,
    /// Production's table, through the slow link.
    production_far: PgPool,
    link: SlowLink,
    /// The columns that travel (all but sync_xid), as sync lists them.
    spec: ::sync::tables::TableSpec,
}

pub async fn run(db: &BenchDatabase, plan: Plan, rows: Option<usize>) -> anyhow::Result<Report> {
    let rows = rows.unwrap_or(DEFAULT_ROWS);
    let target = db.sibling("production").await?;
    let result = measure(db, &target, plan, rows).await;
    target.drop_database().await?;
    result
}

async fn measure(
    db: &BenchDatabase,
    target: &BenchDatabase,
    plan: Plan,
    rows: usize,
) -> anyhow::Result<Report> {
    let sides = connect(db, target).await?;
    let avg_bytes = fill(&sides.working, rows).await?;
    let changed = (rows * CHANGED_PER_MILLE / 1000).max(1);
    let mut figures = Vec::new();

    // Full push against the raw pipe, alternating; the last run is a push,
    // so production ends identical and the mark is set for the next figures.
    let measured = plan
        .measure_alternating(&["raw_copy_pipe", "sync_push_full"], |variant| {
            let sides = &sides;
            async move {
                reset_target(sides).await?;
                let start = Instant::now();
                if variant == 0 {
                    raw_pipe(sides, rows).await?;
                } else {
                    let report = push(&sides.working, &sides.production).await?;
                    anyhow::ensure!(report.inserted as usize == rows, "{report:?}");
                }
                Ok(per_second(rows, start.elapsed()))
            }
        })
        .await?;
    let [pipe, full]: [Measured; 2] = measured
        .try_into()
        .map_err(|_| anyhow::anyhow!("two variants measured"))?;
    let full_seconds = rows as f64 / full.median;
    figures.push(Figure::new(
        "raw COPY pipe",
        "rows/s",
        pipe.clone(),
        None,
        Better::Higher,
        None,
    ));
    figures.push(Figure::new(
        "sync push, full",
        "rows/s",
        full,
        Some(("raw COPY pipe", pipe.median)),
        Better::Higher,
        Some(0.8),
    ));

    let incremental = plan
        .measure("sync_push_incremental", || {
            let sides = &sides;
            async move {
                change_rows(&sides.working, changed).await?;
                let start = Instant::now();
                let report = push(&sides.working, &sides.production).await?;
                let elapsed = start.elapsed();
                anyhow::ensure!(
                    report.read as usize == changed && report.updated as usize == changed,
                    "{report:?}"
                );
                Ok(elapsed.as_secs_f64())
            }
        })
        .await?;
    figures.push(Figure::new(
        format!("sync push, {changed} changed"),
        "s",
        incremental,
        Some(("full push (s)", full_seconds)),
        Better::Lower,
        Some(0.1),
    ));

    let verify = plan.measure("sync_verify", || verify_once(&sides)).await?;
    figures.push(Figure::new(
        "sync verify",
        "s",
        verify,
        Some(("full push (s)", full_seconds)),
        Better::Lower,
        Some(0.5),
    ));

    figures.extend(slow_link_figures(&sides, plan, rows).await?);
    Ok(Report {
        bench: "sync",
        context: format!(
            "{rows} processed_data rows (~{avg_bytes} bytes each, the api bench's fill), batch {BATCH}, working and production databases on one throwaway server; {changed} rows changed for the incremental push; slow link: {} ms round trip added by a TCP proxy, bandwidth unlimited, row-by-row measured on {ROW_BY_ROW_ROWS} rows; {} run(s) after {} warm-up",
            LINK_RTT.as_millis(),
            plan.runs,
            plan.warmup
        ),
        figures,
    })
}

async fn slow_link_figures(sides: &Sides, plan: Plan, rows: usize) -> anyhow::Result<Vec<Figure>> {
    let rows_json: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT to_jsonb(p) - 'sync_xid' FROM processed_data p ORDER BY inner_id LIMIT $1",
    )
    .bind(ROW_BY_ROW_ROWS as i64)
    .fetch_all(&sides.working)
    .await?;
    let upsert = row_upsert(&sides.spec);
    let trips_per_batch = Mutex::new(Vec::new());
    let trips_per_row = Mutex::new(Vec::new());
    let measured = plan
        .measure_alternating(&["row_by_row_50ms", "sync_push_full_50ms"], |variant| {
            let (rows_json, upsert) = (&rows_json, &upsert);
            let (trips_per_batch, trips_per_row) = (&trips_per_batch, &trips_per_row);
            async move {
                reset_target(sides).await?;
                if variant == 0 {
                    let mut conn = sides.production_far.acquire().await?;
                    sides.link.take_round_trips();
                    let start = Instant::now();
                    for row in rows_json {
                        sqlx::query(upsert).bind(row).execute(&mut *conn).await?;
                    }
                    let elapsed = start.elapsed();
                    let trips = sides.link.take_round_trips();
                    trips_per_row
                        .lock()
                        .unwrap()
                        .push(trips as f64 / rows_json.len() as f64);
                    return Ok(per_second(rows_json.len(), elapsed));
                }
                sides.link.take_round_trips();
                let start = Instant::now();
                let report = push(&sides.working, &sides.production_far).await?;
                let elapsed = start.elapsed();
                let trips = sides.link.take_round_trips();
                anyhow::ensure!(report.inserted as usize == rows, "{report:?}");
                trips_per_batch
                    .lock()
                    .unwrap()
                    .push(trips as f64 / report.batches as f64);
                Ok(per_second(rows, elapsed))
            }
        })
        .await?;
    let [row_by_row, far]: [Measured; 2] = measured
        .try_into()
        .map_err(|_| anyhow::anyhow!("two variants measured"))?;
    let measured_only = |runs: Mutex<Vec<f64>>| {
        let mut runs = runs.into_inner().unwrap();
        Measured::from_runs(runs.split_off(runs.len() - plan.runs))
    };
    let per_batch = measured_only(trips_per_batch);
    let per_row = measured_only(trips_per_row);
    Ok(vec![
        Figure::new(
            "row-by-row upserts, 50 ms link",
            "rows/s",
            row_by_row.clone(),
            None,
            Better::Higher,
            None,
        ),
        Figure::new(
            "sync push full, 50 ms link",
            "rows/s",
            far,
            Some(("row-by-row upserts", row_by_row.median)),
            Better::Higher,
            None,
        ),
        Figure::new(
            "  round trips per batch",
            "trips",
            per_batch,
            Some((
                &format!("row-by-row per {BATCH} rows"),
                per_row.median * BATCH as f64,
            )),
            Better::Higher,
            None,
        ),
    ])
}

async fn connect(db: &BenchDatabase, target: &BenchDatabase) -> anyhow::Result<Sides> {
    let working = PgPoolOptions::new()
        .max_connections(3)
        .connect(&db.url())
        .await?;
    let production_options = PgConnectOptions::from_str(&target.url())?;
    let production = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(production_options.clone())
        .await?;
    let upstream = tokio::net::lookup_host((
        production_options.get_host().to_owned(),
        production_options.get_port(),
    ))
    .await?
    .next()
    .context("production's address")?;
    let link = SlowLink::start(upstream, LINK_RTT).await?;
    let production_far = PgPoolOptions::new()
        .max_connections(2)
        .min_connections(1)
        .connect_with(production_options.port(link.port()))
        .await?;
    let mut conn = working.acquire().await?;
    let spec = ::sync::tables::describe(&mut conn, "processed_data", None).await?;
    drop(conn);
    Ok(Sides {
        working,
        production,
        production_far,
        link,
        spec,
    })
}

fn table() -> Vec<SyncTable> {
    vec![SyncTable {
        name: "processed_data".into(),
        key: vec!["inner_id".into()],
    }]
}

async fn push(working: &PgPool, production: &PgPool) -> anyhow::Result<::sync::TableReport> {
    let ends = ::sync::Ends {
        working: working.clone(),
        production: production.clone(),
    };
    let options = ::sync::RunOptions {
        batch_size: BATCH,
        dry_run: false,
        prune: false,
        full: false,
        progress_interval: Duration::from_secs(3600),
    };
    let mut reports = ::sync::run::run(
        Direction::Push,
        &ends,
        &table(),
        &options,
        &CancellationToken::new(),
    )
    .await?;
    Ok(reports.remove(0))
}

/// Production's table empty, no mark: the next push is a full one.
async fn reset_target(sides: &Sides) -> anyhow::Result<()> {
    sqlx::query("TRUNCATE processed_data")
        .execute(&sides.production)
        .await?;
    sqlx::query("DELETE FROM sync_table_state")
        .execute(&sides.working)
        .await?;
    sqlx::query("CHECKPOINT").execute(&sides.working).await?;
    Ok(())
}

/// The ceiling: every travelling column of every row, binary COPY out of
/// the working table straight into production's.
async fn raw_pipe(sides: &Sides, rows: usize) -> anyhow::Result<()> {
    let columns = sides.spec.column_list();
    let mut source = sides.working.acquire().await?;
    let mut target = sides.production.acquire().await?;
    let mut copy = target
        .copy_in_raw(&format!(
            "COPY processed_data ({columns}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let mut stream = source
        .copy_out_raw(&format!(
            "COPY (SELECT {columns} FROM processed_data) TO STDOUT (FORMAT binary)"
        ))
        .await?;
    while let Some(chunk) = stream.next().await {
        copy.send(chunk?).await?;
    }
    drop(stream);
    let copied = copy.finish().await?;
    anyhow::ensure!(copied as usize == rows, "the pipe copied {copied} rows");
    Ok(())
}

/// Changes the price of `changed` rows spread over the whole key range
/// (the same rows each run; each run changes them again).
async fn change_rows(working: &PgPool, changed: usize) -> anyhow::Result<()> {
    let done = sqlx::query(
        "UPDATE processed_data SET price = coalesce(price, 0) + 1
         WHERE inner_id IN (SELECT inner_id FROM processed_data ORDER BY md5(inner_id) LIMIT $1)",
    )
    .bind(changed as i64)
    .execute(working)
    .await?;
    anyhow::ensure!(done.rows_affected() as usize == changed);
    Ok(())
}

async fn verify_once(sides: &Sides) -> anyhow::Result<f64> {
    let mut source = sides.working.acquire().await?;
    let mut target = sides.production.acquire().await?;
    let start = Instant::now();
    let check =
        ::sync::verify::check_table(&mut source, &mut target, "processed_data", None).await?;
    let elapsed = start.elapsed();
    anyhow::ensure!(check.matches(), "{}", check.line());
    Ok(elapsed.as_secs_f64())
}

/// One row upserted per statement, rewriting it only when it differs: what
/// a client without COPY does.
fn row_upsert(spec: &::sync::tables::TableSpec) -> String {
    let columns = spec.column_list();
    let values: Vec<&str> = spec
        .columns
        .iter()
        .filter(|c| !spec.key.contains(c))
        .map(|c| c.ident.as_str())
        .collect();
    let set = values
        .iter()
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let side = |alias: &str| {
        values
            .iter()
            .map(|c| format!("{alias}.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "INSERT INTO processed_data AS tgt ({columns})
         SELECT {columns} FROM jsonb_populate_record(NULL::processed_data, $1)
         ON CONFLICT ({key}) DO UPDATE SET {set}
         WHERE ROW({t}) IS DISTINCT FROM ROW({e})",
        key = spec.key_list(),
        t = side("tgt"),
        e = side("EXCLUDED"),
    )
}

/// `rows` listings into the working processed_data (the api bench's fill),
/// vacuumed and analysed. Returns the average row size.
async fn fill(pool: &PgPool, rows: usize) -> anyhow::Result<i64> {
    let start = Instant::now();
    let mut from = 0;
    while from < rows {
        let to = (from + FILL_CHUNK_ROWS).min(rows);
        sqlx::query(include_str!("api_fill.sql"))
            .bind(from as i64)
            .bind(to as i64 - 1)
            .execute(pool)
            .await
            .with_context(|| format!("fill rows {from}..{to}"))?;
        from = to;
    }
    sqlx::query("VACUUM ANALYZE processed_data")
        .execute(pool)
        .await?;
    let avg: i64 = sqlx::query_scalar("SELECT avg(pg_column_size(p))::int8 FROM processed_data p")
        .fetch_one(pool)
        .await?;
    eprintln!(
        "bench sync: {rows} rows in the working processed_data in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(avg)
}
