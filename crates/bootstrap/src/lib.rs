//! What every carfeed binary does around its real work.
//!
//! `bootstrap::main` reads `.env`, loads and validates the settings, installs
//! the logs, runs the service's future on a Tokio runtime and turns the result
//! into an exit code: 0 on success, 2 for a setup problem (a bad setting, a
//! missing `DATABASE_URL`, a schema older than the binary), 1 for anything
//! else. Setup problems print exactly one line.
//!
//! It must not know what any service does: services get a `Service` and decide.

mod shutdown;

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use db::{DbError, PgPool};
use settings::{Settings, SettingsError};

pub use shutdown::{shutdown_signal, shutdown_token};

/// Every binary's allocator (the bench's too: it links this crate, so it
/// measures what ships). glibc's malloc and free were a fifth of the api's
/// CPU per request (perf during `bench api`); mimalloc's thread-local free
/// lists make them cheaper. Built without transparent huge pages
/// (`no_thp`): with them its arenas took the api's peak resident memory
/// from 20 to 30-44 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A started binary: its name, its settings and its logs.
pub struct Service {
    pub name: &'static str,
    pub settings: Settings,
}

impl Service {
    /// Connects to the working database and refuses a schema older than this
    /// build needs.
    pub async fn connect(&self) -> anyhow::Result<PgPool> {
        let pool = self.pool().await?;
        let status = db::schema::ensure_current(&pool).await?;
        tracing::debug!(version = status.found, "Database schema is current");
        Ok(pool)
    }

    /// `<service> migrate`: applies pending migrations (advisory-locked, so
    /// several containers may run it at once) and reports what it did.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let pool = self.pool().await?;
        let applied = db::migrate(&pool)
            .await
            .context("Failed to apply migrations")?;
        if applied.is_empty() {
            tracing::info!(
                "Database schema is up to date (version {})",
                db::schema::needed_version()
            );
        } else {
            tracing::info!(
                "Applied {} migration(s); database schema is now at version {}",
                applied.len(),
                db::schema::needed_version()
            );
        }
        self.set_role_passwords(&pool).await
    }

    /// Gives each service role (migration 0015) its password, from
    /// `DB_<SERVICE>_PASSWORD` or the file under `DB_ROLE_PASSWORD_DIR`
    /// (generated there on first use). Nothing when neither is configured.
    async fn set_role_passwords(&self, pool: &PgPool) -> anyhow::Result<()> {
        let passwords = self.settings.secrets.role_passwords()?;
        if passwords.is_empty() {
            return Ok(());
        }
        let mut conn = pool.acquire().await?;
        for role in &passwords {
            db::roles::set_password(
                &mut conn,
                role.role,
                secrecy::ExposeSecret::expose_secret(&role.password),
            )
            .await
            .with_context(|| format!("Failed to set the password of role {}", role.role))?;
            match &role.origin {
                settings::PasswordOrigin::Generated(path) => tracing::warn!(
                    "Role {}: generated a password and kept it in {} (mode 0600); set {} in production",
                    role.role,
                    path.display(),
                    settings::SERVICE_ROLES
                        .iter()
                        .find(|r| r.role == role.role)
                        .map_or("its variable", |r| r.env)
                ),
                settings::PasswordOrigin::File(path) => {
                    tracing::info!("Role {}: password from {}", role.role, path.display());
                }
                settings::PasswordOrigin::Environment(name) => {
                    tracing::info!("Role {}: password from {name}", role.role);
                }
            }
        }
        Ok(())
    }

    /// `<service> check`: the container healthcheck. Exits 0 when the
    /// database answers and its schema is current, 1 otherwise, with one line
    /// either way. It holds one connection for a moment and never writes.
    pub async fn check(&self) -> anyhow::Result<()> {
        let url = self.settings.secrets.database_url()?;
        let options = db::PoolOptions {
            max_connections: 1,
            acquire_timeout: Duration::from_secs(5),
            application_name: format!("{}-check", self.name),
        };
        let pool = db::connect(url, &options)
            .await
            .context("Database unreachable (check DATABASE_URL)")?;
        let status = db::schema::ensure_current(&pool).await?;
        pool.close().await;
        println!(
            "{}: ok (database schema version {})",
            self.name, status.found
        );
        Ok(())
    }

    async fn pool(&self) -> anyhow::Result<PgPool> {
        let url = self.settings.secrets.database_url()?;
        let options = db::PoolOptions {
            max_connections: u32::try_from(self.settings.database.max_connections).unwrap_or(10),
            acquire_timeout: self.settings.database.acquire_timeout,
            application_name: self.name.to_owned(),
        };
        db::connect(url, &options)
            .await
            .context("Failed to connect to the database (check DATABASE_URL)")
    }
}

/// Runs a binary: settings, logs, then `work` on a multi-threaded runtime.
pub fn main<F, Fut>(name: &'static str, work: F) -> ExitCode
where
    F: FnOnce(Service) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    // A .env beside the binary's working directory fills in unset variables.
    let _ = dotenvy::dotenv();
    let loaded = settings::load().and_then(|s| match s.secrets.database_url() {
        Ok(_) => Ok(s),
        Err(missing) => Err(missing),
    });
    let settings = match loaded {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };
    let _log_guard = match telemetry::init(name, &settings.log) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("config: log.dir: {err:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(work(Service { name, settings }));
    // Don't let a stuck background task hold the process after the work is done.
    runtime.shutdown_timeout(Duration::from_secs(5));
    exit_code(name, result)
}

/// 2 for setup problems, 1 for anything else; the error is logged once.
fn exit_code(name: &str, result: anyhow::Result<()>) -> ExitCode {
    let Err(err) = result else {
        return ExitCode::SUCCESS;
    };
    if let Some(settings_error) = err.downcast_ref::<SettingsError>() {
        tracing::error!("{settings_error}");
        return ExitCode::from(2);
    }
    if let Some(db_error @ DbError::SchemaTooOld { .. }) = err.downcast_ref::<DbError>() {
        tracing::error!("{name}: {db_error}");
        return ExitCode::from(2);
    }
    tracing::error!("{name} failed: {err:#}");
    ExitCode::FAILURE
}
