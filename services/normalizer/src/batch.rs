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
use sqlx::{Postgres, Transaction};
use tokio::sync::oneshot;

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
    pub phases: Phases,
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
/// transaction: [`claim`], [`Claimed::normalise`], [`Normalised::write`].
/// Should Postgres refuse a value of the batch, the batch is rolled back and
/// done once more, written by halves (see `db::isolate`).
/// `Commit::Asynchronous` in `mode` is safe here: a batch a Postgres crash forgets
/// leaves its raw rows unprocessed, so they are simply normalised again.
pub async fn run_batch(
    pool: &PgPool,
    after: i64,
    batch_size: i64,
    mode: Mode,
) -> anyhow::Result<BatchOutcome> {
    match claim(pool, after, batch_size, mode).await? {
        Some(claimed) => claimed.normalise().await?.write(pool, None).await,
        None => Ok(BatchOutcome::default()),
    }
}

/// A batch's transaction and the rows it claimed (locked until it ends).
pub struct Claimed {
    tx: Transaction<'static, Postgres>,
    rows: Vec<QueuedRow>,
    started: Instant,
    claim_time: Duration,
    batch: Batch,
}

/// What a batch claimed from: where in the queue, how many, in which mode
/// (so that a refused batch can be claimed again the same way).
#[derive(Debug, Clone, Copy)]
struct Batch {
    after: i64,
    batch_size: i64,
    mode: Mode,
}

/// Begins a batch transaction and claims up to `batch_size` waiting rows
/// with ids above `after` in it. `None` when none wait (nothing is left
/// open).
pub async fn claim(
    pool: &PgPool,
    after: i64,
    batch_size: i64,
    mode: Mode,
) -> anyhow::Result<Option<Claimed>> {
    Batch {
        after,
        batch_size,
        mode,
    }
    .claim(pool)
    .await
}

impl Batch {
    async fn claim(self, pool: &PgPool) -> anyhow::Result<Option<Claimed>> {
        let started = Instant::now();
        let mut tx = pool
            .begin()
            .await
            .context("Failed to begin a batch transaction")?;
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
            return Ok(None);
        }
        Ok(Some(Claimed {
            tx,
            rows,
            started,
            claim_time: started.elapsed(),
            batch: self,
        }))
    }
}

impl Claimed {
    /// The highest id claimed (where the next batch of a drain starts).
    pub fn last_id(&self) -> i64 {
        self.rows
            .iter()
            .map(|r| r.id)
            .max()
            .unwrap_or(self.batch.after)
    }

    /// Normalises the claimed rows on a blocking thread: the async workers
    /// stay free to drive this and other connections' I/O meanwhile (another
    /// batch's write, the next claim).
    pub async fn normalise(self) -> anyhow::Result<Normalised> {
        let last_id = self.last_id();
        let Self {
            tx,
            rows,
            started,
            claim_time,
            batch,
        } = self;
        let claimed = rows.len() as u64;
        let normalising = Instant::now();
        let span = tracing::Span::current(); // the blocking thread logs in the batch's span
        let split = tokio::task::spawn_blocking(move || span.in_scope(|| normalise_all(rows)))
            .await
            .context("The normalising task failed")?;
        Ok(Normalised {
            tx,
            split,
            claimed,
            last_id,
            started,
            phases: Phases {
                claim: claim_time,
                normalise: normalising.elapsed(),
                ..Phases::default()
            },
            batch,
        })
    }
}

/// Where a batch's time went, for the debug line of each batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phases {
    /// Begin and claim (Postgres reads and locks the rows).
    pub claim: Duration,
    /// Decoding and normalising in Rust.
    pub normalise: Duration,
    /// The processed_data upsert (encoding the columns included).
    pub upsert: Duration,
    /// Marking the raw rows processed, recording the failures.
    pub mark: Duration,
    /// Waiting, written, for the batch before it to commit (pipelined drains).
    pub wait: Duration,
    pub commit: Duration,
}

impl std::ops::AddAssign for Phases {
    fn add_assign(&mut self, other: Self) {
        self.claim += other.claim;
        self.normalise += other.normalise;
        self.upsert += other.upsert;
        self.mark += other.mark;
        self.wait += other.wait;
        self.commit += other.commit;
    }
}

/// What a batch waits for before it commits (`None`: nothing): in a
/// pipelined drain, the end (commit or rollback) of the batch claimed
/// before it, whose sender is dropped then.
pub type Turn = Option<oneshot::Receiver<()>>;

/// A claimed batch, normalised, its transaction still open.
pub struct Normalised {
    tx: Transaction<'static, Postgres>,
    split: Split,
    claimed: u64,
    last_id: i64,
    started: Instant,
    phases: Phases,
    batch: Batch,
}

impl Normalised {
    /// Writes the batch into processed_data, marks its rows and commits
    /// once `turn` has come. Should Postgres refuse a value, the batch is
    /// rolled back, claimed again from the same place and written by halves.
    pub async fn write(self, pool: &PgPool, mut turn: Turn) -> anyhow::Result<BatchOutcome> {
        let batch = self.batch;
        if let Some(outcome) = self.write_once(false, &mut turn).await? {
            return Ok(outcome);
        }
        tracing::warn!(
            "Postgres refused a record of the batch after id {}: writing it by halves",
            batch.after
        );
        let Some(claimed) = batch.claim(pool).await? else {
            // Another normaliser took the rows meanwhile.
            return Ok(BatchOutcome::default());
        };
        let outcome = claimed
            .normalise()
            .await?
            .write_once(true, &mut turn)
            .await?;
        Ok(outcome.expect("the careful write does not give up on refused values"))
    }

    /// One try at the write. `careful`: write by halves under savepoints.
    /// Not careful: `None` when Postgres refused a value (rolled back).
    async fn write_once(
        self,
        careful: bool,
        turn: &mut Turn,
    ) -> anyhow::Result<Option<BatchOutcome>> {
        let Self {
            mut tx,
            mut split,
            claimed,
            last_id,
            started,
            mut phases,
            batch: _,
        } = self;
        let writing = Instant::now();
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
        phases.upsert = writing.elapsed();
        let marking = Instant::now();
        db::queue::mark_processed(&mut tx, &split.good_ids)
            .await
            .context("Failed to mark the batch processed")?;
        db::queue::record_failures(&mut tx, &split.failed_ids, &split.reasons)
            .await
            .context("Failed to record the batch's normalisation errors")?;
        phases.mark = marking.elapsed();
        let waiting = Instant::now();
        if let Some(previous) = turn.take() {
            // Err: the previous batch ended (its sender dropped), as wanted.
            let _ = previous.await;
        }
        phases.wait = waiting.elapsed();
        let committing = Instant::now();
        tx.commit().await.context("Failed to commit the batch")?;
        phases.commit = committing.elapsed();
        let Upserted { created, updated } = upserted;
        Ok(Some(BatchOutcome {
            claimed,
            created,
            updated,
            failed: split.failed_ids.len() as u64,
            elapsed: started.elapsed(),
            last_id,
            phases,
        }))
    }
}
