//! `normalizer requeue`: puts rows back in the queue with their
//! `normalize_error` cleared, so that a fix of the normalising rules is
//! applied to them, then tells listening normalisers.

use anyhow::Context;
use db::queue::Requeue;
use db::PgPool;

/// Requeues the rows `which` selects and returns how many.
pub async fn requeue(pool: &PgPool, which: &Requeue) -> anyhow::Result<u64> {
    let count = db::queue::requeue(pool, which)
        .await
        .context("Failed to put raw rows back in the queue")?;
    db::queue::notify(pool)
        .await
        .context("Failed to notify the normalisers")?;
    tracing::info!(
        "Put {} raw rows back in the queue{}",
        telemetry::progress::thousands(count),
        if which.errors_only {
            " (rows whose normalisation had failed)"
        } else {
            ""
        }
    );
    Ok(count)
}
