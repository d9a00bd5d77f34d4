//! `normalizer serve`: drain whenever rows appear. Woken by the loader's
//! `NOTIFY raw_data_changed`, and by a poll interval so it works without it.

use std::time::Duration;

use anyhow::Context;
use db::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::drain::{run_once, Options};

/// Runs until `shutdown` is cancelled; a batch in flight is finished first.
pub async fn serve(
    pool: &PgPool,
    options: &Options,
    poll_interval: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut listener = PgListener::connect_with(pool)
        .await
        .context("Failed to open the LISTEN connection")?;
    listener
        .listen(db::queue::CHANNEL)
        .await
        .context("Failed to LISTEN on raw_data_changed")?;
    tracing::info!(
        "Normalizer serving: listening on {}, polling every {}",
        db::queue::CHANNEL,
        humanize(poll_interval)
    );
    loop {
        if let Err(err) = run_once(pool, options, &shutdown).await {
            tracing::error!(
                "Normalisation run failed, retrying in {}: {err:#}",
                humanize(poll_interval)
            );
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            notification = listener.recv() => {
                if let Err(err) = notification {
                    // PgListener reconnects on the next recv; the poll covers the gap.
                    tracing::warn!("LISTEN connection lost, reconnecting: {err}");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
            () = tokio::time::sleep(poll_interval) => {}
        }
    }
    tracing::info!("Normalizer stopped");
    Ok(())
}

fn humanize(d: Duration) -> String {
    telemetry::progress::human(d)
}
