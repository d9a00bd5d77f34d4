//! The `worker` section: the fetch fleet's slots, heartbeats, retries,
//! proxies and cleanup (SPEC 6).

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use serde::Deserialize;

use crate::sections::positive;
use crate::typed;
use crate::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Tasks one worker process works on at once.
    #[serde(deserialize_with = "typed::int::<_, _, 1, 1024>")]
    pub slots: NonZeroUsize,
    /// Attempts at registering in `workers` before giving up.
    #[serde(deserialize_with = "typed::int::<_, _, 1, 100>")]
    pub register_attempts: NonZeroU32,
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// A worker is dead after this many missed heartbeats.
    #[serde(deserialize_with = "typed::int::<_, _, 2, 100>")]
    pub stale_after_beats: u32,
    /// In-flight work gets this long after SIGTERM; the rest is handed back.
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
    /// With nothing to claim (no task, no free proxy), look again this often
    /// (a release in this process wakes the claimer at once).
    #[serde(with = "humantime_serde")]
    pub idle_poll: Duration,
    /// Finished slots written per transaction at most.
    #[serde(deserialize_with = "typed::int::<_, _, 1, 10_000>")]
    pub completion_batch: NonZeroUsize,
    /// Claims one worker has on their way at once: with more than one,
    /// slots freed while a claim waits for its commit are claimed for by
    /// the next one (measured slower than 1 on a busy 2-core host, README).
    #[serde(
        default = "default_claims_in_flight",
        deserialize_with = "typed::int::<_, _, 1, 64>"
    )]
    pub claims_in_flight: NonZeroUsize,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Tries of a task that keeps failing (5xx, timeouts) before it is failed.
    #[serde(deserialize_with = "typed::int::<_, _, 1, 1000>")]
    pub max_attempts: i32,
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
    #[serde(
        default = "default_max_blocks_per_task",
        deserialize_with = "typed::int::<_, _, 1, 1000>"
    )]
    pub max_blocks_per_task: i32,
    /// A task sent back this many times by proxy faults fails (a fault costs
    /// no attempt; crawlee's max_session_rotations).
    #[serde(
        default = "default_max_proxy_rotations",
        deserialize_with = "typed::int::<_, _, 1, 1000>"
    )]
    pub max_proxy_rotations: i32,
    /// Statuses that mean the site refused the proxy.
    #[serde(default = "default_block_statuses")]
    pub block_statuses: Vec<u16>,
    /// Block patterns are looked for in a page's title, and in its whole
    /// text only when the body is at most this long (a block page is short;
    /// a listing page that mentions reCAPTCHA in its footer is not).
    #[serde(
        default = "default_block_page_max_bytes",
        deserialize_with = "typed::int::<_, _, 0, 4_294_967_295>"
    )]
    pub block_page_max_bytes: usize,
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
    #[serde(deserialize_with = "typed::int::<_, _, 0, 67_108_864>")]
    pub body_cap_bytes: usize,
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
    #[serde(deserialize_with = "typed::int::<_, _, 1, 100_000>")]
    pub purge_batch: NonZeroU32,
}

fn default_claims_in_flight() -> NonZeroUsize {
    NonZeroUsize::MIN
}

fn default_fault_cooldown() -> Duration {
    Duration::from_secs(30)
}

fn default_fault_cooldown_max() -> Duration {
    Duration::from_secs(30 * 60)
}

fn default_max_blocks_per_task() -> i32 {
    3
}

fn default_max_proxy_rotations() -> i32 {
    10
}

fn default_block_statuses() -> Vec<u16> {
    vec![403, 429]
}

fn default_block_page_max_bytes() -> usize {
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
        positive("worker.heartbeat_interval", self.heartbeat_interval)?;
        positive("worker.idle_poll", self.idle_poll)?;
        positive("worker.connect_timeout", self.connect_timeout)?;
        positive("worker.request_timeout", self.request_timeout)?;
        positive("worker.retry_backoff", self.retry_backoff)?;
        positive("worker.retry_backoff_max", self.retry_backoff_max)?;
        positive("worker.proxy_cooldown", self.proxy_cooldown)?;
        positive("worker.proxy_fault_cooldown", self.proxy_fault_cooldown)?;
        positive(
            "worker.proxy_fault_cooldown_max",
            self.proxy_fault_cooldown_max,
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
        self.browser.validate()?;
        positive("worker.cleanup.interval", self.cleanup.interval)?;
        positive("worker.cleanup.retention", self.cleanup.retention)
    }

    /// Heartbeat age after which cleanup declares a worker dead.
    pub fn stale_after(&self) -> Duration {
        self.heartbeat_interval * self.stale_after_beats
    }
}
