//! One `operations_log` row per run (`sync_push`, `sync_pull`,
//! `sync_verify`, `sync_migrate`), with the counts, on the working database.

use chrono::{DateTime, Utc};
use db::PgPool;
use domain::operation::{Details, OperationStatus, OperationType};

use crate::run::TableReport;
use crate::verify::TableCheck;

pub fn transfer_details(reports: &[TableReport]) -> Details {
    let sum = |f: fn(&TableReport) -> i64| reports.iter().map(f).sum::<i64>();
    let mut details = Details::default()
        .count("tables", i64::try_from(reports.len()).unwrap_or(0))
        .count("read", sum(|r| r.read))
        .count("inserted", sum(|r| r.inserted))
        .count("updated", sum(|r| r.updated))
        .count("deleted", sum(|r| r.deleted))
        .count("batches", sum(|r| r.batches));
    for r in reports {
        details = details.note(format!(
            "{}: read={} inserted={} updated={} deleted={}",
            r.table, r.read, r.inserted, r.updated, r.deleted
        ));
    }
    details
}

pub fn verify_details(checks: &[TableCheck]) -> Details {
    let differing = checks.iter().filter(|c| !c.matches()).count();
    let mut details = Details::default()
        .count("tables", i64::try_from(checks.len()).unwrap_or(0))
        .count("differing", i64::try_from(differing).unwrap_or(0));
    for c in checks.iter().filter(|c| !c.matches()) {
        details = details.note(c.line());
    }
    details
}

/// Writes the row; a failure to write it is logged, not fatal.
pub async fn record(
    working: &PgPool,
    kind: OperationType,
    started_at: DateTime<Utc>,
    outcome: Result<Details, &anyhow::Error>,
) {
    let (status, details) = match outcome {
        Ok(details) => (OperationStatus::Ok, details.render()),
        Err(err) => (OperationStatus::Error, format!("{err:#}")),
    };
    if let Err(err) = db::operations::record(working, kind, started_at, status, &details).await {
        tracing::warn!(error = ?err, "Failed to write the {} row of operations_log", kind.as_str());
    }
}
