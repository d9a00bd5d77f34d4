//! The schema history and the check every service runs before it starts.

use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection, PgPool};

use crate::DbError;

/// The one schema history of carfeed, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Key of the advisory lock `migrate` holds while it reads what is applied
/// and migrates (sqlx's own lock, taken inside, has another key).
const MIGRATE_LOCK: i64 = 0x0063_6172_6665_6564; // "carfeed"

/// Applies every pending migration and returns the versions this call
/// applied. sqlx holds a Postgres advisory lock while it migrates, so
/// several containers starting at once apply each migration exactly once;
/// the others wait and then find nothing to do. What was applied before is
/// read under a lock of this function's own, held across the run, so a
/// caller that waited reports nothing rather than what another applied.
/// The lock is a session's: the connection is taken out of the pool and
/// closed after, so a cancelled call cannot leave it held.
pub async fn migrate(pool: &PgPool) -> Result<Vec<i64>, DbError> {
    let mut conn = pool.acquire().await?.detach();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATE_LOCK)
        .execute(&mut conn)
        .await?;
    let before = version_on(&mut conn).await?;
    // `run` on a connection makes a future no spawned task can hold
    // ("implementation of `Acquire` is not general enough"); `run_direct`
    // is sqlx's way around that (its own test harness uses it).
    MIGRATOR.run_direct(&mut conn).await?;
    conn.close().await?;
    Ok(MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|v| *v > before)
        .collect())
}

/// Where the database's schema stands against what this build needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaStatus {
    pub found: i64,
    pub needed: i64,
}

impl SchemaStatus {
    pub fn is_current(&self) -> bool {
        self.found >= self.needed
    }
}

/// The newest migration this build carries.
pub fn needed_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Reads the newest successfully applied migration; 0 on an empty database.
pub async fn applied_version(pool: &PgPool) -> Result<i64, DbError> {
    version_on(&mut *pool.acquire().await?).await
}

async fn version_on(conn: &mut PgConnection) -> Result<i64, DbError> {
    let table_exists: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?;
    if !table_exists {
        return Ok(0);
    }
    let version: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut *conn)
            .await?;
    Ok(version.unwrap_or(0))
}

/// Where the schema of `conn`'s database stands.
pub async fn status(conn: &mut PgConnection) -> Result<SchemaStatus, DbError> {
    Ok(SchemaStatus {
        found: version_on(conn).await?,
        needed: needed_version(),
    })
}

/// Refuses a schema older than this build needs. A newer schema is accepted:
/// migrations only add, so an older binary keeps working during a rollout.
pub async fn ensure_current(pool: &PgPool) -> Result<SchemaStatus, DbError> {
    let status = status(&mut *pool.acquire().await?).await?;
    if status.is_current() {
        Ok(status)
    } else {
        Err(DbError::SchemaTooOld {
            found: status.found,
            needed: status.needed,
        })
    }
}
