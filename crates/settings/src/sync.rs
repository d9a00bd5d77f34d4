//! The `sync` section: which tables travel between the working database and
//! production, in what batches, how often, and how failures are retried.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use serde::Deserialize;

use crate::typed::{self, Schedule};
use crate::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSettings {
    /// Working -> production: the final tables.
    pub push_tables: Vec<SyncTable>,
    /// Production -> working: reference tables edited on production.
    pub pull_tables: Vec<SyncTable>,
    /// Rows per COPY batch (and per resume step).
    #[serde(deserialize_with = "typed::int::<_, _, 1, 100_000>")]
    pub batch_size: NonZeroUsize,
    /// Connections sync may hold to production at once.
    #[serde(deserialize_with = "typed::int::<_, _, 1, 100>")]
    pub target_max_connections: NonZeroU32,
    /// `sync serve` pushes this often (and after each normaliser run).
    #[serde(with = "humantime_serde")]
    pub push_interval: Duration,
    /// Cron (UTC) for `sync serve`'s pull; set it before loader.schedule.
    pub pull_schedule: Schedule,
    #[serde(with = "humantime_serde")]
    pub progress_interval: Duration,
    pub retry: SyncRetrySettings,
}

/// One table and its key (one column or several).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncTable {
    pub name: String,
    pub key: Vec<String>,
}

/// Exponential backoff for an unreachable production.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRetrySettings {
    #[serde(with = "humantime_serde")]
    pub initial_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
}

impl SyncSettings {
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        for (list, tables) in [
            ("push_tables", &self.push_tables),
            ("pull_tables", &self.pull_tables),
        ] {
            for (i, table) in tables.iter().enumerate() {
                if table.name.trim().is_empty() {
                    return Err(SettingsError::new(format!(
                        "sync.{list}[{i}].name must not be empty"
                    )));
                }
                if table.key.is_empty() || table.key.iter().any(|k| k.trim().is_empty()) {
                    return Err(SettingsError::new(format!(
                        "sync.{list}[{i}].key must name one or more columns"
                    )));
                }
            }
        }
        if self
            .push_tables
            .iter()
            .any(|p| self.pull_tables.iter().any(|q| q.name == p.name))
        {
            return Err(SettingsError::new(
                "sync.pull_tables must not name a table of sync.push_tables",
            ));
        }
        if self.push_interval.is_zero() {
            return Err(SettingsError::new(
                "sync.push_interval must be longer than 0s",
            ));
        }
        if self.retry.initial_interval.is_zero()
            || self.retry.max_interval < self.retry.initial_interval
        {
            return Err(SettingsError::new(
                "sync.retry.max_interval must be at least sync.retry.initial_interval, which must be longer than 0s",
            ));
        }
        Ok(())
    }
}
