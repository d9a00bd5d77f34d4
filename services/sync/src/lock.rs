//! One run per direction at a time: a session advisory lock on the working
//! database (where every mark lives), held on a connection of its own for
//! the run's whole length. A second `sync push` (by hand while `sync serve`
//! pushes, or two timers) says who holds the lock and waits for it; the
//! lock goes with its connection, so a killed run never leaves it behind.

use anyhow::Context;
use db::sync_tables::{run_lock_key, Direction, RUN_LOCK_CLASS};
use db::PgPool;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

pub struct RunLock {
    conn: PgConnection,
}

impl RunLock {
    /// Takes `direction`'s lock, waiting while another run holds it (until
    /// `shutdown`).
    pub async fn acquire(
        working: &PgPool,
        direction: Direction,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let mut conn = PgConnection::connect_with(&working.connect_options())
            .await
            .context("Failed to connect to the working database for the run lock")?;
        let key = run_lock_key(direction);
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(RUN_LOCK_CLASS)
            .bind(key)
            .fetch_one(&mut conn)
            .await
            .context("Failed to take the run lock")?;
        if !taken {
            let holder: Option<String> = sqlx::query_scalar(
                "SELECT format('pid %s, %s, since %s', a.pid, coalesce(nullif(a.application_name, ''), 'unnamed'),
                               to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'))
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
                       SELECT oid FROM pg_database WHERE datname = current_database())
                   AND l.classid = $1::oid AND l.objid = $2::oid AND l.objsubid = 2
                 LIMIT 1",
            )
            .bind(i64::from(RUN_LOCK_CLASS))
            .bind(i64::from(key))
            .fetch_optional(&mut conn)
            .await
            .context("Failed to see who holds the run lock")?
            .flatten();
            tracing::warn!(
                "Another sync {} is running ({}): waiting for it to finish",
                direction.as_str(),
                holder.as_deref().unwrap_or("its session just ended")
            );
            tokio::select! {
                taken = sqlx::query("SELECT pg_advisory_lock($1, $2)")
                    .bind(RUN_LOCK_CLASS)
                    .bind(key)
                    .execute(&mut conn) => {
                    taken.context("Failed to wait for the run lock")?;
                }
                () = shutdown.cancelled() => {
                    anyhow::bail!("shutdown requested while waiting for the other sync {}", direction.as_str());
                }
            }
            tracing::info!("The other sync {} finished: running", direction.as_str());
        }
        Ok(Self { conn })
    }

    /// Gives the lock back (dropping it does too, by closing the session).
    pub async fn release(self) {
        let _ = self.conn.close().await;
    }
}
