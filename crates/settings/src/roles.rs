//! The services' database roles (migration 0015) and their passwords.
//!
//! A service logs in as its own role: `DB_USER` names it and the password
//! is `DB_PASSWORD`, else the first line of the file at `DB_PASSWORD_FILE`
//! (see `secrets.rs`). The owner's `migrate` sets every role's password:
//! from `DB_<SERVICE>_PASSWORD` when set, else from
//! `<DB_ROLE_PASSWORD_DIR>/<role>/password`, generated there on first use
//! (the development default, like the api's generated `SECRET_KEY`).

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use crate::secret_file::{Found, SecretFile};
use crate::{load::Env, Secrets, SettingsError};

/// Random bytes in a generated password (written as 48 hex characters).
const GENERATED_BYTES: usize = 24;

/// A service's role and the variable its password may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceRole {
    pub role: &'static str,
    pub env: &'static str,
}

pub const SERVICE_ROLES: [ServiceRole; 5] = [
    ServiceRole {
        role: "carfeed_loader",
        env: "DB_LOADER_PASSWORD",
    },
    ServiceRole {
        role: "carfeed_normalizer",
        env: "DB_NORMALIZER_PASSWORD",
    },
    ServiceRole {
        role: "carfeed_api",
        env: "DB_API_PASSWORD",
    },
    ServiceRole {
        role: "carfeed_worker",
        env: "DB_WORKER_PASSWORD",
    },
    ServiceRole {
        role: "carfeed_sync",
        env: "DB_SYNC_PASSWORD",
    },
];

/// Where a role's password came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordOrigin {
    Environment(&'static str),
    File(PathBuf),
    Generated(PathBuf),
}

/// A password `migrate` sets (redacted in `Debug`).
#[derive(Debug, Clone)]
pub struct RolePassword {
    pub role: &'static str,
    pub password: SecretString,
    pub origin: PasswordOrigin,
}

/// What the environment says about role passwords.
#[derive(Debug, Clone, Default)]
pub(crate) struct RolePasswordSources {
    from_env: Vec<(ServiceRole, SecretString)>,
    dir: Option<PathBuf>,
}

impl RolePasswordSources {
    pub(crate) fn from_env(env: &Env) -> Self {
        Self {
            from_env: SERVICE_ROLES
                .iter()
                .filter_map(|r| env.non_empty(r.env).map(|p| (*r, SecretString::from(p))))
                .collect(),
            dir: env.non_empty("DB_ROLE_PASSWORD_DIR").map(PathBuf::from),
        }
    }
}

impl Secrets {
    /// Every role whose password `migrate` should set; empty when neither a
    /// `DB_<SERVICE>_PASSWORD` nor `DB_ROLE_PASSWORD_DIR` is configured
    /// (tests, binaries run by hand).
    pub fn role_passwords(&self) -> Result<Vec<RolePassword>, SettingsError> {
        let sources = &self.role_password_sources;
        let mut out = Vec::new();
        for role in SERVICE_ROLES {
            if let Some((_, password)) = sources.from_env.iter().find(|(r, _)| *r == role) {
                out.push(RolePassword {
                    role: role.role,
                    password: password.clone(),
                    origin: PasswordOrigin::Environment(role.env),
                });
            } else if let Some(dir) = &sources.dir {
                let path = dir.join(role.role).join("password");
                let file = password_file(&path);
                let check = |p: &str| non_empty(&file, p);
                let (password, origin) = match file.read_or_generate(GENERATED_BYTES, check)? {
                    Found::File(p) => (p, PasswordOrigin::File(path)),
                    Found::Generated(p) => (p, PasswordOrigin::Generated(path)),
                };
                out.push(RolePassword {
                    role: role.role,
                    password,
                    origin,
                });
            }
        }
        Ok(out)
    }
}

/// The first line of a password file; `None` when it does not exist.
pub(crate) fn read(path: &Path) -> Result<Option<SecretString>, SettingsError> {
    let file = password_file(path);
    file.read(|p| non_empty(&file, p))
}

fn password_file(path: &Path) -> SecretFile<'_> {
    SecretFile {
        path,
        name: "database password file",
    }
}

fn non_empty(file: &SecretFile<'_>, password: &str) -> Result<(), SettingsError> {
    if password.is_empty() {
        return Err(file.error("is empty"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use secrecy::ExposeSecret;

    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> Secrets {
        let mut all = vec![("DATABASE_URL", "postgres://x@h/d")];
        all.extend_from_slice(pairs);
        Secrets::from_env(&Env::from_pairs(all.iter().copied())).unwrap()
    }

    #[test]
    fn without_variables_or_a_directory_no_password_is_set() {
        assert!(secrets(&[]).role_passwords().unwrap().is_empty());
    }

    #[test]
    fn a_variable_wins_and_the_others_are_generated_once_in_mode_0600_files() {
        let dir = tempfile::tempdir().unwrap();
        let dir_text = dir.path().to_str().unwrap();
        let s = secrets(&[
            ("DB_API_PASSWORD", "from-env"),
            ("DB_ROLE_PASSWORD_DIR", dir_text),
        ]);
        let first = s.role_passwords().unwrap();
        assert_eq!(first.len(), 5);
        let api = first.iter().find(|p| p.role == "carfeed_api").unwrap();
        assert_eq!(api.password.expose_secret(), "from-env");
        assert_eq!(api.origin, PasswordOrigin::Environment("DB_API_PASSWORD"));
        let worker = first.iter().find(|p| p.role == "carfeed_worker").unwrap();
        let path = dir.path().join("carfeed_worker/password");
        assert_eq!(worker.origin, PasswordOrigin::Generated(path.clone()));
        assert_eq!(worker.password.expose_secret().len(), 48);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!dir.path().join("carfeed_api").exists());

        let again = s.role_passwords().unwrap();
        let worker_again = again.iter().find(|p| p.role == "carfeed_worker").unwrap();
        assert_eq!(worker_again.origin, PasswordOrigin::File(path));
        assert_eq!(
            worker_again.password.expose_secret(),
            worker.password.expose_secret()
        );
    }

    #[test]
    fn a_service_reads_its_password_from_db_password_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "p@ss/word\n").unwrap();
        let env = Env::from_pairs([
            ("DB_HOST", "postgres"),
            ("DB_USER", "carfeed_api"),
            ("DB_NAME", "carfeed"),
            ("DB_PASSWORD_FILE", file.to_str().unwrap()),
        ]);
        let s = Secrets::from_env(&env).unwrap();
        assert_eq!(
            s.database_url().unwrap(),
            "postgres://carfeed%5Fapi:p%40ss%2Fword@postgres:5432/carfeed"
        );
        let missing = Env::from_pairs([
            ("DB_HOST", "postgres"),
            ("DB_USER", "carfeed_api"),
            ("DB_NAME", "carfeed"),
            ("DB_PASSWORD_FILE", "/nonexistent/carfeed/password"),
        ]);
        let err = Secrets::from_env(&missing).unwrap_err();
        assert!(err.to_string().contains("DB_PASSWORD_FILE"), "{err}");
    }
}
