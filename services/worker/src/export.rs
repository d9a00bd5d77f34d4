//! `worker results export --format json|csv [--out FILE]`: every result,
//! streamed from Postgres row by row into the writer (constant memory). CSV
//! goes through the csv crate (quoting is its business); JSON is an array
//! written one element at a time.

use std::io::Write;

use anyhow::Context;
use db::PgPool;
use futures::TryStreamExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Csv,
}

/// Writes every result to `out`; returns how many.
pub async fn export(pool: &PgPool, format: Format, out: impl Write) -> anyhow::Result<u64> {
    let mut rows = db::results::stream_all(pool);
    let mut n = 0u64;
    match format {
        Format::Json => {
            let mut out = std::io::BufWriter::new(out);
            out.write_all(b"[")?;
            while let Some(row) = rows.try_next().await.context("Failed to read results")? {
                if n > 0 {
                    out.write_all(b",")?;
                }
                out.write_all(b"\n")?;
                serde_json::to_writer(&mut out, &row)?;
                n += 1;
            }
            out.write_all(b"\n]\n")?;
            out.flush()?;
        }
        Format::Csv => {
            let mut csv = csv::Writer::from_writer(out);
            csv.write_record([
                "task_id",
                "kind",
                "target",
                "status_code",
                "headers",
                "body",
                "body_truncated",
                "worker_id",
                "fetched_at",
            ])?;
            while let Some(row) = rows.try_next().await.context("Failed to read results")? {
                csv.write_record([
                    row.task_id.to_string(),
                    row.kind,
                    row.target,
                    row.status_code.to_string(),
                    row.headers.to_string(),
                    row.body.unwrap_or_default(),
                    row.body_truncated.to_string(),
                    row.worker_id.to_string(),
                    row.fetched_at.to_rfc3339(),
                ])?;
                n += 1;
            }
            csv.flush()?;
        }
    }
    Ok(n)
}

/// Exports to `out` (a file, replaced) or stdout.
pub async fn to_path(
    pool: &PgPool,
    format: Format,
    out: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("Failed to create {}", path.display()))?;
            let n = export(pool, format, file).await?;
            tracing::info!("Exported {n} result(s) to {}", path.display());
        }
        // Logs go to stdout too: nothing but the export may be written there.
        None => {
            export(pool, format, std::io::stdout().lock()).await?;
        }
    }
    Ok(())
}
