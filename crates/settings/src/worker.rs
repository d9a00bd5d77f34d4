//! The `worker` section: the fetch fleet's slots, heartbeats, retries,
//! proxies and cleanup (SPEC 6).

use std::time::Duration;

use serde::Deserialize;

use crate::sections::in_range;
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
    /// A proxy answered 403/429/captcha: it rests this long.
    #[serde(with = "humantime_serde")]
    pub proxy_cooldown: Duration,
    /// `fetch_url` bodies are kept up to this many bytes.
    pub body_cap_bytes: u32,
    /// `fetch_url` response headers kept with the result (lower case).
    pub keep_headers: Vec<String>,
    pub cleanup: CleanupSettings,
    /// Bot-check pages (issue 15): case-insensitive substrings of a 2xx page.
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

fn positive(key: &str, value: Duration) -> Result<(), SettingsError> {
    if value.is_zero() {
        Err(SettingsError::new(format!("{key} must be longer than 0s")))
    } else {
        Ok(())
    }
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
