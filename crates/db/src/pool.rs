use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::DbError;

/// How a service sizes its pool (from `config.yaml`, `database.*`).
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub application_name: String,
}

/// Opens a pool and checks that the server answers. Statements slower than a
/// second are logged at WARN by sqlx; normal statements are not logged.
pub async fn connect(url: &str, options: &PoolOptions) -> Result<PgPool, DbError> {
    let connect: PgConnectOptions = url.parse::<PgConnectOptions>()?;
    let connect = connect
        .application_name(&options.application_name)
        .log_statements(tracing::log::LevelFilter::Off)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
    // One direct connection first: a pool only reports "timed out", while
    // this says what is wrong (refused, unknown host, bad password).
    let probe = PgConnection::connect_with(&connect).await?;
    probe.close().await?;
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout)
        .connect_with(connect)
        .await?;
    Ok(pool)
}
