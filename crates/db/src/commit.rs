//! How a unit of work runs: whether its commit waits for the WAL flush, and
//! how long a statement may take. The one way carfeed sets
//! `synchronous_commit` and `statement_timeout`.
//!
//! A [`Mode`] applies to one transaction ([`Mode::begin`], [`Mode::apply`]:
//! `set_config(name, value, true)` with bound values, gone with the
//! transaction) or to every session of a pool ([`Mode::pool`],
//! [`Mode::connect_options`]: startup options, for connections that only
//! ever run so). A session's mode costs no round trip, a transaction's costs
//! one, so the hot single-statement paths (the worker's claims and
//! completions, every api query) run on sessions of their own.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Acquire, PgConnection, PgPool, Postgres, Transaction};

use crate::DbError;

/// Whether a write waits for its WAL to reach disk before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Postgres' default: a committed write survives a Postgres crash.
    Synchronous,
    /// `synchronous_commit = off`: a Postgres crash may forget the last
    /// ~0.6 s of commits (never half of one). For writes that are redone
    /// when forgotten: they carry their own resume point (the initial load's
    /// cursor), their input stays queued (the normaliser's batches), or
    /// their lease fences them (the worker's claims and completions).
    Asynchronous,
}

impl Commit {
    fn setting(self) -> &'static str {
        match self {
            Self::Synchronous => "on",
            Self::Asynchronous => "off",
        }
    }
}

/// The settings a transaction or a session runs under; what is not set is
/// left as the server has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mode {
    commit: Option<Commit>,
    statement_timeout: Option<Duration>,
    generic_plans: bool,
}

impl Mode {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn commit(self, commit: Commit) -> Self {
        Self {
            commit: Some(commit),
            ..self
        }
    }

    /// Any statement running longer is cancelled. Zero: never (as Postgres
    /// reads 0); a timeout under 1 ms is 1 ms, not 0.
    pub fn statement_timeout(self, timeout: Duration) -> Self {
        Self {
            statement_timeout: Some(timeout),
            ..self
        }
    }

    /// `plan_cache_mode = force_generic_plan`: a prepared statement is
    /// planned once, for every value.
    pub fn generic_plans(self) -> Self {
        Self {
            generic_plans: true,
            ..self
        }
    }

    /// (name, value) of each setting this mode sets.
    fn settings(&self) -> Vec<(&'static str, String)> {
        let mut settings = Vec::new();
        if let Some(commit) = self.commit {
            settings.push(("synchronous_commit", commit.setting().to_owned()));
        }
        if let Some(timeout) = self.statement_timeout {
            let millis = if timeout.is_zero() {
                0
            } else {
                timeout.as_millis().max(1)
            };
            settings.push(("statement_timeout", millis.to_string()));
        }
        if self.generic_plans {
            settings.push(("plan_cache_mode", "force_generic_plan".to_owned()));
        }
        settings
    }

    /// Sets the mode for the rest of the caller's transaction, in one
    /// statement (none when the mode sets nothing).
    pub async fn apply(&self, tx: &mut PgConnection) -> Result<(), DbError> {
        let (names, values): (Vec<&str>, Vec<String>) = self.settings().into_iter().unzip();
        if names.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "SELECT set_config(name, value, true) FROM UNNEST($1::text[], $2::text[]) AS s(name, value)",
        )
        .bind(names)
        .bind(values)
        .execute(tx)
        .await?;
        Ok(())
    }

    /// Begins a transaction on `db` (a pool or a connection) in this mode.
    pub async fn begin<'c>(
        &self,
        db: impl Acquire<'c, Database = Postgres>,
    ) -> Result<Transaction<'c, Postgres>, DbError> {
        let mut tx = db.begin().await?;
        self.apply(&mut tx).await?;
        Ok(tx)
    }

    /// `options` whose sessions start in this mode.
    pub fn connect_options(&self, options: PgConnectOptions) -> PgConnectOptions {
        let settings = self.settings();
        options.options(settings.iter().map(|(name, value)| (*name, value.as_str())))
    }

    /// A second pool to `pool`'s server (same address, credentials and
    /// acquire timeout), of at most `max_connections`, whose sessions run in
    /// this mode. Connects lazily.
    pub fn pool(&self, pool: &PgPool, max_connections: u32) -> PgPool {
        let connect = self.connect_options((*pool.connect_options()).clone());
        PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(pool.options().get_acquire_timeout())
            .connect_lazy_with(connect)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn show(conn: &mut PgConnection) -> (String, String, String) {
        sqlx::query_as(
            "SELECT current_setting('synchronous_commit'), current_setting('statement_timeout'),
                    current_setting('plan_cache_mode')",
        )
        .fetch_one(conn)
        .await
        .unwrap()
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn a_transactions_mode_holds_until_it_ends(pool: PgPool) {
        let mut conn = pool.acquire().await.unwrap();
        sqlx::query("SET synchronous_commit = on")
            .execute(&mut *conn)
            .await
            .unwrap();
        let before = show(&mut conn).await;
        let mode = Mode::new()
            .commit(Commit::Asynchronous)
            .statement_timeout(Duration::from_micros(300))
            .generic_plans();
        let mut tx = mode.begin(&mut *conn).await.unwrap();
        assert_eq!(
            show(&mut tx).await,
            ("off".into(), "1ms".into(), "force_generic_plan".into())
        );
        tx.commit().await.unwrap();
        assert_eq!(show(&mut conn).await, before);

        let synchronous = Mode::new().commit(Commit::Synchronous);
        let mut tx = synchronous.begin(&pool).await.unwrap();
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await
            .unwrap();
        synchronous.apply(&mut tx).await.unwrap();
        assert_eq!(show(&mut tx).await.0, "on");
        tx.rollback().await.unwrap();
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn a_pools_sessions_start_in_its_mode(pool: PgPool) {
        let timed = Mode::new()
            .commit(Commit::Asynchronous)
            .statement_timeout(Duration::from_secs(2))
            .pool(&pool, 1);
        let mut conn = timed.acquire().await.unwrap();
        let (commit, timeout, plans) = show(&mut conn).await;
        assert_eq!((commit.as_str(), timeout.as_str()), ("off", "2s"));
        assert_eq!(plans, "auto", "generic plans were not asked for");
        drop(conn);
        let never = Mode::new().statement_timeout(Duration::ZERO).pool(&pool, 1);
        let mut conn = never.acquire().await.unwrap();
        assert_eq!(show(&mut conn).await.1, "0");
    }
}
