//! The api service: Serves processed_data to the frontend over an authenticated, rate-limited HTTP API.
//!
//! `main.rs` wires settings, logs and the pool; everything the service does
//! lives here and takes its shutdown signal as a parameter, so tests drive it
//! with a oneshot instead of a real signal.

use std::future::Future;

use db::PgPool;
use settings::Settings;

/// Runs until `shutdown` resolves.
pub async fn serve(
    _settings: &Settings,
    pool: PgPool,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let version = db::schema::applied_version(&pool).await?;
    tracing::info!("api ready (database schema version {version})");
    shutdown.await;
    pool.close().await;
    tracing::info!("api stopped");
    Ok(())
}
