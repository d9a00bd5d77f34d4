//! The api's connections. Every statement runs under `statement_timeout`,
//! so a slow query gives its connection back instead of stalling every
//! client of a small pool.
//!
//! The pool is deadpool's, not sqlx's: sqlx pings every connection it takes
//! back (a round trip per request, during which the connection serves no
//! one), in case the request was cancelled mid-statement. Here a connection
//! is pinged before reuse only when that may have happened ([`ApiConnection::run`]
//! did not see its statements answered) or when it sat idle long enough for a
//! restart or a proxy to cut it.

use std::time::Duration;

use db::commit::Mode;
use db::{DbError, PgPool};
use deadpool::managed::{self, Metrics, Object, PoolError, QueueMode, RecycleError, RecycleResult};
use sqlx::postgres::{PgConnectOptions, PgDatabaseError, PgSeverity};
use sqlx::{Connection, PgConnection};

/// How long a pooled connection may sit idle and still be used without a
/// ping first.
pub const UNTESTED_IDLE: Duration = Duration::from_secs(1);

/// A connection idle this long is closed by [`ApiPool::close_idle`], and
/// one this old is replaced before reuse (sqlx's defaults, which the api's
/// pool had before): a long-lived backend only grows.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// The api's pool of Postgres connections.
#[derive(Clone)]
pub struct ApiPool(managed::Pool<Connector>);

/// Makes and checks the pool's connections.
pub struct Connector {
    options: PgConnectOptions,
}

/// A pooled connection and whether its last statements were answered.
pub struct Tracked {
    conn: PgConnection,
    /// False while statements run, so it stays false if their future is
    /// dropped (a client gone, the request timeout): the connection may then
    /// still be busy with, or owe the answer to, a statement.
    answered: bool,
}

/// A pool like `pool` (same server, size and acquire timeout) whose
/// connections cancel any statement after `statement_timeout` (zero: never,
/// as Postgres reads 0). Set as startup options, so they cost no round trip.
/// Connects lazily.
///
/// Postgres' plan cache keeps its default mode: `db::offers` decides per
/// statement whether a plan may be reused for every value (the walk of a
/// sort's index: prepared, so a generic plan skips planning) or must be
/// made with the values (a filter whose values decide its index: sent
/// unnamed, planned on every run). `force_custom_plan` here once re-planned
/// every statement, the typical page's included: pgbench replaying that
/// page so serves 0.6-0.64x of what it serves with the plan cache (`bench
/// api`).
pub fn bounded(pool: &PgPool, statement_timeout: Duration) -> ApiPool {
    // A timeout under 1 ms is 1 ms, not Postgres' 0 (none).
    let options = Mode::new()
        .statement_timeout(statement_timeout)
        .connect_options((*pool.connect_options()).clone());
    let sizing = pool.options();
    let acquire = Some(sizing.get_acquire_timeout());
    let pool = managed::Pool::builder(Connector { options })
        .max_size(sizing.get_max_connections() as usize)
        .wait_timeout(acquire)
        .create_timeout(acquire)
        // A ping unanswered this long (a cancelled statement still
        // running, a dead peer): the connection is dropped, another tried.
        .recycle_timeout(acquire)
        // The connection used last goes first: under light load a few stay
        // warm (no idle ping) and the others idle until closed.
        .queue_mode(QueueMode::Lifo)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .expect("a pool with a runtime for its timeouts always builds");
    ApiPool(pool)
}

impl ApiPool {
    /// A connection, waiting up to the acquire timeout for one. No free
    /// connection in time, or none could be made: an unavailable database
    /// (`DbError::is_unavailable`), as from sqlx's pool.
    pub async fn acquire(&self) -> Result<ApiConnection, DbError> {
        self.0.get().await.map(ApiConnection).map_err(|err| {
            DbError::from(match err {
                PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
                PoolError::Closed => sqlx::Error::PoolClosed,
                PoolError::Backend(err) => err,
                other => sqlx::Error::Configuration(other.to_string().into()),
            })
        })
    }

    /// Runs `statements` on a connection of the pool (see
    /// [`ApiConnection::run`]).
    pub async fn run<T>(
        &self,
        statements: impl AsyncFnOnce(&mut PgConnection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.acquire().await?.run(statements).await
    }

    /// Closes the idle connections and every one given back from now on;
    /// `acquire` then fails. Async like sqlx's `close`, though nothing is
    /// waited for: a connection in use closes when its request ends.
    pub async fn close(&self) {
        self.0.close();
    }

    /// Closes the connections idle for ten minutes or more.
    pub fn close_idle(&self) {
        self.0
            .retain(|_, metrics| metrics.last_used() < IDLE_TIMEOUT);
    }
}

/// A connection taken from an [`ApiPool`], back in the pool when dropped.
pub struct ApiConnection(Object<Connector>);

impl ApiConnection {
    /// Runs `statements` on this connection. If their future is dropped
    /// before Postgres answered (`Ok`, or an error Postgres reported and
    /// survived), the connection is pinged before anyone uses it again.
    pub async fn run<T>(
        &mut self,
        statements: impl AsyncFnOnce(&mut PgConnection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let tracked = &mut *self.0;
        tracked.answered = false;
        let result = statements(&mut tracked.conn).await;
        tracked.answered = result.as_ref().err().is_none_or(is_answer);
        result
    }
}

/// Whether an error is Postgres' answer to a statement, which leaves the
/// session ready for the next: not a lost connection, nor a session the
/// server ended (a FATAL error, such as `pg_terminate_backend`).
fn is_answer(err: &DbError) -> bool {
    match err {
        DbError::NotFound | DbError::Conflict { .. } => true,
        DbError::Sqlx(sqlx::Error::Database(db)) => db
            .try_downcast_ref::<PgDatabaseError>()
            .is_some_and(|pg| matches!(pg.severity(), PgSeverity::Error)),
        _ => false,
    }
}

impl managed::Manager for Connector {
    type Type = Tracked;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<Tracked, sqlx::Error> {
        let conn = PgConnection::connect_with(&self.options).await?;
        Ok(Tracked {
            conn,
            answered: true,
        })
    }

    /// Before reuse. A failed check drops the connection, and the pool
    /// takes or makes another.
    async fn recycle(
        &self,
        tracked: &mut Tracked,
        metrics: &Metrics,
    ) -> RecycleResult<sqlx::Error> {
        if metrics.age() >= MAX_LIFETIME {
            return Err(RecycleError::message("past its lifetime"));
        }
        // `last_used` counts from when the connection was last taken, so
        // at least as long as it has been idle.
        if !tracked.answered || metrics.last_used() >= UNTESTED_IDLE {
            if let Err(err) = tracked.conn.ping().await {
                tracing::info!("A pooled connection failed its ping, replacing it: {err}");
                return Err(err.into());
            }
            tracked.answered = true;
        }
        Ok(())
    }
}
