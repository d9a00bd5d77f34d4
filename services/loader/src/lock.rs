//! One loader run at a time across all replicas: a session-level Postgres
//! advisory lock held on a dedicated connection (not a pooled one), so that
//! dropping it, or the process dying, always releases the lock.

use anyhow::Context;
use sqlx::{Connection, PgConnection, PgPool};

/// The advisory lock key of loader runs ("carfload" in ASCII).
const LOADER_LOCK_KEY: i64 = 0x6361_7266_6c6f_6164;

/// Held for the length of a run.
pub struct RunLock {
    conn: PgConnection,
}

/// Takes the loader lock, or `None` if another run holds it.
pub async fn try_acquire(pool: &PgPool) -> anyhow::Result<Option<RunLock>> {
    let options = pool.connect_options();
    let mut conn = PgConnection::connect_with(&options)
        .await
        .context("Failed to open the connection for the loader lock")?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LOADER_LOCK_KEY)
        .fetch_one(&mut conn)
        .await
        .context("Failed to ask for the loader lock")?;
    if locked {
        Ok(Some(RunLock { conn }))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

impl RunLock {
    /// Releases the lock (closing the session would too).
    pub async fn release(mut self) {
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOADER_LOCK_KEY)
            .execute(&mut self.conn)
            .await;
        let _ = self.conn.close().await;
    }
}
