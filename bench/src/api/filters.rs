//! `bench api-filters` (issue 14): p50 latency of `GET /offers` for every
//! documented filter, and of `/filters`, on 1,000,000 rows made from the
//! simulator's listings: 25,000 of its catalogue normalised by the
//! normaliser, then copied in SQL (`INSERT ... SELECT`, indexes built after)
//! with new inner_ids and listing times spread over a year, so each value is
//! as common as in the catalogue.
//!
//! Each filter's value comes from the data: the most common one, and for
//! the equality filters also the rarest (a rare value is the slow case: the
//! page walks its sort's index, then looks the matches up). Requests are
//! sent one after another to a production api; each run's p50 and p99 are
//! logged, the median p50 of the runs is the figure; filters alternate
//! round by round. Uncompressed, as nginx asks the api for its answers.

use std::time::Instant;

use anyhow::Context;
use che168_sim::SimConfig;
use db::copy::BinaryCopyWriter;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::load::{percentile, Load};
use super::server::{Server, Variant, PRODUCTION, SECRET};
use super::{database_url, interleaved};
use crate::harness::{BenchDatabase, Better, Figure, Measured, Plan, Report};

const DEFAULT_ROWS: usize = 1_000_000;
/// Listings of the simulator's catalogue normalised, then copied.
const SIM_LISTINGS: usize = 25_000;
/// Requests per filter and run, after as many unmeasured ones per warm-up.
const REQUESTS: usize = 200;
/// `/filters` without its cache scans every offer: fewer requests.
const UNCACHED_REQUESTS: usize = 3;
const GOAL_MS: f64 = 5.0;
const OFFERS: &str = "/api/v1/offers";

/// The equality filters: parameter and column.
const EQUALITY: &[(&str, &str)] = &[
    ("mark", "mark"),
    ("model", "model"),
    ("city", "city"),
    ("body_type", "body_type"),
    ("engine_type", "engine_type"),
    ("transmission_type", "transmission_type"),
    ("drive_type", "drive_type"),
    ("seller_type", "seller_type"),
];

pub async fn run(db: &BenchDatabase, plan: Plan, rows: Option<usize>) -> anyhow::Result<Report> {
    let rows = rows.unwrap_or(DEFAULT_ROWS);
    fill(&db.pool, rows).await?;
    let cases = cases(&db.pool).await?;
    let token = api::tokens::issue(&db.pool, SECRET, 1, "bench", None).await?[0]
        .expose()
        .to_owned();
    let url = database_url(&db.pool).await?;
    let server = Server::start(&url, &Variant::new("bench-api", PRODUCTION))?;
    let uncached = Server::start(
        &url,
        &Variant::new("bench-api-uncached", PRODUCTION)
            .with("CARFEED__API__FILTERS_CACHE_TTL", "0s"),
    )?;
    let load = Load::new(token, false)?;
    let mut labels = Vec::new();
    let mut urls = Vec::new();
    for (label, pairs) in &cases {
        let url = reqwest::Url::parse_with_params(&format!("{}{OFFERS}", server.base()), pairs)?;
        eprintln!("  {label}: {url}");
        labels.push(label.clone());
        urls.push((url.to_string(), REQUESTS));
    }
    labels.push("/filters".into());
    urls.push((format!("{}/api/v1/filters", server.base()), REQUESTS));
    labels.push("/filters, cache refresh".into());
    urls.push((
        format!("{}/api/v1/filters", uncached.base()),
        UNCACHED_REQUESTS,
    ));
    // Every answer must be a page (or the facets) before anything is timed.
    for (url, _) in &urls {
        load.get(url).await.with_context(|| url.clone())?;
    }
    let runs = interleaved(&plan, &labels, |i| {
        let (load, (url, n)) = (load.clone(), urls[i].clone());
        async move {
            let mut times = load
                .clone()
                .on_generator(async move {
                    let mut times = Vec::with_capacity(n);
                    for _ in 0..n {
                        let start = Instant::now();
                        load.get(&url).await?;
                        times.push(start.elapsed().as_secs_f64() * 1000.0);
                    }
                    Ok(times)
                })
                .await?;
            times.sort_by(f64::total_cmp);
            let p50 = percentile(&times, 0.50);
            let note = format!(
                "{n} requests one after another; p99 {:.2} ms",
                percentile(&times, 0.99)
            );
            Ok((p50, note))
        }
    })
    .await?;
    drop((server, uncached));
    let figures = labels
        .iter()
        .zip(runs)
        .map(|(label, runs)| {
            Figure::new(
                label,
                "ms",
                Measured::from_runs(runs),
                Some(("goal (ms)", GOAL_MS)),
                Better::Lower,
                Some(1.0),
            )
        })
        .collect();
    Ok(Report {
        bench: "api-filters",
        context: format!(
            "{rows} rows in processed_data ({SIM_LISTINGS} listings of the simulator's catalogue, \
             normalised, copied), p50 of {REQUESTS} GET /api/v1/offers one after another per \
             filter and run (limit 20, newest first unless sorted), values the most common \
             (the rarest where it says so); /filters as served (cache of 60 s) and with \
             filters_cache_ttl 0s ({UNCACHED_REQUESTS} requests); {} run(s) after {} warm-up",
            plan.runs, plan.warmup
        ),
        figures,
    })
}

type Case = (String, Vec<(String, String)>);

/// The requests to time: label and query parameters.
async fn cases(pool: &PgPool) -> anyhow::Result<Vec<Case>> {
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let mut cases: Vec<Case> = vec![("no filter".into(), Vec::new())];
    for (parameter, column) in EQUALITY {
        let common = values(pool, column, "DESC", 2).await?;
        let rarest = values(pool, column, "ASC", 1).await?;
        cases.push((
            format!("{parameter}={}", common[0]),
            pairs(&[(parameter, &common[0])]),
        ));
        if rarest[0] != common[0] {
            cases.push((
                format!("{parameter}={} (rarest)", rarest[0]),
                pairs(&[(parameter, &rarest[0])]),
            ));
        }
        if let [first, second, ..] = &common[..] {
            if matches!(*parameter, "mark" | "city" | "body_type") {
                let both = format!("{first},{second}");
                cases.push((format!("{parameter}={both}"), pairs(&[(parameter, &both)])));
            }
        }
    }
    let mark = values(pool, "mark", "DESC", 1).await?.remove(0);
    let model: String = sqlx::query_scalar(
        "SELECT model FROM processed_data WHERE is_active AND mark = $1 AND model IS NOT NULL
         GROUP BY model ORDER BY count(*) DESC, model LIMIT 1",
    )
    .bind(&mark)
    .fetch_one(pool)
    .await?;
    let mark = mark.as_str();
    cases.extend([
        (
            format!("mark={mark}&model={model}"),
            pairs(&[("mark", mark), ("model", &model)]),
        ),
        ("is_dealer=true".into(), pairs(&[("is_dealer", "true")])),
        ("is_dealer=false".into(), pairs(&[("is_dealer", "false")])),
        (
            "price 100,000-200,000".into(),
            pairs(&[("price_from", "100000"), ("price_to", "200000")]),
        ),
        (
            "year 2015-2019".into(),
            pairs(&[("year_from", "2015"), ("year_to", "2019")]),
        ),
        ("km_age_to=50000".into(), pairs(&[("km_age_to", "50000")])),
        (
            format!("mark={mark}&year_from=2015"),
            pairs(&[("mark", mark), ("year_from", "2015")]),
        ),
        (
            format!("mark={mark}&price_to=200000"),
            pairs(&[("mark", mark), ("price_to", "200000")]),
        ),
    ]);
    for (sort, order) in [
        ("listed_at", "asc"),
        ("price", "asc"),
        ("price", "desc"),
        ("year", "desc"),
        ("km_age", "asc"),
    ] {
        cases.push((
            format!("sort={sort}&order={order}"),
            pairs(&[("sort", sort), ("order", order)]),
        ));
    }
    cases.push((
        format!("mark={mark}&sort=km_age&order=asc"),
        pairs(&[("mark", mark), ("sort", "km_age"), ("order", "asc")]),
    ));
    Ok(cases)
}

/// The `column`'s values among active offers by count (`DESC`: most
/// common first), `n` of them.
async fn values(pool: &PgPool, column: &str, order: &str, n: i64) -> anyhow::Result<Vec<String>> {
    let found: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT {column} FROM processed_data WHERE is_active AND {column} IS NOT NULL
         GROUP BY {column} ORDER BY count(*) {order}, {column} LIMIT $1"
    ))
    .bind(n)
    .fetch_all(pool)
    .await?;
    anyhow::ensure!(!found.is_empty(), "no {column} in processed_data");
    Ok(found)
}

/// processed_data with `rows` offers: the simulator's listings through the
/// normaliser, then copied in SQL with the indexes dropped and built again
/// after (much faster than maintaining them row by row).
async fn fill(pool: &PgPool, rows: usize) -> anyhow::Result<()> {
    let start = Instant::now();
    let listings = SIM_LISTINGS.min(rows);
    load_raw(pool, listings).await?;
    let options = ::normalizer::Options {
        batch_size: 1_000,
        pipeline_depth: 2,
        max_batches: None,
        progress_interval: std::time::Duration::from_secs(3600),
        mode: db::commit::Mode::new().commit(db::commit::Commit::Asynchronous),
        log_idle_runs: false,
    };
    let summary = ::normalizer::run_once(pool, &options, &CancellationToken::new()).await?;
    anyhow::ensure!(
        summary.created as usize == listings && summary.errors == 0,
        "the normaliser: {summary:?}"
    );
    let normalised = start.elapsed().as_secs_f64();

    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL maintenance_work_mem = '256MB'")
        .execute(&mut *tx)
        .await?;
    sqlx::query("CREATE TABLE bench_sim_offers AS SELECT * FROM processed_data")
        .execute(&mut *tx)
        .await?;
    sqlx::query("TRUNCATE processed_data")
        .execute(&mut *tx)
        .await?;
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i
         WHERE i.tablename = 'processed_data' AND i.schemaname = current_schema()
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (name, _) in &indexes {
        sqlx::query(&format!("DROP INDEX {name}"))
            .execute(&mut *tx)
            .await?;
    }
    // Every column but those the copy sets or that take their default.
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_name = 'processed_data' AND table_schema = current_schema()
           AND is_generated = 'NEVER' AND column_name NOT IN
               ('inner_id', 'record', 'listed_at', 'created_at', 'updated_at', 'sync_xid')
         ORDER BY ordinal_position",
    )
    .fetch_all(&mut *tx)
    .await?;
    let columns = columns.join(", ");
    let copies = rows.div_ceil(listings);
    // Copy k of listing s: inner_id s-k (the listing's own for k = 0), its
    // record saying so; listed within a year, spread like the api bench's.
    let copied = sqlx::query(&format!(
        "INSERT INTO processed_data ({columns}, inner_id, record, listed_at)
         SELECT {columns}, c.id, jsonb_set(s.record, '{{inner_id}}', to_jsonb(c.id)),
                timestamptz '2025-06-01'
                    + ((s.raw_id + k * 1000003) * 31337 % 31536000) * interval '1 second'
         FROM (SELECT *, row_number() OVER (ORDER BY inner_id) AS n FROM bench_sim_offers) s
         CROSS JOIN generate_series(0, $1 - 1) AS k
         CROSS JOIN LATERAL (SELECT CASE k WHEN 0 THEN s.inner_id
                                     ELSE s.inner_id || '-' || k END AS id) c
         WHERE k * $2 + s.n <= $3"
    ))
    .bind(copies as i64)
    .bind(listings as i64)
    .bind(rows as i64)
    .execute(&mut *tx)
    .await
    .context("copy the listings")?;
    anyhow::ensure!(copied.rows_affected() as usize == rows, "copied {copied:?}");
    for (_, definition) in &indexes {
        sqlx::query(definition).execute(&mut *tx).await?;
    }
    sqlx::query("DROP TABLE bench_sim_offers")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    sqlx::query("VACUUM ANALYZE processed_data")
        .execute(pool)
        .await?;
    eprintln!(
        "bench api-filters: {listings} listings normalised in {normalised:.1} s, \
         {rows} rows in processed_data after {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `count` listings of the simulator's catalogue into raw_data by binary
/// COPY, as the loader's initial load leaves them.
async fn load_raw(pool: &PgPool, count: usize) -> anyhow::Result<()> {
    let catalogue = SimConfig::default().catalogue();
    let created_at = chrono::Utc::now();
    let mut conn = pool.acquire().await?;
    let mut copy = conn
        .copy_in_raw(
            "COPY raw_data (inner_id, upstream_id, change_type, created_at, data, source) \
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let mut writer = BinaryCopyWriter::new();
    for index in 0..count as u64 {
        writer
            .begin_row(6)
            .text(&catalogue.inner_id(index))
            .int8(index as i64 + 1)
            .text("added")
            .timestamptz(created_at)
            .jsonb(&catalogue.listing(index).to_string())
            .text("initial_load");
        if index % 2_000 == 1_999 {
            copy.send(writer.take()).await?;
        }
    }
    copy.send(writer.finish()).await?;
    copy.finish().await.context("COPY raw_data")?;
    Ok(())
}
