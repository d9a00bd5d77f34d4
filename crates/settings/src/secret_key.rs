//! The api's `SECRET_KEY` (the key of the tokens' keyed hash), resolved in
//! one place for `api serve` and `api tokens`.
//!
//! `SECRET_KEY` wins. Without it the api refuses to start, unless the
//! operator opted in to a key file with `SECRET_KEY_FILE` (the development
//! compose stack does; the production one does not): then the file is read,
//! or, when it does not exist yet, a key is generated from a CSPRNG and
//! written there with mode 0600, and the caller logs a warning saying so.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use crate::secret_file::{Found, SecretFile};
use crate::{Secrets, SettingsError};

/// Shortest key accepted, in characters.
const MIN_LEN: usize = 32;

/// Random bytes in a generated key (written as 64 hex characters).
const GENERATED_BYTES: usize = 32;

/// A usable `SECRET_KEY` and where it came from.
#[derive(Debug, Clone)]
pub struct SecretKey {
    key: SecretString,
    pub origin: KeyOrigin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The `SECRET_KEY` variable.
    Environment,
    /// Read from `SECRET_KEY_FILE`, written by an earlier start.
    File(PathBuf),
    /// Generated just now and written to `SECRET_KEY_FILE`.
    Generated(PathBuf),
}

impl SecretKey {
    pub fn expose(&self) -> &[u8] {
        self.key.expose_secret().as_bytes()
    }
}

impl Secrets {
    /// The api's key: `SECRET_KEY`, else the file at `SECRET_KEY_FILE`
    /// (generated there on first use), else an error naming `SECRET_KEY`.
    pub fn secret_key(&self) -> Result<SecretKey, SettingsError> {
        if let Some(key) = &self.secret_key {
            check_length("SECRET_KEY", key.expose_secret())?;
            return Ok(SecretKey {
                key: key.clone(),
                origin: KeyOrigin::Environment,
            });
        }
        match &self.secret_key_file {
            Some(path) => from_file(path),
            None => Err(SettingsError::new(
                "SECRET_KEY is not set (or set SECRET_KEY_FILE to keep a generated key in a file)",
            )),
        }
    }
}

fn check_length(name: &str, key: &str) -> Result<(), SettingsError> {
    if key.len() < MIN_LEN {
        return Err(SettingsError::new(format!(
            "{name} must be at least {MIN_LEN} characters, got {}",
            key.len()
        )));
    }
    Ok(())
}

fn from_file(path: &Path) -> Result<SecretKey, SettingsError> {
    let file = SecretFile {
        path,
        name: "SECRET_KEY_FILE",
    };
    let name = format!("SECRET_KEY_FILE ({})", path.display());
    let check = |key: &str| check_length(&name, key);
    Ok(match file.read_or_generate(GENERATED_BYTES, check)? {
        Found::File(key) => SecretKey {
            key,
            origin: KeyOrigin::File(path.to_owned()),
        },
        Found::Generated(key) => SecretKey {
            key,
            origin: KeyOrigin::Generated(path.to_owned()),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::Env;

    fn secrets(pairs: &[(&str, &str)]) -> Secrets {
        Secrets::from_env(&Env::from_pairs(pairs.iter().copied())).unwrap()
    }

    #[test]
    fn without_secret_key_and_without_a_key_file_the_key_is_refused_naming_secret_key() {
        let err = secrets(&[]).secret_key().unwrap_err();
        assert!(
            err.to_string().starts_with("config: SECRET_KEY is not set"),
            "{err}"
        );
    }

    #[test]
    fn a_short_secret_key_is_refused_even_with_a_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret_key");
        let err = secrets(&[
            ("SECRET_KEY", "short"),
            ("SECRET_KEY_FILE", file.to_str().unwrap()),
        ])
        .secret_key()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "config: SECRET_KEY must be at least 32 characters, got 5"
        );
        assert!(
            !file.exists(),
            "a key file was written although SECRET_KEY is set"
        );
    }

    #[test]
    fn secret_key_wins_over_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret_key");
        std::fs::write(&file, "k".repeat(40)).unwrap();
        let key = secrets(&[
            ("SECRET_KEY", &"e".repeat(32)),
            ("SECRET_KEY_FILE", file.to_str().unwrap()),
        ])
        .secret_key()
        .unwrap();
        assert_eq!(key.origin, KeyOrigin::Environment);
        assert_eq!(key.expose(), "e".repeat(32).as_bytes());
    }

    #[test]
    fn the_first_use_generates_a_random_key_in_a_mode_0600_file_and_later_uses_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets/secret_key");
        let env = [("SECRET_KEY_FILE", file.to_str().unwrap())];

        let first = secrets(&env).secret_key().unwrap();
        assert_eq!(first.origin, KeyOrigin::Generated(file.clone()));
        assert_eq!(first.expose().len(), 2 * GENERATED_BYTES);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let again = secrets(&env).secret_key().unwrap();
        assert_eq!(again.origin, KeyOrigin::File(file.clone()));
        assert_eq!(again.expose(), first.expose());

        let elsewhere = dir.path().join("other_key");
        let other = secrets(&[("SECRET_KEY_FILE", elsewhere.to_str().unwrap())])
            .secret_key()
            .unwrap();
        assert_ne!(
            other.expose(),
            first.expose(),
            "two generated keys are equal"
        );
    }

    #[test]
    fn a_key_file_holding_a_short_key_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret_key");
        std::fs::write(&file, "too-short\n").unwrap();
        let err = secrets(&[("SECRET_KEY_FILE", file.to_str().unwrap())])
            .secret_key()
            .unwrap_err();
        let line = err.to_string();
        assert!(line.starts_with("config: SECRET_KEY_FILE ("), "{line}");
        assert!(line.contains("at least 32 characters, got 9"), "{line}");
    }
}
