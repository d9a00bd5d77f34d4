//! How a transaction commits: waiting for its WAL flush or not.

use sqlx::PgConnection;

use crate::DbError;

/// Whether a write waits for its WAL to reach disk before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Postgres' default: a committed write survives a Postgres crash.
    Synchronous,
    /// `synchronous_commit = off`: a Postgres crash may forget the last
    /// ~0.6 s of commits (never half of one). For writes that are redone
    /// when forgotten: they carry their own resume point (the initial load's
    /// cursor) or their input stays queued (the normaliser's batches).
    Asynchronous,
}

impl Commit {
    pub(crate) fn setting(self) -> &'static str {
        match self {
            Self::Synchronous => "on",
            Self::Asynchronous => "off",
        }
    }

    /// Sets the mode for the rest of the caller's transaction.
    pub async fn apply(self, tx: &mut PgConnection) -> Result<(), DbError> {
        sqlx::query("SELECT set_config('synchronous_commit', $1, true)")
            .bind(self.setting())
            .execute(tx)
            .await?;
        Ok(())
    }
}
