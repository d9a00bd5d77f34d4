//! Rows of `operations_log`: one per run of a job, with its counts.

use std::fmt::Write as _;

/// The kind of job an `operations_log` row describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationType {
    DataFetch,
    Normalization,
    SyncPush,
    SyncPull,
    SyncMigrate,
    SyncVerify,
    WorkerCleanup,
}

impl OperationType {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DataFetch => "data_fetch",
            Self::Normalization => "normalization",
            Self::SyncPush => "sync_push",
            Self::SyncPull => "sync_pull",
            Self::SyncMigrate => "sync_migrate",
            Self::SyncVerify => "sync_verify",
            Self::WorkerCleanup => "worker_cleanup",
        }
    }
}

/// "OK" only when the run had no error at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationStatus {
    Ok,
    Error,
}

impl OperationStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Error => "ERROR",
        }
    }
}

/// Ordered `name=value` counts, rendered as the `details` text of a log row,
/// e.g. `pages=12 inserted=240 skipped=0`, plus an optional free-text note.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    counts: Vec<(&'static str, i64)>,
    notes: Vec<String>,
}

impl Details {
    pub fn count(mut self, name: &'static str, value: i64) -> Self {
        self.counts.push((name, value));
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, value) in &self.counts {
            if !out.is_empty() {
                out.push(' ');
            }
            let _ = write!(out, "{name}={value}");
        }
        for note in &self.notes {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(note);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_render_counts_in_order_then_notes() {
        let details = Details::default()
            .count("pages", 3)
            .count("inserted", 60)
            .note("no new changes since 2026-08-20");
        assert_eq!(
            details.render(),
            "pages=3 inserted=60; no new changes since 2026-08-20"
        );
    }

    #[test]
    fn status_is_ok_or_error_in_capitals() {
        assert_eq!(OperationStatus::Ok.as_str(), "OK");
        assert_eq!(OperationStatus::Error.as_str(), "ERROR");
    }
}
