//! What the api needs from the settings, resolved once at start.

use std::time::Duration;

use axum::http::HeaderName;
use settings::{IpRange, KeyOrigin, Settings, SettingsError};

/// The api's runtime configuration. Tests and the bench build one with
/// [`ApiConfig::for_tests`] and change fields as they need.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// `SECRET_KEY`: the key of the tokens' keyed hash.
    pub secret_key: Vec<u8>,
    pub default_page_size: u32,
    pub max_page_size: u32,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub cors_origins: Vec<String>,
    pub filters_cache_ttl: Duration,
    pub stats_cache_ttl: Duration,
    pub token_cache_ttl: Duration,
    pub trusted_proxies: Vec<IpRange>,
    pub client_ip_header: HeaderName,
    pub rate_limit: Option<RateLimit>,
    /// Token lookups in the database per client address, checked before the
    /// lookup (None: unlimited, as when `api.rate_limit.enabled` is false).
    pub lookup_limit: Option<RateLimit>,
    /// Postgres' `statement_timeout` on the api's connections (see `pool`);
    /// zero: none.
    pub statement_timeout: Duration,
    /// Requests one token may have in flight (None: no cap, as when
    /// `api.max_in_flight_per_token` is 0).
    pub max_in_flight_per_token: Option<u32>,
    /// Whether data endpoints demand a token. Always true in `api serve`;
    /// only the bench turns it off, to measure what authentication costs.
    pub require_token: bool,
    /// The status page's cache and rules (`status.*`).
    pub status: settings::StatusSettings,
}

/// `SECRET_KEY` (see `settings::Secrets::secret_key`), saying in the log
/// where it came from when that is not the environment.
pub fn secret_key(settings: &Settings) -> Result<Vec<u8>, SettingsError> {
    let key = settings.secrets.secret_key()?;
    match &key.origin {
        KeyOrigin::Environment => {}
        // Debug: `api tokens issue` prints only the tokens on stdout.
        KeyOrigin::File(path) => {
            tracing::debug!("SECRET_KEY is not set; using the key kept in {}", path.display());
        }
        KeyOrigin::Generated(path) => tracing::warn!(
            "SECRET_KEY is not set: generated a random key and kept it in {} (mode 0600). \
             Tokens are valid only with this key: keep the file, or set SECRET_KEY (required in production)",
            path.display()
        ),
    }
    Ok(key.expose().to_vec())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl ApiConfig {
    /// The settings' values, with the key from [`secret_key`].
    pub fn from_settings(settings: &Settings, secret_key: Vec<u8>) -> anyhow::Result<Self> {
        let api = &settings.api;
        Ok(Self {
            secret_key,
            default_page_size: api.default_page_size,
            max_page_size: api.max_page_size,
            request_timeout: api.request_timeout,
            max_body_bytes: api.max_body_bytes,
            cors_origins: api.cors_origins.clone(),
            filters_cache_ttl: api.filters_cache_ttl,
            stats_cache_ttl: api.stats_cache_ttl,
            token_cache_ttl: api.token_cache_ttl,
            trusted_proxies: api.trusted_proxies.clone(),
            client_ip_header: api.client_ip_header.clone(),
            rate_limit: api.rate_limit.requests().map(|r| RateLimit {
                per_second: r.per_second.get(),
                burst: r.burst.get(),
            }),
            lookup_limit: api.rate_limit.lookups().map(|r| RateLimit {
                per_second: r.per_second.get(),
                burst: r.burst.get(),
            }),
            statement_timeout: api.statement_timeout,
            max_in_flight_per_token: api.max_in_flight_per_token.map(|cap| cap.get()),
            require_token: true,
            status: settings.status.clone(),
        })
    }

    /// The shipped defaults with a fixed test secret and no proxies trusted.
    pub fn for_tests() -> Self {
        Self {
            secret_key: b"test-secret-key-of-at-least-32-chars!".to_vec(),
            default_page_size: 20,
            max_page_size: 100,
            request_timeout: Duration::from_secs(10),
            max_body_bytes: 16 * 1024,
            cors_origins: vec!["https://cars.example.com".into()],
            filters_cache_ttl: Duration::from_secs(60),
            stats_cache_ttl: Duration::ZERO,
            token_cache_ttl: Duration::from_secs(30),
            trusted_proxies: Vec::new(),
            client_ip_header: HeaderName::from_static("x-real-ip"),
            rate_limit: Some(RateLimit {
                per_second: 1000,
                burst: 1000,
            }),
            lookup_limit: Some(RateLimit {
                per_second: 1000,
                burst: 1000,
            }),
            statement_timeout: Duration::from_secs(2),
            max_in_flight_per_token: Some(32),
            require_token: true,
            status: settings::load_from(&settings::Env::default())
                .expect("the built-in config.yaml is valid")
                .status,
        }
    }
}
