//! `worker results export --format json|csv [--out FILE]`: every result,
//! streamed from Postgres row by row into the writer (constant memory). CSV
//! goes through the csv crate (quoting is its business); JSON is an array
//! written one element at a time.
//!
//! Rendered and extracted results (issue 15) add `final_url`, `profile`,
//! `missing_fields` and their record. When every extracted result shares
//! one profile, CSV gives each of its fields a column of its own (lists as
//! JSON arrays); with several profiles the record stays one `data` column
//! of JSON.

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
            let fields = shared_profile_fields(pool).await?;
            let mut csv = csv::Writer::from_writer(out);
            let mut header: Vec<String> = [
                "task_id",
                "kind",
                "target",
                "status_code",
                "headers",
                "body",
                "body_truncated",
                "worker_id",
                "fetched_at",
                "final_url",
                "profile",
                "missing_fields",
            ]
            .map(String::from)
            .to_vec();
            match &fields {
                Some(fields) => header.extend(fields.iter().cloned()),
                None => header.push("data".into()),
            }
            csv.write_record(&header)?;
            while let Some(row) = rows.try_next().await.context("Failed to read results")? {
                let mut record = vec![
                    row.task_id.to_string(),
                    row.kind,
                    row.target,
                    row.status_code.to_string(),
                    row.headers.to_string(),
                    row.body.unwrap_or_default(),
                    row.body_truncated.to_string(),
                    row.worker_id.to_string(),
                    row.fetched_at.to_rfc3339(),
                    row.final_url.unwrap_or_default(),
                    row.profile.unwrap_or_default(),
                    row.missing_fields.map(|m| m.join(" ")).unwrap_or_default(),
                ];
                match &fields {
                    Some(fields) => record.extend(
                        fields
                            .iter()
                            .map(|f| cell(row.data.as_ref().and_then(|d| d.get(f)))),
                    ),
                    None => record.push(row.data.map(|d| d.to_string()).unwrap_or_default()),
                }
                csv.write_record(&record)?;
                n += 1;
            }
            csv.flush()?;
        }
    }
    Ok(n)
}

/// The field names of the one profile every extracted result shares, or
/// `None` when there are several profiles (or none).
async fn shared_profile_fields(pool: &PgPool) -> anyhow::Result<Option<Vec<String>>> {
    let profiles = db::results::profiles(pool)
        .await
        .context("Failed to read the results' profiles")?;
    match profiles.as_slice() {
        [one] => Ok(Some(
            db::results::data_fields(pool, one)
                .await
                .context("Failed to read the profile's fields")?,
        )),
        _ => Ok(None),
    }
}

/// One extracted value as a CSV cell: text as it is, numbers and lists as JSON.
fn cell(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
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
