//! One struct per config.yaml section, in its final types (see `typed`);
//! `validate` checks what spans fields or durations that must not be 0.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::typed::{self, Schedule};
use crate::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: LogLevel,
    pub format: LogFormat,
    pub dir: Option<PathBuf>,
    #[serde(deserialize_with = "typed::int::<_, _, 1, 3650>")]
    pub retention_days: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    #[serde(deserialize_with = "typed::int::<_, _, 1, 1000>")]
    pub max_connections: NonZeroU32,
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    /// `{access_name}` in it (kept as `%7Baccess_name%7D` in a parsed URL's
    /// path) is replaced by `CHE168_ACCESS_NAME` (see the upstream client).
    #[serde(deserialize_with = "typed::http_url")]
    pub base_url: Url,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    pub max_requests_per_second: f64,
    pub retry: RetrySettings,
    /// Largest response body read, in MiB after decompression.
    #[serde(deserialize_with = "typed::int::<_, _, 1, 4096>")]
    pub max_body_mib: NonZeroUsize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    #[serde(deserialize_with = "typed::int::<_, _, 1, 1000>")]
    pub max_attempts: NonZeroU32,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub max_elapsed: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoaderSettings {
    pub schedule: Schedule,
    #[serde(deserialize_with = "typed::int::<_, _, 1, 1_000_000_000>")]
    pub expected_total: u64,
    #[serde(with = "humantime_serde")]
    pub progress_interval: Duration,
    /// Initial-load writes wait for their WAL flush (`synchronous_commit`).
    pub synchronous_commit: bool,
    /// How many initial-load writes are in flight at once, each on its own
    /// connection (they still commit in page order).
    #[serde(deserialize_with = "typed::int::<_, _, 1, 16>")]
    pub write_connections: NonZeroUsize,
    /// This many `/offers` pages failing in a row stop the run.
    #[serde(deserialize_with = "typed::int::<_, _, 1, 1_000_000>")]
    pub max_consecutive_failed_pages: u32,
    /// Rounds of fetching failed pages again before the load counts as
    /// finished without them.
    #[serde(deserialize_with = "typed::int::<_, _, 1, 1000>")]
    pub failed_page_rounds: i32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizerSettings {
    #[serde(deserialize_with = "typed::int::<_, _, 1, 10_000>")]
    pub batch_size: i64,
    /// Batches in flight at once, each on its own connection.
    #[serde(deserialize_with = "typed::int::<_, _, 1, 8>")]
    pub pipeline_depth: usize,
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub progress_interval: Duration,
    /// Batches wait for their WAL flush at commit (`synchronous_commit`).
    pub synchronous_commit: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    #[serde(deserialize_with = "typed::socket_addr")]
    pub bind: SocketAddr,
    /// The operator listener (`/status`, `/status.json`, `/metrics`); empty: off.
    #[serde(deserialize_with = "typed::optional_socket_addr")]
    pub admin_bind: Option<SocketAddr>,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    #[serde(deserialize_with = "typed::int::<_, _, 0, 67_108_864>")]
    pub max_body_bytes: usize,
    pub cors_origins: Vec<String>,
    /// At most `max_page_size` (checked in `validate`).
    #[serde(deserialize_with = "typed::int::<_, _, 1, 10_000>")]
    pub default_page_size: u32,
    #[serde(deserialize_with = "typed::int::<_, _, 1, 10_000>")]
    pub max_page_size: u32,
    #[serde(with = "humantime_serde")]
    pub filters_cache_ttl: Duration,
    pub token_file_dir: PathBuf,
    #[serde(deserialize_with = "typed::int::<_, _, 0, 10_000>")]
    pub initial_tokens: usize,
    #[serde(with = "humantime_serde")]
    pub token_cache_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub stats_cache_ttl: Duration,
    pub trusted_proxies: Vec<IpRange>,
    #[serde(deserialize_with = "typed::header_name")]
    pub client_ip_header: http::HeaderName,
    pub rate_limit: RateLimitSettings,
    /// Every api statement is cancelled after this (Postgres `statement_timeout`);
    /// `0s`: never (as in Postgres).
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// Requests one token may have in flight at once; more are a 429.
    /// 0 in config.yaml: `None`, no cap (only for measuring what it costs).
    #[serde(deserialize_with = "typed::int::<_, _, 0, 1_000_000>")]
    pub max_in_flight_per_token: Option<NonZeroU32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub enabled: bool,
    #[serde(deserialize_with = "typed::int::<_, _, 1, 1_000_000>")]
    pub per_second: NonZeroU32,
    #[serde(deserialize_with = "typed::int::<_, _, 1, 1_000_000>")]
    pub burst: NonZeroU32,
    /// Token lookups in the database per client address (before the lookup).
    #[serde(deserialize_with = "typed::int::<_, _, 1, 1_000_000>")]
    pub lookups_per_second: NonZeroU32,
    #[serde(deserialize_with = "typed::int::<_, _, 1, 1_000_000>")]
    pub lookups_burst: NonZeroU32,
}

/// A rate: `per_second` refilled evenly, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl RateLimitSettings {
    /// Requests per token (else per address); `None` when turned off.
    pub fn requests(&self) -> Option<RateLimit> {
        self.enabled.then_some(RateLimit {
            per_second: self.per_second,
            burst: self.burst,
        })
    }

    /// Token lookups per client address; `None` when turned off.
    pub fn lookups(&self) -> Option<RateLimit> {
        self.enabled.then_some(RateLimit {
            per_second: self.lookups_per_second,
            burst: self.lookups_burst,
        })
    }
}

/// An address range from `api.trusted_proxies`: `10.0.0.0/8`, `::1`, `127.0.0.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    pub network: std::net::IpAddr,
    pub prefix_len: u8,
}

impl IpRange {
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, len) = match text.trim().split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text.trim(), None),
        };
        let network: std::net::IpAddr = addr.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            Some(len) => len.parse::<u8>().ok().filter(|l| *l <= max)?,
            None => max,
        };
        Some(Self {
            network,
            prefix_len,
        })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        let (net, ip, bits) = match (self.network, ip) {
            (std::net::IpAddr::V4(n), std::net::IpAddr::V4(i)) => {
                (u128::from(u32::from(n)), u128::from(u32::from(i)), 32)
            }
            (std::net::IpAddr::V6(n), std::net::IpAddr::V6(i)) => {
                (u128::from(n), u128::from(i), 128)
            }
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix_len);
        shift >= bits || (net >> shift) == (ip >> shift)
    }
}

/// `key must be between min and max, got value`.
pub(crate) fn in_range(key: &str, value: i64, min: i64, max: i64) -> Result<(), SettingsError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(SettingsError::new(format!(
            "{key} must be between {min} and {max}, got {value}"
        )))
    }
}

pub(crate) fn positive(key: &str, value: Duration) -> Result<(), SettingsError> {
    if value.is_zero() {
        Err(SettingsError::new(format!("{key} must be longer than 0s")))
    } else {
        Ok(())
    }
}

impl DatabaseSettings {
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        positive("database.acquire_timeout", self.acquire_timeout)
    }
}

impl UpstreamSettings {
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        positive("upstream.connect_timeout", self.connect_timeout)?;
        positive("upstream.request_timeout", self.request_timeout)?;
        if !(self.max_requests_per_second > 0.0 && self.max_requests_per_second.is_finite()) {
            return Err(SettingsError::new(format!(
                "upstream.max_requests_per_second must be a positive number, got {}",
                self.max_requests_per_second
            )));
        }
        positive("upstream.retry.max_elapsed", self.retry.max_elapsed)
    }
}

impl LoaderSettings {
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        positive("loader.progress_interval", self.progress_interval)
    }
}

impl NormalizerSettings {
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        positive("normalizer.poll_interval", self.poll_interval)?;
        positive("normalizer.progress_interval", self.progress_interval)
    }
}

impl ApiSettings {
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        positive("api.request_timeout", self.request_timeout)?;
        in_range(
            "api.default_page_size",
            self.default_page_size.into(),
            1,
            self.max_page_size.into(),
        )
    }
}
