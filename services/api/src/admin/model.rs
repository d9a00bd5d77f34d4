//! The figures of `/status.json` (and of the page and the gauges drawn
//! from them): one object per section, each with its `state` and the
//! `reasons` behind a warn or fail.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// How a section stands. The page shows it by colour and by word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Ok,
    Warn,
    Fail,
}

impl State {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }

    /// 0 ok, 1 warn, 2 fail: the value of `carfeed_status_state`.
    pub const fn level(self) -> u8 {
        self as u8
    }
}

/// The operator's view of the whole pipeline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Status {
    /// When the figures were read from Postgres (they are cached for
    /// `status.cache_ttl`).
    pub generated_at: DateTime<Utc>,
    /// The worst state of any section.
    pub state: State,
    pub initial_load: InitialLoad,
    pub daily: Daily,
    pub normalizer: Normalizer,
    pub rejected: Rejected,
    pub fleet: Fleet,
    pub sync: Sync,
    pub api: Api,
    pub backup: Backup,
    /// The newest `operations_log` rows, newest first (at most 20).
    pub operations: Vec<Operation>,
}

// Named apart in the OpenAPI document: /stats has an `InitialLoad` too.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = StatusInitialLoad)]
pub struct InitialLoad {
    pub state: State,
    /// Why the state is not ok (empty when it is).
    pub reasons: Vec<String>,
    /// An initial load ever started.
    pub started: bool,
    /// No failed page remains, or the rounds of fetching them ran out.
    pub finished: bool,
    /// Pages stored.
    pub pages_done: i64,
    /// Pages that failed every attempt and are fetched again by the next run.
    pub pages_failed: i64,
    /// Pages given up on (the load finished without them).
    pub pages_missing: i64,
    /// The failed or missing pages' numbers.
    pub failed_pages: Vec<i32>,
    /// Listings stored by the initial load.
    pub listings: i64,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Daily {
    pub state: State,
    pub reasons: Vec<String>,
    /// The last date whose changes were all applied.
    pub last_successful_date: Option<NaiveDate>,
    /// Whole days between that date and today (UTC).
    pub days_behind: Option<i64>,
    /// Seconds since the end of that date (UTC): what the rules compare.
    pub behind_seconds: Option<f64>,
    /// The newest daily update run, with its counts in `details`.
    pub last_run: Option<Operation>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Normalizer {
    pub state: State,
    pub reasons: Vec<String>,
    /// Listings waiting to be normalised.
    pub waiting: i64,
    /// Listings the normaliser could not normalise.
    pub errors: i64,
    /// Listings normalised by the runs of the last hour.
    pub processed_last_hour: i64,
    /// When the oldest waiting listing was loaded.
    pub oldest_waiting_at: Option<DateTime<Utc>>,
    pub oldest_waiting_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Rejected {
    pub state: State,
    pub reasons: Vec<String>,
    /// Rows in `rejected_items`.
    pub total: i64,
    /// Rejected within the last `window_seconds`.
    pub recent: i64,
    pub window_seconds: f64,
    /// The newest ones (at most 5).
    pub newest: Vec<RejectedItem>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RejectedItem {
    pub rejected_at: DateTime<Utc>,
    /// `/offers` or `/changes`.
    pub endpoint: String,
    pub inner_id: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Fleet {
    pub state: State,
    pub reasons: Vec<String>,
    pub workers_alive: i64,
    /// Workers marked dead (kept until cleanup purges them).
    pub workers_dead: i64,
    /// Of which died within `status.dead_worker_window`.
    pub workers_dead_recent: i64,
    pub tasks: TaskCounts,
    pub proxies: ProxyCounts,
    pub completed_last_hour: i64,
    pub failed_last_hour: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskCounts {
    pub pending: i64,
    pub running: i64,
    pub completed: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProxyCounts {
    pub free: i64,
    pub in_use: i64,
    pub blocked: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Sync {
    pub state: State,
    pub reasons: Vec<String>,
    /// The newest successful push to production; null: never pushed.
    pub last_push: Option<DateTime<Utc>>,
    /// The newest successful pull from production.
    pub last_pull: Option<DateTime<Utc>>,
    /// Offers changed since the last push; null: never pushed.
    pub waiting: Option<i64>,
    /// Whether production answered the last push run (its outcome in
    /// `operations_log`); null: no push run recorded.
    pub target_reachable: Option<bool>,
    pub last_push_run: Option<Operation>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Api {
    pub state: State,
    pub reasons: Vec<String>,
    /// Requests answered by this api process in the last hour.
    pub requests_last_hour: u64,
    pub client_errors_last_hour: u64,
    pub server_errors_last_hour: u64,
    /// Tokens neither revoked nor expired.
    pub active_tokens: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Backup {
    pub state: State,
    pub reasons: Vec<String>,
    /// The newest successful backup.
    pub last_backup_at: Option<DateTime<Utc>>,
    pub age_seconds: Option<f64>,
    pub size_bytes: Option<i64>,
    pub file: Option<String>,
    /// The newest backup run failed.
    pub last_run_failed: bool,
    pub restore_drill_at: Option<DateTime<Utc>>,
    pub restore_drill_age_seconds: Option<f64>,
    /// `OK` or `ERROR`.
    pub restore_drill_status: Option<String>,
    pub restore_drill_details: Option<String>,
}

/// An `operations_log` row (named apart: /stats has an `Operation` too).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = StatusOperation)]
pub struct Operation {
    pub operation_type: String,
    pub started_at: DateTime<Utc>,
    /// Seconds.
    pub duration: f64,
    /// `OK` or `ERROR`.
    pub status: String,
    pub details: String,
}

impl From<db::operations::OperationRow> for Operation {
    fn from(row: db::operations::OperationRow) -> Self {
        Self {
            operation_type: row.operation_type,
            started_at: row.started_at,
            duration: row.duration,
            status: row.status,
            details: row.details,
        }
    }
}
