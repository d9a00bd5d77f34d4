//! Secrets: read from the environment only, and redacted in `Debug`.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

use crate::roles::RolePasswordSources;
use crate::{load::Env, SettingsError};

#[derive(Debug, Clone, Default)]
pub struct Secrets {
    database_url: Option<SecretString>,
    pub target_database_url: Option<SecretString>,
    pub che168_api_key: Option<SecretString>,
    pub che168_access_name: Option<String>,
    pub secret_key: Option<SecretString>,
    /// `SECRET_KEY_FILE`: where a generated key is kept when `SECRET_KEY`
    /// is unset (see `secret_key.rs`); unset = no such fallback.
    pub secret_key_file: Option<PathBuf>,
    /// Where `migrate` takes the service roles' passwords from (`roles.rs`).
    pub(crate) role_password_sources: RolePasswordSources,
}

impl Secrets {
    pub(crate) fn from_env(env: &Env) -> Result<Self, SettingsError> {
        Ok(Self {
            database_url: database_url(env)?.map(SecretString::from),
            target_database_url: env.non_empty("TARGET_DATABASE_URL").map(SecretString::from),
            che168_api_key: env.non_empty("CHE168_API_KEY").map(SecretString::from),
            che168_access_name: env.non_empty("CHE168_ACCESS_NAME"),
            secret_key: env.non_empty("SECRET_KEY").map(SecretString::from),
            secret_key_file: env.non_empty("SECRET_KEY_FILE").map(PathBuf::from),
            role_password_sources: RolePasswordSources::from_env(env),
        })
    }

    /// The working database; every service needs it.
    pub fn database_url(&self) -> Result<&str, SettingsError> {
        self.database_url
            .as_ref()
            .map(|s| s.expose_secret())
            .ok_or_else(|| {
                SettingsError::new(
                    "DATABASE_URL is not set (set it, or DB_HOST, DB_USER and DB_NAME)",
                )
            })
    }

    /// Production, for `sync`: the database the public site's API reads.
    pub fn target_database_url(&self) -> Result<&str, SettingsError> {
        self.target_database_url
            .as_ref()
            .map(|s| s.expose_secret())
            .ok_or_else(|| {
                SettingsError::new("TARGET_DATABASE_URL is not set (sync needs production's URL)")
            })
    }
}

/// `DATABASE_URL`, else a URL built from `DB_HOST`, `DB_PORT`, `DB_USER`,
/// `DB_PASSWORD` (else the first line of `DB_PASSWORD_FILE`: a service
/// role's password, written by `migrate`), `DB_NAME`; `None` when neither
/// is there.
fn database_url(env: &Env) -> Result<Option<String>, SettingsError> {
    if let Some(url) = env.non_empty("DATABASE_URL") {
        return Ok(Some(url));
    }
    let Some(host) = env.non_empty("DB_HOST") else {
        return Ok(None);
    };
    let port = env.non_empty("DB_PORT").unwrap_or_else(|| "5432".into());
    if port.parse::<u16>().is_err() {
        return Err(SettingsError::new(format!(
            "DB_PORT must be a port number, got {port:?}"
        )));
    }
    let user = env
        .non_empty("DB_USER")
        .ok_or_else(|| SettingsError::new("DB_USER is not set (needed with DB_HOST)"))?;
    let name = env
        .non_empty("DB_NAME")
        .ok_or_else(|| SettingsError::new("DB_NAME is not set (needed with DB_HOST)"))?;
    let encode = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let password = match (
        env.non_empty("DB_PASSWORD"),
        env.non_empty("DB_PASSWORD_FILE"),
    ) {
        (Some(password), _) => Some(password),
        (None, Some(file)) => {
            let path = PathBuf::from(&file);
            let password = crate::roles::read(&path)?.ok_or_else(|| {
                SettingsError::new(format!(
                    "DB_PASSWORD_FILE {file} does not exist (the migrate service writes it)"
                ))
            })?;
            Some(secrecy::ExposeSecret::expose_secret(&password).to_owned())
        }
        (None, None) => None,
    };
    let auth = match password {
        Some(password) => format!("{}:{}", encode(&user), encode(&password)),
        None => encode(&user),
    };
    Ok(Some(format!(
        "postgres://{auth}@{host}:{port}/{}",
        encode(&name)
    )))
}
