//! Raw Postgres ceilings the other benchmarks compare to: how fast this
//! machine's Postgres takes listing-sized JSONB rows by binary COPY, by
//! 200-row UNNEST inserts and by single-row autocommit inserts.

use std::time::Instant;

use anyhow::Context;
use db::copy::BinaryCopyWriter;
use sqlx::PgPool;

use crate::harness::{per_second, BenchDatabase, Better, Figure, Plan, Report};
use crate::listings;

const DEFAULT_ROWS: usize = 250_000;
/// Single-row autocommit is slow by nature: measure it on fewer rows.
const AUTOCOMMIT_ROWS: usize = 5_000;
/// COPY payloads are sent in chunks of this many rows.
const COPY_CHUNK_ROWS: usize = 1_000;

const TABLE: &str = "CREATE UNLOGGED TABLE IF NOT EXISTS bench_ceiling (
    id bigserial PRIMARY KEY,
    inner_id varchar(64) NOT NULL UNIQUE,
    data jsonb NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now())";

pub async fn run(db: &BenchDatabase, plan: Plan, rows: Option<usize>) -> anyhow::Result<Report> {
    let rows = rows.unwrap_or(DEFAULT_ROWS);
    let docs = listings::generate(rows);
    let avg_bytes = docs.iter().map(|(_, d)| d.len()).sum::<usize>() / docs.len().max(1);
    // Logged like raw_data: the table must be WAL-logged for honest figures.
    let table = TABLE.replace("UNLOGGED ", "");
    sqlx::query(&table).execute(&db.pool).await?;

    let pool = &db.pool;
    let copy_binary = plan
        .measure("copy_binary_jsonb", || async {
            reset(pool).await?;
            let start = Instant::now();
            copy_binary(pool, &docs).await?;
            Ok(per_second(docs.len(), start.elapsed()))
        })
        .await?;
    let copy_text = plan
        .measure("copy_text_jsonb", || async {
            reset(pool).await?;
            let start = Instant::now();
            copy_text(pool, &docs).await?;
            Ok(per_second(docs.len(), start.elapsed()))
        })
        .await?;
    let unnest = plan
        .measure("unnest_insert_200", || async {
            reset(pool).await?;
            let start = Instant::now();
            for chunk in docs.chunks(200) {
                unnest_insert(pool, chunk).await?;
            }
            Ok(per_second(docs.len(), start.elapsed()))
        })
        .await?;
    let single = &docs[..AUTOCOMMIT_ROWS.min(docs.len())];
    let autocommit = plan
        .measure("single_row_autocommit", || async {
            reset(pool).await?;
            let start = Instant::now();
            for (inner_id, data) in single {
                sqlx::query("INSERT INTO bench_ceiling (inner_id, data) VALUES ($1, $2::jsonb)")
                    .bind(inner_id)
                    .bind(data)
                    .execute(pool)
                    .await?;
            }
            Ok(per_second(single.len(), start.elapsed()))
        })
        .await?;

    let rows_per_s = |name: &str, value, baseline: Option<(&str, f64)>| {
        Figure::new(name, "rows/s", value, baseline, Better::Higher, None)
    };
    let copy_binary_median = copy_binary.median;
    Ok(Report {
        bench: "ceilings",
        context: format!(
            "{rows} listing rows of ~{avg_bytes} bytes JSONB each (single-row: {} rows), {} run(s) after {} warm-up",
            single.len(),
            plan.runs,
            plan.warmup
        ),
        figures: vec![
            rows_per_s("copy_binary_jsonb", copy_binary, Some(("copy_text_jsonb", copy_text.median))),
            rows_per_s("copy_text_jsonb", copy_text, None),
            rows_per_s("unnest_insert_200", unnest, Some(("copy_binary_jsonb", copy_binary_median))),
            rows_per_s(
                "single_row_autocommit",
                autocommit,
                Some(("copy_binary_jsonb", copy_binary_median)),
            ),
        ],
    })
}

async fn reset(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("TRUNCATE bench_ceiling RESTART IDENTITY")
        .execute(pool)
        .await?;
    // Start every run from a clean WAL position so runs are comparable.
    sqlx::query("CHECKPOINT").execute(pool).await?;
    Ok(())
}

async fn copy_binary(pool: &PgPool, docs: &[(String, String)]) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    let mut copy = conn
        .copy_in_raw("COPY bench_ceiling (inner_id, data) FROM STDIN (FORMAT binary)")
        .await?;
    let mut writer = BinaryCopyWriter::new();
    for chunk in docs.chunks(COPY_CHUNK_ROWS) {
        for (inner_id, data) in chunk {
            writer.begin_row(2).text(inner_id).jsonb(data);
        }
        copy.send(writer.take()).await?;
    }
    copy.send(writer.finish()).await?;
    copy.finish().await.context("COPY binary")?;
    Ok(())
}

async fn copy_text(pool: &PgPool, docs: &[(String, String)]) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    let mut copy = conn
        .copy_in_raw("COPY bench_ceiling (inner_id, data) FROM STDIN (FORMAT text)")
        .await?;
    let mut buf = String::with_capacity(COPY_CHUNK_ROWS * 4500);
    for chunk in docs.chunks(COPY_CHUNK_ROWS) {
        buf.clear();
        for (inner_id, data) in chunk {
            buf.push_str(inner_id);
            buf.push('\t');
            escape_copy_text(data, &mut buf);
            buf.push('\n');
        }
        copy.send(buf.as_bytes()).await?;
    }
    copy.finish().await.context("COPY text")?;
    Ok(())
}

/// COPY text format escapes backslash, tab, newline and carriage return.
fn escape_copy_text(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

async fn unnest_insert(pool: &PgPool, chunk: &[(String, String)]) -> anyhow::Result<()> {
    let (ids, data): (Vec<&str>, Vec<&str>) =
        chunk.iter().map(|(i, d)| (i.as_str(), d.as_str())).unzip();
    sqlx::query(
        "INSERT INTO bench_ceiling (inner_id, data)
         SELECT i, d::jsonb FROM UNNEST($1::varchar[], $2::text[]) AS t(i, d)",
    )
    .bind(&ids)
    .bind(&data)
    .execute(pool)
    .await?;
    Ok(())
}
