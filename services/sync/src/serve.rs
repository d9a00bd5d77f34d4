//! `sync serve`: placeholder until the schedule lands.

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
    tracing::info!("sync ready (database schema version {version})");
    shutdown.await;
    pool.close().await;
    tracing::info!("sync stopped");
    Ok(())
}
