//! carfeed's configuration, loaded once in `main` and passed down.
//!
//! Layers, later wins: the `config.yaml` built into the binary (the defaults),
//! the file at `CONFIG_FILE` (or `./config.yaml` when present), environment
//! variables `CARFEED__SECTION__KEY`, and the fixed short names `LOG_DIR`,
//! `API_BIND`, `CHE168_BASE_URL`. Secrets come from the environment only.
//!
//! Everything is validated here: a caller gets either a complete, typed
//! `Settings` or one `SettingsError` line naming the key that is wrong.

mod browser;
mod load;
mod roles;
mod secret_file;
mod secret_key;
mod secrets;
mod sections;
mod status;
mod sync;
mod typed;
mod worker;

pub use browser::{default_block_patterns, BrowserSettings, ExtractProfiles};
pub use load::{load, load_from, Env};
pub use roles::{PasswordOrigin, RolePassword, ServiceRole, SERVICE_ROLES};
pub use secret_key::{KeyOrigin, SecretKey};
pub use secrets::Secrets;
pub use sections::*;
pub use status::{AgeRule, StatusSettings};
pub use sync::{SyncRetrySettings, SyncSettings, SyncTable};
pub use typed::Schedule;
pub use worker::{CleanupSettings, WorkerSettings};

use serde::Deserialize;

/// Every technical setting (config.yaml) plus the secrets (environment).
#[derive(Debug, Clone)]
pub struct Settings {
    pub log: LogSettings,
    pub database: DatabaseSettings,
    pub upstream: UpstreamSettings,
    pub loader: LoaderSettings,
    pub normalizer: NormalizerSettings,
    pub api: ApiSettings,
    pub sync: SyncSettings,
    pub worker: WorkerSettings,
    pub status: StatusSettings,
    pub secrets: Secrets,
}

/// The shape of config.yaml. Unknown keys are rejected at every level.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    log: LogSettings,
    database: DatabaseSettings,
    upstream: UpstreamSettings,
    loader: LoaderSettings,
    normalizer: NormalizerSettings,
    api: ApiSettings,
    sync: SyncSettings,
    worker: WorkerSettings,
    status: StatusSettings,
}

/// A setting that is missing or invalid. Displays as one line starting with
/// `config:` that names the key; programs exit with code 2 on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config: {0}")]
pub struct SettingsError(pub String);

impl SettingsError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
