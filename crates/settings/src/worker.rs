//! The `worker` section: the fetch fleet's slots, heartbeats, retries,
//! proxies and cleanup (SPEC 6).

use std::time::Duration;

use serde::Deserialize;

use crate::sections::{in_range, positive};
use crate::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Tasks one worker process works on at once.
    pub slots: u32,
    /// Attempts at registering in `workers` before giving up.
    pub register_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// A worker is dead after this many missed heartbeats.
    pub stale_after_beats: u32,
    /// In-flight work gets this long after SIGTERM; the rest is handed back.
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
    /// With nothing to claim (no task, no free proxy), look again this often
    /// (a release in this process wakes the claimer at once).
    #[serde(with = "humantime_serde")]
    pub idle_poll: Duration,
    /// Finished slots written per transaction at most.
    pub completion_batch: u32,
    /// Claims one worker has on their way at once: with more than one,
    /// slots freed while a claim waits for its commit are claimed for by
    /// the next one (measured slower than 1 on a busy 2-core host, README).
    #[serde(default = "default_claims_in_flight")]
    pub claims_in_flight: u32,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Tries of a task that keeps failing (5xx, timeouts) before it is failed.
    pub max_attempts: u32,
    /// Wait before retry n: retry_backoff * 2^(n-1), at most retry_backoff_max.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_backoff_max: Duration,
    /// A site refused a proxy (a block status or a block page): it rests this long.
    #[serde(with = "humantime_serde")]
    pub proxy_cooldown: Duration,
    /// A proxy failed itself (407, unreachable, a failed CONNECT, its own
    /// 502/503): it rests this long, doubled for each fault in a row ...
    #[serde(with = "humantime_serde", default = "default_fault_cooldown")]
    pub proxy_fault_cooldown: Duration,
    /// ... up to this.
    #[serde(with = "humantime_serde", default = "default_fault_cooldown_max")]
    pub proxy_fault_cooldown_max: Duration,
    /// A task blocked through this many distinct proxies fails ("blocked by
    /// N proxies"); a block costs no attempt.
    #[serde(default = "default_max_blocks_per_task")]
    pub max_blocks_per_task: u32,
    /// A task sent back this many times by proxy faults fails (a fault costs
    /// no attempt; crawlee's max_session_rotations).
    #[serde(default = "default_max_proxy_rotations")]
    pub max_proxy_rotations: u32,
    /// Statuses that mean the site refused the proxy.
    #[serde(default = "default_block_statuses")]
    pub block_statuses: Vec<u16>,
    /// Block patterns are looked for in a page's title, and in its whole
    /// text only when the body is at most this long (a block page is short;
    /// a listing page that mentions reCAPTCHA in its footer is not).
    #[serde(default = "default_block_page_max_bytes")]
    pub block_page_max_bytes: u32,
    /// Targets that resolve to loopback, private, link-local or metadata
    /// addresses are refused unless this is set (tests and the local smoke
    /// fetch from 127.0.0.1).
    #[serde(default)]
    pub allow_private_targets: bool,
    /// `worker check` fails when a finished slot has waited longer than
    /// this for its write (a stuck completer).
    #[serde(with = "humantime_serde", default = "default_max_write_wait")]
    pub max_write_wait: Duration,
    /// Where `worker run` keeps its write health for `worker check`.
    #[serde(default = "default_health_file")]
    pub health_file: String,
    /// `fetch_url` bodies are kept up to this many bytes.
    pub body_cap_bytes: u32,
    /// `fetch_url` response headers kept with the result (lower case).
    pub keep_headers: Vec<String>,
    pub cleanup: CleanupSettings,
    /// Block pages: case-insensitive substrings of a page's title, or of a
    /// short page's text (`block_page_max_bytes`).
    #[serde(default = "crate::browser::default_block_patterns")]
    pub block_patterns: Vec<String>,
    /// `render_url` through headless Chromium.
    #[serde(default)]
    pub browser: crate::browser::BrowserSettings,
    /// Extraction profiles: profile -> field -> `SELECTOR[@ATTR][[]][ | TYPE]`.
    #[serde(default)]
    pub extract: crate::browser::ExtractProfiles,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupSettings {
    /// How often the sweep runs.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// `worker run` also runs the sweep (one active instance, advisory lock).
    pub in_worker: bool,
    /// Finished tasks (and stopped or dead workers) older than this are purged.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Rows deleted per purge statement.
    pub purge_batch: u32,
}

fn default_claims_in_flight() -> u32 {
    1
}

fn default_fault_cooldown() -> Duration {
    Duration::from_secs(30)
}

fn default_fault_cooldown_max() -> Duration {
    Duration::from_secs(30 * 60)
}

fn default_max_blocks_per_task() -> u32 {
    3
}

fn default_max_proxy_rotations() -> u32 {
    10
}

fn default_block_statuses() -> Vec<u16> {
    vec![403, 429]
}

fn default_block_page_max_bytes() -> u32 {
    4096
}

fn default_max_write_wait() -> Duration {
    Duration::from_secs(60)
}

fn default_health_file() -> String {
    "/tmp/carfeed-worker.health".into()
}

impl WorkerSettings {
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        in_range("worker.slots", self.slots.into(), 1, 1024)?;
        in_range(
            "worker.register_attempts",
            self.register_attempts.into(),
            1,
            100,
        )?;
        positive("worker.heartbeat_interval", self.heartbeat_interval)?;
        in_range(
            "worker.stale_after_beats",
            self.stale_after_beats.into(),
            2,
            100,
        )?;
        positive("worker.idle_poll", self.idle_poll)?;
        in_range(
            "worker.completion_batch",
            self.completion_batch.into(),
            1,
            10_000,
        )?;
        in_range(
            "worker.claims_in_flight",
            self.claims_in_flight.into(),
            1,
            64,
        )?;
        positive("worker.connect_timeout", self.connect_timeout)?;
        positive("worker.request_timeout", self.request_timeout)?;
        in_range("worker.max_attempts", self.max_attempts.into(), 1, 1000)?;
        positive("worker.retry_backoff", self.retry_backoff)?;
        positive("worker.retry_backoff_max", self.retry_backoff_max)?;
        positive("worker.proxy_cooldown", self.proxy_cooldown)?;
        positive("worker.proxy_fault_cooldown", self.proxy_fault_cooldown)?;
        positive(
            "worker.proxy_fault_cooldown_max",
            self.proxy_fault_cooldown_max,
        )?;
        in_range(
            "worker.max_blocks_per_task",
            self.max_blocks_per_task.into(),
            1,
            1000,
        )?;
        in_range(
            "worker.max_proxy_rotations",
            self.max_proxy_rotations.into(),
            1,
            1000,
        )?;
        if let Some(bad) = self
            .block_statuses
            .iter()
            .find(|s| !(100..=599).contains(*s))
        {
            return Err(SettingsError::new(format!(
                "worker.block_statuses: {bad} is not an HTTP status"
            )));
        }
        positive("worker.max_write_wait", self.max_write_wait)?;
        in_range(
            "worker.body_cap_bytes",
            self.body_cap_bytes.into(),
            0,
            64 * 1024 * 1024,
        )?;
        self.browser.validate()?;
        positive("worker.cleanup.interval", self.cleanup.interval)?;
        positive("worker.cleanup.retention", self.cleanup.retention)?;
        in_range(
            "worker.cleanup.purge_batch",
            self.cleanup.purge_batch.into(),
            1,
            100_000,
        )
    }

    /// Heartbeat age after which cleanup declares a worker dead.
    pub fn stale_after(&self) -> Duration {
        self.heartbeat_interval * self.stale_after_beats
    }
}
