//! A secret kept in a file: read its first line, or on first use generate a
//! random one there (hex, mode 0600, never over an existing file). The api's
//! `SECRET_KEY_FILE` (`secret_key.rs`) and the service roles' password files
//! (`roles.rs`) are two of these.

use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rand::RngCore;
use secrecy::SecretString;

use crate::SettingsError;

/// A secret's file, and how its errors name it.
pub(crate) struct SecretFile<'a> {
    pub path: &'a Path,
    /// "SECRET_KEY_FILE", "database password file".
    pub name: &'a str,
}

/// Whether the secret was in the file or was generated just now.
pub(crate) enum Found {
    File(SecretString),
    Generated(SecretString),
}

impl SecretFile<'_> {
    /// The file's first line (trimmed), accepted by `check`; `None` when the
    /// file does not exist.
    pub fn read(
        &self,
        check: impl Fn(&str) -> Result<(), SettingsError>,
    ) -> Result<Option<SecretString>, SettingsError> {
        let text = match std::fs::read_to_string(self.path) {
            Ok(text) => text,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(self.error(&format!("cannot be read: {err}"))),
        };
        let secret = text.lines().next().unwrap_or_default().trim();
        check(secret)?;
        Ok(Some(SecretString::from(secret.to_owned())))
    }

    /// The secret in the file, else `random_bytes` random bytes (as hex)
    /// written there; when another process created the file between our
    /// read and write, theirs.
    pub fn read_or_generate(
        &self,
        random_bytes: usize,
        check: impl Fn(&str) -> Result<(), SettingsError>,
    ) -> Result<Found, SettingsError> {
        if let Some(secret) = self.read(&check)? {
            return Ok(Found::File(secret));
        }
        match self.generate(random_bytes)? {
            Some(secret) => Ok(Found::Generated(secret)),
            None => self
                .read(&check)?
                .map(Found::File)
                .ok_or_else(|| self.error("is empty")),
        }
    }

    /// Writes a new random secret (mode 0600, never over an existing file);
    /// `None` when the file appeared meanwhile.
    fn generate(&self, random_bytes: usize) -> Result<Option<SecretString>, SettingsError> {
        let mut bytes = vec![0u8; random_bytes];
        // ThreadRng: a CSPRNG seeded from the operating system.
        rand::rng().fill_bytes(&mut bytes);
        let secret = hex::encode(bytes);
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|err| self.error(&format!("cannot be created: {err}")))?;
        }
        let mut file = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.path)
        {
            Ok(file) => file,
            Err(err) if err.kind() == ErrorKind::AlreadyExists => return Ok(None),
            Err(err) => return Err(self.error(&format!("cannot be created: {err}"))),
        };
        // The mode given at creation is reduced by the umask; 0600 is the point.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .and_then(|()| file.write_all(format!("{secret}\n").as_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(|err| self.error(&format!("cannot be written: {err}")))?;
        Ok(Some(SecretString::from(secret)))
    }

    /// `<name> <path> <what>`, e.g. "SECRET_KEY_FILE /x cannot be read: ...".
    pub fn error(&self, what: &str) -> SettingsError {
        SettingsError::new(format!("{} {} {what}", self.name, self.path.display()))
    }
}
