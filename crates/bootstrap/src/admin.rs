//! The shared subcommands (`migrate`, `check`) and the working database's
//! pool, for every binary.

use std::time::Duration;

use anyhow::Context as _;
use db::PgPool;
use settings::Settings;

/// Connects to the working database and refuses a schema older than this
/// build needs.
pub(crate) async fn connect(name: &'static str, settings: &Settings) -> anyhow::Result<PgPool> {
    let pool = pool(name, settings).await?;
    let status = db::schema::ensure_current(&pool).await?;
    tracing::debug!(version = status.found, "Database schema is current");
    Ok(pool)
}

/// A pool of the working database that connects only when used.
pub(crate) fn connect_lazy(name: &'static str, settings: &Settings) -> anyhow::Result<PgPool> {
    let url = settings.secrets.database_url()?;
    let connect: sqlx::postgres::PgConnectOptions =
        url.parse().context("DATABASE_URL is not a database URL")?;
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(settings.database.max_connections.get())
        .acquire_timeout(settings.database.acquire_timeout)
        .connect_lazy_with(connect.application_name(name)))
}

/// `<service> migrate`: applies pending migrations (advisory-locked, so
/// several containers may run it at once) and reports what it did.
pub(crate) async fn migrate(name: &'static str, settings: &Settings) -> anyhow::Result<()> {
    let pool = pool(name, settings).await?;
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
    set_role_passwords(settings, &pool).await
}

/// Gives each service role (migration 0015) its password, from
/// `DB_<SERVICE>_PASSWORD` or the file under `DB_ROLE_PASSWORD_DIR`
/// (generated there on first use). Nothing when neither is configured.
async fn set_role_passwords(settings: &Settings, pool: &PgPool) -> anyhow::Result<()> {
    let passwords = settings.secrets.role_passwords()?;
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
pub(crate) async fn check(name: &'static str, settings: &Settings) -> anyhow::Result<()> {
    let url = settings.secrets.database_url()?;
    let options = db::PoolOptions {
        max_connections: 1,
        acquire_timeout: Duration::from_secs(5),
        application_name: format!("{name}-check"),
    };
    let pool = db::connect(url, &options)
        .await
        .context("Database unreachable (check DATABASE_URL)")?;
    let status = db::schema::ensure_current(&pool).await?;
    pool.close().await;
    println!("{name}: ok (database schema version {})", status.found);
    Ok(())
}

async fn pool(name: &'static str, settings: &Settings) -> anyhow::Result<PgPool> {
    let url = settings.secrets.database_url()?;
    let options = db::PoolOptions {
        max_connections: settings.database.max_connections.get(),
        acquire_timeout: settings.database.acquire_timeout,
        application_name: name.to_owned(),
    };
    db::connect(url, &options)
        .await
        .context("Failed to connect to the database (check DATABASE_URL)")
}
