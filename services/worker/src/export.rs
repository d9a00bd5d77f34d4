//! `worker results export --format json|csv [--out FILE]`: every result,
//! streamed from Postgres row by row into the writer (constant memory). CSV
//! goes through the csv crate (quoting is its business); JSON is an array
//! written one element at a time.
//!
//! Bodies are stored as their bytes: a body that is UTF-8 is exported as
//! text (`body_encoding` "utf-8"), any other (an image, a PDF, gzip) as
//! base64 (`body_encoding` "base64"), so every body round-trips. CSV cells
//! that a spreadsheet would run as a formula (starting with `=`, `+`, `-`,
//! `@`, a tab or a carriage return, and not a plain number) are prefixed
//! with `'`.
//!
//! Rendered and extracted results (issue 15) add `final_url`, `profile`,
//! `missing_fields` and their record. When every extracted result shares
//! one profile, CSV gives each of its fields a column of its own (lists as
//! JSON arrays); with several profiles the record stays one `data` column
//! of JSON.

use std::io::Write;

use anyhow::Context;
use base64::Engine;
use db::PgPool;
use futures::TryStreamExt;
use serde::Serialize;

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
                serde_json::to_writer(&mut out, &JsonRow::from(row))?;
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
                "body_encoding",
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
                let (body, encoding) = body_text(row.body);
                let mut record = vec![
                    row.task_id.to_string(),
                    row.kind,
                    row.target,
                    row.status_code.to_string(),
                    row.headers.to_string(),
                    body.unwrap_or_default(),
                    encoding.unwrap_or_default().to_owned(),
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
                csv.write_record(record.iter().map(|c| defuse(c).into_owned()))?;
                n += 1;
            }
            csv.flush()?;
        }
    }
    Ok(n)
}

/// A result as JSON: the body as text or base64, and which.
#[derive(Serialize)]
struct JsonRow {
    #[serde(flatten)]
    row: db::results::ResultRow,
    body: Option<String>,
    body_encoding: Option<&'static str>,
}

impl From<db::results::ResultRow> for JsonRow {
    fn from(mut row: db::results::ResultRow) -> Self {
        let (body, body_encoding) = body_text(row.body.take());
        Self {
            row,
            body,
            body_encoding,
        }
    }
}

/// A body as text: itself when it is UTF-8, else base64; and which.
pub fn body_text(body: Option<Vec<u8>>) -> (Option<String>, Option<&'static str>) {
    match body {
        None => (None, None),
        Some(bytes) => match String::from_utf8(bytes) {
            Ok(text) => (Some(text), Some("utf-8")),
            Err(err) => (
                Some(base64::engine::general_purpose::STANDARD.encode(err.as_bytes())),
                Some("base64"),
            ),
        },
    }
}

/// A CSV cell a spreadsheet would run as a formula, defused with a leading
/// `'`; plain numbers (`-5`, `+1.5`) stay as they are.
pub fn defuse(cell: &str) -> std::borrow::Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && cell.trim().parse::<f64>().is_err() {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused_and_numbers_left_alone() {
        for risky in ["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx"] {
            assert_eq!(defuse(risky), format!("'{risky}"));
        }
        for plain in ["-5", "+1.5", "a=b", "", "12"] {
            assert_eq!(defuse(plain), plain);
        }
    }

    #[test]
    fn a_body_is_text_when_it_is_utf8_and_base64_otherwise() {
        assert_eq!(
            body_text(Some(b"ok".to_vec())),
            (Some("ok".to_owned()), Some("utf-8"))
        );
        assert_eq!(
            body_text(Some(vec![0x89, b'P', 0, 0xff])),
            (Some("iVAA/w==".to_owned()), Some("base64"))
        );
        assert_eq!(body_text(None), (None, None));
    }
}
