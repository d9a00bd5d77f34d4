//! One batch: claim, normalise in Rust, write set-based, commit — all in one
//! transaction, so a crash or an infrastructure error at any point leaves the
//! batch's rows unprocessed and nothing half-written.
//!
//! Bad records cost only themselves: a row whose `data` Rust cannot decode,
//! or that the rules cannot normalise, gets its `normalize_error`; a batch
//! whose write Postgres refuses is claimed again and written by halves
//! (`db::isolate`), so the refused records are recorded and the rest commits.

use std::time::{Duration, Instant};

use anyhow::Context;
use db::commit::Mode;
use db::processed::{ProcessedRow, Upserted};
use db::queue::QueuedRow;
use db::PgPool;
use domain::listing::ActiveStatus;
use domain::normalize::normalize;
use serde_json::Value;

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
        let normalised = serde_json::from_str::<Value>(&row.data)
            .map_err(|err| format!("data is not readable JSON: {err}"))
            .and_then(|data| normalize(&row.inner_id, &data).map_err(|err| err.to_string()));
        match normalised {
            Ok(listing) => {
                split.good_ids.push(row.id);
                split.good.push(ProcessedRow {
                    raw_id: row.id,
                    listing,
                    is_active: row.active_status != ActiveStatus::Inactive.code(),
                    listed_at: row.created_at,
                });
            }
            Err(reason) => {
                // Debug formatting escapes the upstream's text: a newline in
                // an inner_id cannot forge a log line.
                tracing::warn!(
                    inner_id = ?row.inner_id,
                    "Cannot normalise listing {:?}: {}",
                    row.inner_id,
                    reason.escape_debug()
                );
                split.failed_ids.push(row.id);
                split.reasons.push(reason);
            }
        }
    }
    split
}

/// Normalises up to `batch_size` waiting rows with ids above `after` in one
/// transaction. Should Postgres refuse a value of the batch, the batch is
/// rolled back and done once more, written by halves (see `db::isolate`).
/// `Commit::Asynchronous` in `mode` is safe here: a batch a Postgres crash forgets
/// leaves its raw rows unprocessed, so they are simply normalised again.
// The span names the batch (the raw id it starts after) on every line of it.
#[tracing::instrument(level = "info", skip_all, fields(batch = after, batch_size = batch_size))]
pub async fn run_batch(
    pool: &PgPool,
    after: i64,
    batch_size: i64,
    mode: Mode,
) -> anyhow::Result<BatchOutcome> {
    let batch = Attempt {
        after,
        batch_size,
        mode,
    };
    match batch.run(pool, false).await? {
        Some(outcome) => Ok(outcome),
        None => {
            tracing::warn!(
                "Postgres refused a record of the batch after id {after}: writing it by halves"
            );
            let outcome = batch.run(pool, true).await?;
            Ok(outcome.expect("the careful write does not give up on refused values"))
        }
    }
}

struct Attempt {
    after: i64,
    batch_size: i64,
    mode: Mode,
}

impl Attempt {
    /// One try at the batch. `careful`: write by halves under savepoints.
    /// Not careful: `None` when Postgres refused a value (rolled back).
    async fn run(&self, pool: &PgPool, careful: bool) -> anyhow::Result<Option<BatchOutcome>> {
        let mut tx = pool
            .begin()
            .await
            .context("Failed to begin a batch transaction")?;
        let started = Instant::now();
        self.mode
            .apply(&mut tx)
            .await
            .context("Failed to set the batch's commit mode")?;
        let rows = db::queue::claim(&mut tx, self.after, self.batch_size)
            .await
            .context("Failed to claim a batch of raw rows")?;
        if rows.is_empty() {
            tx.rollback()
                .await
                .context("Failed to end an empty batch")?;
            return Ok(Some(BatchOutcome::default()));
        }
        let claimed = rows.len() as u64;
        let last_id = rows.iter().map(|r| r.id).max().unwrap_or(self.after);
        // The CPU-heavy part runs on a blocking thread: the async workers stay
        // free to drive this and other connections' I/O meanwhile.
        let span = tracing::Span::current(); // the blocking thread logs in the batch's span
        let mut split = tokio::task::spawn_blocking(move || span.in_scope(|| normalise_all(rows)))
            .await
            .context("The normalising task failed")?;
        let upserted = if careful {
            let good = std::mem::take(&mut split.good);
            let done = db::isolate::write_isolating(&mut tx, &good, |conn, rows| {
                Box::pin(db::processed::upsert(conn, rows.to_vec()))
            })
            .await
            .context("Failed to write the batch into processed_data")?;
            for (index, reason) in done.refused {
                let id = good[index].raw_id;
                tracing::warn!(
                    "Cannot store raw row {id} in processed_data: {}",
                    reason.escape_debug()
                );
                split.good_ids.retain(|good| *good != id);
                split.failed_ids.push(id);
                split.reasons.push(reason);
            }
            done.written
                .iter()
                .fold(Upserted::default(), |sum, part| Upserted {
                    created: sum.created + part.created,
                    updated: sum.updated + part.updated,
                })
        } else {
            match db::processed::upsert(&mut tx, std::mem::take(&mut split.good)).await {
                Ok(upserted) => upserted,
                Err(err) if err.is_refused_value() => {
                    // Rolled back here, not on drop: a dropped transaction
                    // keeps its row locks until its connection is next used,
                    // and the careful attempt (on another connection) would
                    // skip the locked rows and claim less than the batch.
                    tx.rollback()
                        .await
                        .context("Failed to roll back the refused batch")?;
                    return Ok(None);
                }
                Err(err) => {
                    return Err(err).context("Failed to write the batch into processed_data")
                }
            }
        };
        db::queue::mark_processed(&mut tx, &split.good_ids)
            .await
            .context("Failed to mark the batch processed")?;
        db::queue::record_failures(&mut tx, &split.failed_ids, &split.reasons)
            .await
            .context("Failed to record the batch's normalisation errors")?;
        tx.commit().await.context("Failed to commit the batch")?;
        let Upserted { created, updated } = upserted;
        Ok(Some(BatchOutcome {
            claimed,
            created,
            updated,
            failed: split.failed_ids.len() as u64,
            elapsed: started.elapsed(),
            last_id,
        }))
    }
}
