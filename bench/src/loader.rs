//! The loader's figures (issue 4), each beside a baseline measured in the
//! same run:
//! - initial load of the whole simulated catalogue at zero latency, listings/s;
//! - the database write path alone (the loader's `PagePipeline` fed 200-row
//!   chunks with its default settings: fenced COPY + cursor, two writes in
//!   flight, asynchronous commit; also on one connection and with
//!   synchronous commit, for comparison) against a binary COPY of the same
//!   rows in the same chunks, one after the other on one connection;
//! - with 100 ms simulated latency, end-to-end wall time of 300 pages against
//!   a loop that fetches the same pages and throws them away;
//! - the daily update of one day of changes: seconds, and tuples written
//!   against changes received.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use che168_sim::{Faults, RunningSim, SimConfig};
use db::commit::Commit;
use db::copy::BinaryCopyWriter;
use db::load_state::PageSpan;
use domain::change::OfferItem;
use loader::pipeline::{PagePipeline, PageRows};
use loader::{DailyOptions, InitialOptions};
use settings::{Env, Settings};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::harness::{per_second, BenchDatabase, Better, Figure, Measured, Plan, Report};

const DEFAULT_LISTINGS: usize = 250_000;
/// The write-path figure keeps its rows parsed in memory: cap them.
const WRITE_PATH_MAX_ROWS: usize = 50_000;
const CHUNK_ROWS: usize = 200;
const LATENCY_PAGES: u32 = 300;
const CHANGES_PER_DAY: usize = 15_000;

pub async fn run(db: &BenchDatabase, plan: Plan, rows: Option<usize>) -> anyhow::Result<Report> {
    let listings = rows.unwrap_or(DEFAULT_LISTINGS);
    let pool = &db.pool;
    let days = u32::try_from(plan.warmup + plan.runs + 1)?;
    let today = chrono::Utc::now().date_naive();
    let config = SimConfig {
        listings,
        days,
        first_day: today - chrono::Duration::days(i64::from(days) - 1),
        changes_per_day: CHANGES_PER_DAY,
        ..SimConfig::default()
    };
    let sim = che168_sim::spawn(config.clone()).await?;
    let settings = settings_for(&sim)?;

    // 1. 100 ms latency: the loader against a fetch-and-discard loop.
    let pages = u32::try_from(listings.div_ceil(20))?;
    let latency_pages = LATENCY_PAGES.min(pages);
    sim.set_faults(Faults {
        latency: Duration::from_millis(100),
        ..Faults::default()
    });
    let settings_ref = &settings;
    let latency = plan
        .measure_alternating(
            &["fetch_only_300_pages_100ms", "initial_load_300_pages_100ms"],
            |variant| async move {
                if variant == 0 {
                    return fetch_only(settings_ref, latency_pages).await;
                }
                reset(pool).await?;
                let start = Instant::now();
                initial(settings_ref, pool, Some(latency_pages)).await?;
                Ok(start.elapsed().as_secs_f64())
            },
        )
        .await?;
    let [fetch_latency, loader_latency]: [Measured; 2] = latency
        .try_into()
        .map_err(|_| anyhow::anyhow!("two variants measured"))?;
    sim.set_faults(Faults::default());

    // 2. The write path alone against binary COPY, same rows, same chunks.
    let write_rows = listings.min(WRITE_PATH_MAX_ROWS);
    let events = catalogue_events(&sim, write_rows)?;
    let texts: Vec<&str> = events.iter().map(OfferItem::data_json).collect();
    let (events, texts) = (&events, &texts);
    let default_connections = settings.loader.write_connections.get();
    // A run here takes seconds, and one run's own spread (checkpoints, OS
    // writeback) is about ±10 %: three times the runs, for a median that
    // tells a few percent apart.
    let write_plan = Plan {
        runs: plan.runs * 3,
        ..plan
    };
    let write = write_plan
        .measure_alternating(
            &[
                "copy_binary_200",
                "write_path_200",
                "write_path_200_one_connection",
                "write_path_200_synchronous_commit",
            ],
            |variant| async move {
                reset(pool).await?;
                start_cursor(pool).await?;
                let (connections, commit) = match variant {
                    1 => (default_connections, Commit::Asynchronous),
                    2 => (1, Commit::Asynchronous),
                    _ => (default_connections, Commit::Synchronous),
                };
                let start = Instant::now();
                if variant == 0 {
                    for (chunk, text) in events.chunks(CHUNK_ROWS).zip(texts.chunks(CHUNK_ROWS)) {
                        copy_chunk(pool, chunk, text).await?;
                    }
                } else {
                    write_chunks(pool, events, connections, commit).await?;
                }
                Ok(per_second(events.len(), start.elapsed()))
            },
        )
        .await?;
    let [copy, write_path, write_path_one, write_path_sync]: [Measured; 4] = write
        .try_into()
        .map_err(|_| anyhow::anyhow!("four variants measured"))?;

    // 3. The whole catalogue at zero latency, against fetching it alone.
    let fetch_all = plan
        .measure("fetch_only_all_pages", || async {
            let secs = fetch_only(&settings, pages).await?;
            Ok(listings as f64 / secs)
        })
        .await?;
    let initial_load = plan
        .measure("initial_load_all", || async {
            reset(pool).await?;
            let start = Instant::now();
            let report = initial(&settings, pool, None).await?;
            anyhow::ensure!(
                report.inserted as usize == listings,
                "loaded {} of {listings}",
                report.inserted
            );
            Ok(per_second(listings, start.elapsed()))
        })
        .await?;

    // 4. Daily update: one simulated day per run, on top of the full catalogue.
    let next_day = AtomicI64::new(0);
    let first_day = config.first_day;
    let sim_today = sim.catalogue().today();
    let written = std::sync::Mutex::new(Vec::new());
    let received = std::sync::Mutex::new(Vec::new());
    let daily_seconds = plan
        .measure("daily_update_one_day", || async {
            let date = first_day + chrono::Duration::days(next_day.fetch_add(1, Ordering::SeqCst));
            let start = Instant::now();
            let report = loader::run_daily(
                &settings,
                pool.clone(),
                CancellationToken::new(),
                DailyOptions {
                    date: Some(date),
                    today: Some(sim_today),
                    max_dates: None,
                },
            )
            .await?;
            let secs = start.elapsed().as_secs_f64();
            anyhow::ensure!(
                report.dates_completed == vec![date],
                "date {date} not completed: {report:?}"
            );
            written.lock().unwrap().push(report.rows_written() as f64);
            received.lock().unwrap().push(report.received as f64);
            Ok(secs)
        })
        .await?;
    let runs = plan.runs;
    let measured = |all: Vec<f64>| Measured::from_runs(all[all.len() - runs..].to_vec());
    let written = measured(written.into_inner().unwrap());
    let received = measured(received.into_inner().unwrap());
    sim.shutdown().await;

    let copy_median = copy.median;
    Ok(Report {
        bench: "loader",
        context: format!(
            "simulator on 127.0.0.1: {listings} listings; write path on {write_rows} rows; \
             latency figure on {latency_pages} pages at 100 ms; daily: {CHANGES_PER_DAY} changes/day; \
             {} run(s) after {} warm-up ({} runs for the write path)",
            plan.runs, plan.warmup, write_plan.runs
        ),
        figures: vec![
            Figure::new("initial_load_zero_latency", "rows/s", initial_load, Some(("fetch_only_zero_latency", fetch_all.median)), Better::Higher, None),
            Figure::new("write_path_200_rows", "rows/s", write_path, Some(("copy_binary_200_rows", copy_median)), Better::Higher, Some(1.0)),
            Figure::new("write_path_200_one_connection", "rows/s", write_path_one, Some(("copy_binary_200_rows", copy_median)), Better::Higher, None),
            Figure::new("write_path_200_synchronous_commit", "rows/s", write_path_sync, Some(("copy_binary_200_rows", copy_median)), Better::Higher, None),
            Figure::new("initial_300_pages_100ms", "s", loader_latency, Some(("fetch_only_300_pages_100ms", fetch_latency.median)), Better::Lower, Some(1.10)),
            Figure::new("daily_update_15k_changes", "s", daily_seconds, None, Better::Lower, None),
            Figure::new("daily_tuples_written", "tuples", written, Some(("changes_received", received.median)), Better::Lower, None),
        ],
    })
}

fn settings_for(sim: &RunningSim) -> anyhow::Result<Settings> {
    let env = Env::from_pairs([
        ("CHE168_BASE_URL", sim.base_url()),
        ("CHE168_API_KEY", "sim-key".to_owned()),
        (
            "CARFEED__UPSTREAM__MAX_REQUESTS_PER_SECOND",
            "1000000".to_owned(),
        ),
        ("CARFEED__UPSTREAM__RETRY__INTERVAL", "100ms".to_owned()),
        ("CARFEED__LOADER__PROGRESS_INTERVAL", "1h".to_owned()),
    ]);
    settings::load_from(&env).context("bench settings")
}

async fn initial(
    settings: &Settings,
    pool: &PgPool,
    max_pages: Option<u32>,
) -> anyhow::Result<loader::RunReport> {
    let report = loader::run_initial(
        settings,
        pool.clone(),
        CancellationToken::new(),
        InitialOptions { max_pages },
    )
    .await?;
    anyhow::ensure!(
        !report.has_errors() && !report.locked_out,
        "initial load failed: {report:?}"
    );
    Ok(report)
}

/// Fetches pages 1..=pages one after the other and discards them: seconds.
async fn fetch_only(settings: &Settings, pages: u32) -> anyhow::Result<f64> {
    let client = upstream::Client::new(
        upstream::ClientConfig::from_settings(settings)?,
        CancellationToken::new(),
    )?;
    let start = Instant::now();
    for page in 1..=pages {
        let offers = client.offers_page(page).await?;
        std::hint::black_box(offers);
    }
    Ok(start.elapsed().as_secs_f64())
}

/// The first `rows` listings of the catalogue, parsed as the loader parses them.
fn catalogue_events(sim: &RunningSim, rows: usize) -> anyhow::Result<Vec<OfferItem>> {
    let mut events = Vec::with_capacity(rows);
    let mut page = 1;
    while events.len() < rows {
        let body = serde_json::to_vec(&sim.catalogue().offers_page(page))?;
        let parsed = upstream::model::parse_offers_page(&body)?;
        if parsed.items.is_empty() {
            break;
        }
        events.extend(parsed.items);
        page += 1;
    }
    events.truncate(rows);
    Ok(events)
}

async fn reset(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query(
        "TRUNCATE raw_data, initial_load_state, sync_state, operations_log RESTART IDENTITY",
    )
    .execute(pool)
    .await?;
    sqlx::query("CHECKPOINT").execute(pool).await?;
    Ok(())
}

async fn start_cursor(pool: &PgPool) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    db::load_state::start(&mut conn).await?;
    Ok(())
}

/// The loader's write path: every chunk a write of its own (one page each),
/// through the pipeline the loader uses.
async fn write_chunks(
    pool: &PgPool,
    events: &[OfferItem],
    connections: usize,
    commit: Commit,
) -> anyhow::Result<()> {
    let mut pipeline = PagePipeline::new(pool.clone(), commit, connections);
    let mut inserted = 0;
    for (i, chunk) in events.chunks(CHUNK_ROWS).enumerate() {
        let page = i32::try_from(i + 1)?;
        let span = PageSpan {
            first: page,
            count: 1,
            next: Some(page + 1),
        };
        if let Some(stored) = pipeline
            .submit(
                span,
                vec![PageRows {
                    page,
                    items: chunk.to_vec(),
                    rejected: Vec::new(),
                }],
            )
            .await?
        {
            inserted += stored.inserted;
        }
    }
    inserted += pipeline
        .finish()
        .await?
        .iter()
        .map(|s| s.inserted)
        .sum::<u64>();
    anyhow::ensure!(
        inserted == events.len() as u64,
        "stored {inserted} of {} rows",
        events.len()
    );
    Ok(())
}

/// The ceiling: the same rows and columns by binary COPY, one COPY per chunk.
async fn copy_chunk(pool: &PgPool, chunk: &[OfferItem], texts: &[&str]) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    let mut copy = conn
        .copy_in_raw(
            "COPY raw_data (inner_id, upstream_id, change_type, created_at, data, source, active_status, is_processed)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let mut writer = BinaryCopyWriter::new();
    for (event, text) in chunk.iter().zip(texts) {
        writer
            .begin_row(8)
            .text(&event.inner_id)
            .int8(event.id)
            .text(event.change_type.as_str());
        match event.created_at {
            Some(at) => writer.timestamptz(at),
            None => writer.null(),
        };
        writer.jsonb(text).text("initial_load").int4(0).bool(false);
    }
    copy.send(writer.finish()).await?;
    copy.finish().await.context("COPY binary")?;
    Ok(())
}
