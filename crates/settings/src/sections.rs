//! One struct per config.yaml section, each with its own validation.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: LogLevel,
    pub format: LogFormat,
    pub dir: Option<PathBuf>,
    pub retention_days: i64,
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
    pub max_connections: i64,
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    pub base_url: String,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    pub max_requests_per_second: f64,
    pub retry: RetrySettings,
    /// Largest response body read, in MiB after decompression.
    pub max_body_mib: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    pub max_attempts: i64,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub max_elapsed: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoaderSettings {
    pub schedule: String,
    pub expected_total: i64,
    #[serde(with = "humantime_serde")]
    pub progress_interval: Duration,
    /// Initial-load writes wait for their WAL flush (`synchronous_commit`).
    pub synchronous_commit: bool,
    /// How many initial-load writes are in flight at once, each on its own
    /// connection (they still commit in page order).
    pub write_connections: i64,
    /// This many `/offers` pages failing in a row stop the run.
    pub max_consecutive_failed_pages: i64,
    /// Rounds of fetching failed pages again before the load counts as
    /// finished without them.
    pub failed_page_rounds: i32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizerSettings {
    pub batch_size: i64,
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
    pub bind: String,
    /// The operator listener (`/status`, `/status.json`, `/metrics`); empty: off.
    pub admin_bind: String,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    pub max_body_bytes: i64,
    pub cors_origins: Vec<String>,
    pub default_page_size: i64,
    pub max_page_size: i64,
    #[serde(with = "humantime_serde")]
    pub filters_cache_ttl: Duration,
    pub token_file_dir: PathBuf,
    pub initial_tokens: i64,
    #[serde(with = "humantime_serde")]
    pub token_cache_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub stats_cache_ttl: Duration,
    pub trusted_proxies: Vec<String>,
    pub client_ip_header: String,
    pub rate_limit: RateLimitSettings,
    /// Every api statement is cancelled after this (Postgres `statement_timeout`);
    /// `0s`: never (as in Postgres).
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// Requests one token may have in flight at once; more are a 429. 0: no cap.
    pub max_in_flight_per_token: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    pub enabled: bool,
    pub per_second: i64,
    pub burst: i64,
    /// Token lookups in the database per client address (before the lookup).
    pub lookups_per_second: i64,
    pub lookups_burst: i64,
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

fn positive(key: &str, value: Duration) -> Result<(), SettingsError> {
    if value.is_zero() {
        Err(SettingsError::new(format!("{key} must be longer than 0s")))
    } else {
        Ok(())
    }
}

impl LogSettings {
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        in_range("log.retention_days", self.retention_days, 1, 3650)
    }
}

impl DatabaseSettings {
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        in_range("database.max_connections", self.max_connections, 1, 1000)?;
        positive("database.acquire_timeout", self.acquire_timeout)
    }
}

impl UpstreamSettings {
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        let url = self.base_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(SettingsError::new(format!(
                "upstream.base_url must start with http:// or https://, got {url:?}"
            )));
        }
        positive("upstream.connect_timeout", self.connect_timeout)?;
        positive("upstream.request_timeout", self.request_timeout)?;
        if !(self.max_requests_per_second > 0.0 && self.max_requests_per_second.is_finite()) {
            return Err(SettingsError::new(format!(
                "upstream.max_requests_per_second must be a positive number, got {}",
                self.max_requests_per_second
            )));
        }
        in_range(
            "upstream.retry.max_attempts",
            self.retry.max_attempts,
            1,
            1000,
        )?;
        in_range("upstream.max_body_mib", self.max_body_mib, 1, 4096)?;
        positive("upstream.retry.max_elapsed", self.retry.max_elapsed)
    }
}

impl LoaderSettings {
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        if self.schedule.split_whitespace().count() != 5 {
            return Err(SettingsError::new(format!(
                "loader.schedule must be a 5-field cron expression like \"0 2 * * *\", got {:?}",
                self.schedule
            )));
        }
        in_range(
            "loader.expected_total",
            self.expected_total,
            1,
            1_000_000_000,
        )?;
        in_range("loader.write_connections", self.write_connections, 1, 16)?;
        in_range(
            "loader.max_consecutive_failed_pages",
            self.max_consecutive_failed_pages,
            1,
            1_000_000,
        )?;
        in_range(
            "loader.failed_page_rounds",
            i64::from(self.failed_page_rounds),
            1,
            1000,
        )?;
        positive("loader.progress_interval", self.progress_interval)
    }

    pub fn write_connections(&self) -> usize {
        usize::try_from(self.write_connections).unwrap_or(1)
    }
}

impl NormalizerSettings {
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        in_range("normalizer.batch_size", self.batch_size, 1, 10_000)?;
        positive("normalizer.poll_interval", self.poll_interval)?;
        positive("normalizer.progress_interval", self.progress_interval)
    }

    pub fn batch_size(&self) -> usize {
        usize::try_from(self.batch_size).unwrap_or(200)
    }
}

impl ApiSettings {
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        if self.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(SettingsError::new(format!(
                "api.bind must be an address like 0.0.0.0:8080, got {:?}",
                self.bind
            )));
        }
        if !self.admin_bind.is_empty() && self.admin_bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(SettingsError::new(format!(
                "api.admin_bind must be an address like 127.0.0.1:9090, or empty (off), got {:?}",
                self.admin_bind
            )));
        }
        positive("api.request_timeout", self.request_timeout)?;
        in_range(
            "api.max_body_bytes",
            self.max_body_bytes,
            0,
            64 * 1024 * 1024,
        )?;
        in_range("api.max_page_size", self.max_page_size, 1, 10_000)?;
        in_range(
            "api.default_page_size",
            self.default_page_size,
            1,
            self.max_page_size,
        )?;
        in_range("api.initial_tokens", self.initial_tokens, 0, 10_000)?;
        for (i, proxy) in self.trusted_proxies.iter().enumerate() {
            if IpRange::parse(proxy).is_none() {
                return Err(SettingsError::new(format!(
                    "api.trusted_proxies[{i}] must be an IP address or CIDR range like 172.16.0.0/12, got {proxy:?}"
                )));
            }
        }
        if header_name(&self.client_ip_header).is_none() {
            return Err(SettingsError::new(format!(
                "api.client_ip_header must be an HTTP header name like x-real-ip, got {:?}",
                self.client_ip_header
            )));
        }
        in_range(
            "api.rate_limit.per_second",
            self.rate_limit.per_second,
            1,
            1_000_000,
        )?;
        in_range("api.rate_limit.burst", self.rate_limit.burst, 1, 1_000_000)?;
        in_range(
            "api.rate_limit.lookups_per_second",
            self.rate_limit.lookups_per_second,
            1,
            1_000_000,
        )?;
        in_range(
            "api.rate_limit.lookups_burst",
            self.rate_limit.lookups_burst,
            1,
            1_000_000,
        )?;
        // 0 turns the cap off, and a statement_timeout of 0s (Postgres'
        // own "no timeout"): only for measuring what they cost.
        in_range(
            "api.max_in_flight_per_token",
            self.max_in_flight_per_token,
            0,
            1_000_000,
        )
    }
}

/// A lower-case HTTP header name (token characters only), or None.
fn header_name(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    ok.then(|| name.to_ascii_lowercase())
}
