//! The api's connections: every statement runs under `statement_timeout`,
//! so a slow query gives its connection back instead of stalling every
//! client of a small pool.

use std::time::Duration;

use db::PgPool;
use sqlx::postgres::PgPoolOptions;
use sqlx::Connection;

/// How long a pooled connection may sit idle and still be used without a
/// ping first.
pub const UNTESTED_IDLE: Duration = Duration::from_secs(1);

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
pub fn bounded(pool: &PgPool, statement_timeout: Duration) -> PgPool {
    // A timeout under 1 ms is 1 ms, not Postgres' 0 (none).
    let millis = if statement_timeout.is_zero() {
        0
    } else {
        statement_timeout.as_millis().max(1)
    }
    .to_string();
    let connect = (*pool.connect_options())
        .clone()
        .options([("statement_timeout", millis.as_str())]);
    let options = pool.options();
    PgPoolOptions::new()
        .max_connections(options.get_max_connections())
        .acquire_timeout(options.get_acquire_timeout())
        // sqlx pings every connection it takes back (a round trip), so one
        // taken again within UNTESTED_IDLE was alive that recently; only a
        // connection idle longer (a restart or a proxy may have cut it) is
        // pinged again before use, instead of every one on every query.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= UNTESTED_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(connect)
}
