//! What the api runs with: its settings section and the status rules as
//! loaded (typed once, in `settings`: nothing here converts them again),
//! and the key of the tokens' keyed hash.

use settings::{ApiSettings, KeyOrigin, Settings, SettingsError, StatusSettings};

#[derive(Clone)]
pub struct Config {
    /// `api.*`.
    pub api: ApiSettings,
    /// `status.*`: the status page's cache and rules.
    pub status: StatusSettings,
    /// `SECRET_KEY`: the key of the tokens' keyed hash (see [`secret_key`]).
    pub secret_key: Vec<u8>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("api", &self.api)
            .field("status", &self.status)
            .field("secret_key", &"[REDACTED]")
            .finish()
    }
}

impl Config {
    pub fn from_settings(settings: &Settings, secret_key: Vec<u8>) -> Self {
        Self {
            api: settings.api.clone(),
            status: settings.status.clone(),
            secret_key,
        }
    }

    /// The shipped config.yaml with a fixed test secret, a CORS origin,
    /// `/stats` uncached and rate limits tests do not reach unless they lower
    /// them.
    pub fn for_tests() -> Self {
        let settings = settings::load_from(&settings::Env::from_pairs([
            ("CARFEED__API__CORS_ORIGINS", "https://cars.example.com"),
            ("CARFEED__API__STATS_CACHE_TTL", "0s"),
            ("CARFEED__API__RATE_LIMIT__PER_SECOND", "1000"),
            ("CARFEED__API__RATE_LIMIT__BURST", "1000"),
            ("CARFEED__API__RATE_LIMIT__LOOKUPS_PER_SECOND", "1000"),
            ("CARFEED__API__RATE_LIMIT__LOOKUPS_BURST", "1000"),
        ]))
        .expect("the built-in config.yaml is valid");
        Self::from_settings(&settings, b"test-secret-key-of-at-least-32-chars!".to_vec())
    }
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
