//! One batch: claim, normalise in Rust, write set-based, commit — all in one
//! transaction, so a crash or an infrastructure error at any point leaves the
//! batch's rows unprocessed and nothing half-written.

use std::time::{Duration, Instant};

use anyhow::Context;
use db::commit::Commit;
use db::processed::ProcessedRow;
use db::queue::QueuedRow;
use db::PgPool;
use domain::listing::ActiveStatus;
use domain::normalize::normalize;

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Rows claimed from the queue (0: the queue is empty).
    pub claimed: u64,
    pub created: u64,
    pub updated: u64,
    /// Records that could not be normalised (recorded, left unprocessed).
    pub failed: u64,
    /// How long the batch transaction was open.
    pub elapsed: Duration,
    /// The highest id claimed (where the next batch of this drain starts).
    pub last_id: i64,
}

/// Rows that normalised, and rows that did not with their reasons.
struct Split {
    good: Vec<ProcessedRow>,
    good_ids: Vec<i64>,
    failed_ids: Vec<i64>,
    reasons: Vec<String>,
}

fn normalise_all(rows: Vec<QueuedRow>) -> Split {
    let mut split = Split {
        good: Vec::with_capacity(rows.len()),
        good_ids: Vec::with_capacity(rows.len()),
        failed_ids: Vec::new(),
        reasons: Vec::new(),
    };
    for row in rows {
        match normalize(&row.inner_id, &row.data.0) {
            Ok(listing) => {
                split.good_ids.push(row.id);
                split.good.push(ProcessedRow {
                    raw_id: row.id,
                    listing,
                    is_active: row.active_status != ActiveStatus::Inactive.code(),
                    listed_at: row.created_at,
                });
            }
            Err(err) => {
                tracing::warn!(
                    inner_id = %row.inner_id,
                    "Cannot normalise listing {}: {err}",
                    row.inner_id
                );
                split.failed_ids.push(row.id);
                split.reasons.push(err.to_string());
            }
        }
    }
    split
}

/// Normalises up to `batch_size` waiting rows with ids above `after` in one
/// transaction.
/// `Commit::Asynchronous` is safe here: a batch a Postgres crash forgets
/// leaves its raw rows unprocessed, so they are simply normalised again.
/// `hold_before_commit` keeps the transaction open that much longer before
/// committing (zero in production; crash tests use it to kill mid-batch).
pub async fn run_batch(
    pool: &PgPool,
    after: i64,
    batch_size: i64,
    commit: Commit,
    hold_before_commit: Duration,
) -> anyhow::Result<BatchOutcome> {
    let mut tx = pool
        .begin()
        .await
        .context("Failed to begin a batch transaction")?;
    let started = Instant::now();
    commit
        .apply(&mut tx)
        .await
        .context("Failed to set the batch's commit mode")?;
    let rows = db::queue::claim(&mut tx, after, batch_size)
        .await
        .context("Failed to claim a batch of raw rows")?;
    if rows.is_empty() {
        tx.rollback()
            .await
            .context("Failed to end an empty batch")?;
        return Ok(BatchOutcome::default());
    }
    let claimed = rows.len() as u64;
    let last_id = rows.iter().map(|r| r.id).max().unwrap_or(after);
    // The CPU-heavy part runs on a blocking thread: the async workers stay
    // free to drive this and other connections' I/O meanwhile.
    let split = tokio::task::spawn_blocking(move || normalise_all(rows))
        .await
        .context("The normalising task failed")?;
    let upserted = db::processed::upsert(&mut tx, split.good)
        .await
        .context("Failed to write the batch into processed_data")?;
    db::queue::mark_processed(&mut tx, &split.good_ids)
        .await
        .context("Failed to mark the batch processed")?;
    db::queue::record_failures(&mut tx, &split.failed_ids, &split.reasons)
        .await
        .context("Failed to record the batch's normalisation errors")?;
    if !hold_before_commit.is_zero() {
        tokio::time::sleep(hold_before_commit).await;
    }
    tx.commit().await.context("Failed to commit the batch")?;
    Ok(BatchOutcome {
        claimed,
        created: upserted.created,
        updated: upserted.updated,
        failed: split.failed_ids.len() as u64,
        elapsed: started.elapsed(),
        last_id,
    })
}
