//! What a run did, and the one `operations_log` row (plus the NOTIFY) it ends with.

use chrono::{DateTime, NaiveDate, Utc};
use db::PgPool;
use domain::operation::{Details, OperationStatus, OperationType};

/// The counts of one loader run. Tests read it; `operations_log` gets it as text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    /// Which job: "initial load" or "daily update".
    pub job: &'static str,
    /// Another run held the lock: this one did nothing.
    pub locked_out: bool,
    pub pages: u64,
    /// Items the upstream sent (listings or changes).
    pub received: u64,
    pub inserted: u64,
    pub updated: u64,
    /// Initial load: listings already stored. Daily: rows already in the state sent.
    pub skipped: u64,
    /// Items that could not be read (no inner_id, no change_type).
    pub malformed: u64,
    /// Initial load: pages that failed every attempt and were skipped.
    pub failed_pages: Vec<u32>,
    /// Initial load: pages still missing after this run fetched the failed
    /// pages again (the next run tries them once more).
    pub missing_pages: Vec<i32>,
    /// Daily update: dates fully applied in this run.
    pub dates_completed: Vec<NaiveDate>,
    /// Daily update: the date that could not be completed, if any.
    pub failed_date: Option<NaiveDate>,
    /// Stopped by shutdown before the end.
    pub interrupted: bool,
    pub notes: Vec<String>,
}

impl RunReport {
    pub fn new(job: &'static str) -> Self {
        Self {
            job,
            ..Self::default()
        }
    }

    pub fn has_errors(&self) -> bool {
        !self.failed_pages.is_empty()
            || !self.missing_pages.is_empty()
            || self.failed_date.is_some()
    }

    pub fn rows_written(&self) -> u64 {
        self.inserted + self.updated
    }

    fn details(&self, error: Option<&anyhow::Error>) -> String {
        let mut details = Details::default()
            .count("pages", self.pages as i64)
            .count("received", self.received as i64)
            .count("inserted", self.inserted as i64)
            .count("updated", self.updated as i64)
            .count("skipped", self.skipped as i64)
            .count("malformed", self.malformed as i64)
            .count(
                "failed",
                self.failed_pages.len() as i64 + i64::from(self.failed_date.is_some()),
            )
            .note(self.job);
        if !self.failed_pages.is_empty() {
            let pages: Vec<String> = self.failed_pages.iter().map(u32::to_string).collect();
            details = details.note(format!("failed pages: {}", pages.join(", ")));
        }
        if !self.missing_pages.is_empty() {
            let pages: Vec<String> = self.missing_pages.iter().map(i32::to_string).collect();
            details = details.note(format!("missing pages: {}", pages.join(", ")));
        }
        if !self.dates_completed.is_empty() {
            let dates: Vec<String> = self
                .dates_completed
                .iter()
                .map(NaiveDate::to_string)
                .collect();
            details = details.note(format!("dates completed: {}", dates.join(", ")));
        }
        if let Some(date) = self.failed_date {
            details = details.note(format!("date {date} could not be completed"));
        }
        if self.interrupted {
            details = details.note("stopped by shutdown before the end");
        }
        for note in &self.notes {
            details = details.note(note.clone());
        }
        if let Some(err) = error {
            details = details.note(format!("error: {err:#}"));
        }
        details.render()
    }
}

/// Writes the run's `operations_log` row and, when rows changed, NOTIFYs
/// `raw_data_changed`. Failing to write the row is logged, not fatal: the
/// run's own outcome matters more.
pub async fn finish(
    pool: &PgPool,
    started_at: DateTime<Utc>,
    report: &RunReport,
    error: Option<&anyhow::Error>,
) {
    let status = if error.is_some() || report.has_errors() {
        OperationStatus::Error
    } else {
        OperationStatus::Ok
    };
    let details = report.details(error);
    tracing::info!(
        "Finished the {} ({}): {details}",
        report.job,
        status.as_str()
    );
    if let Err(err) =
        db::operations::record(pool, OperationType::DataFetch, started_at, status, &details).await
    {
        tracing::error!(error = ?err, "Failed to record the run in operations_log");
    }
    if report.rows_written() > 0 {
        let payload = format!("{} {}", report.job, report.rows_written());
        if let Err(err) = db::raw::notify_changed(pool, &payload).await {
            tracing::warn!(error = ?err, "Failed to notify raw_data_changed (the normaliser will poll)");
        }
    }
}
