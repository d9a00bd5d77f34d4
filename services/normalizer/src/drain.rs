//! Draining the queue: batch after batch until it is empty (or a limit or
//! shutdown), with a progress line and one `operations_log` row per run.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context;
use db::PgPool;
use domain::operation::{Details, OperationStatus, OperationType};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::batch::{claim, BatchOutcome, Phases};
use db::commit::Mode;
use telemetry::progress;

/// How a drain runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub batch_size: i64,
    /// Batches in flight at once (claimed, not yet committed), each in its
    /// own transaction on its own connection: while one is written, the
    /// next is claimed and normalised; they commit in claim order. 1: one
    /// batch after the other.
    pub pipeline_depth: usize,
    /// Stop after this many batches (None: until the queue is empty).
    pub max_batches: Option<u64>,
    pub progress_interval: Duration,
    /// How each batch transaction runs: whether it waits for its WAL flush
    /// at commit.
    pub mode: Mode,
    /// Write an `operations_log` row even when there was nothing to do
    /// (`normalizer run` does; `serve` only logs drains that found work).
    pub log_idle_runs: bool,
}

/// What one drain did: the counts of its `operations_log` row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Listings written to processed_data (created + updated).
    pub processed: u64,
    pub created: u64,
    pub updated: u64,
    /// Records that could not be normalised.
    pub errors: u64,
    pub batches: u64,
    /// Each batch transaction's duration, for the p99 figure.
    pub batch_times: Vec<Duration>,
    /// Where the batches' time went, summed over the batches.
    pub phases: Phases,
}

impl Summary {
    fn add(&mut self, b: &BatchOutcome) {
        self.processed += b.created + b.updated;
        self.created += b.created;
        self.updated += b.updated;
        self.errors += b.failed;
        self.batches += 1;
        self.batch_times.push(b.elapsed);
        self.phases += b.phases;
    }

    fn details(&self) -> Details {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Details::default()
            .count("processed", n(self.processed))
            .count("created", n(self.created))
            .count("updated", n(self.updated))
            .count("errors", n(self.errors))
            .count("batches", n(self.batches))
    }
}

/// Drains the queue once. Stops between batches when `shutdown` is
/// cancelled; an infrastructure error ends the drain (its batch rolled back)
/// and is returned after the run is logged as ERROR.
#[tracing::instrument(name = "normalizer_run", skip_all)]
pub async fn run_once(
    pool: &PgPool,
    options: &Options,
    shutdown: &CancellationToken,
) -> anyhow::Result<Summary> {
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let waiting = db::queue::waiting(pool)
        .await
        .context("Failed to count waiting raw rows")?;
    let total = u64::try_from(waiting).unwrap_or(0);
    if total > 0 {
        tracing::info!(
            "Normalising {} waiting records in batches of {}",
            progress::thousands(total),
            options.batch_size
        );
    }
    let mut summary = Summary::default();
    let mut progress = Progress {
        total,
        started,
        last: Instant::now(),
        interval: options.progress_interval,
    };
    let result = pipeline(pool, options, shutdown, &mut summary, &mut progress).await;

    if summary.batches > 0 || options.log_idle_runs || result.is_err() {
        let done = summary.processed + summary.errors;
        if summary.batches > 0 {
            tracing::info!("{}", progress::line(done, total, done, started.elapsed()));
        }
        let status = if result.is_ok() && summary.errors == 0 {
            OperationStatus::Ok
        } else {
            OperationStatus::Error
        };
        let mut details = summary.details();
        if let Err(err) = &result {
            details = details.note(format!("{err:#}"));
        }
        db::operations::record(
            pool,
            OperationType::Normalization,
            started_at,
            status,
            &details.render(),
        )
        .await
        .context("Failed to write the normalization row of operations_log")?;
        if summary.batches > 0 {
            // `sync serve` pushes the new rows when it hears this.
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(db::sync_tables::NORMALIZER_FINISHED)
                .execute(pool)
                .await
                .context("Failed to notify normalizer_finished")?;
        }
        tracing::info!(
            "Normalisation run finished in {}: {} processed ({} created, {} updated), {} errors, {} batches",
            progress::human(started.elapsed()),
            progress::thousands(summary.processed),
            progress::thousands(summary.created),
            progress::thousands(summary.updated),
            progress::thousands(summary.errors),
            progress::thousands(summary.batches),
        );
    }
    result.map(|()| summary)
}

/// When the progress line was last printed.
struct Progress {
    total: u64,
    started: Instant,
    last: Instant,
    interval: Duration,
}

/// The batches of a drain, claimed one after the other in id order, up to
/// `pipeline_depth` of them in flight. Each batch is one transaction of its
/// own, on a connection of its own: while a batch writes, the next ones are
/// claimed, normalised and written too. They commit in the order they were
/// claimed (a batch commits once the one before it has committed or rolled
/// back), so a kill leaves exactly a prefix of the claimed batches
/// committed. Batches in flight never wait for each other's locks: each
/// writes only its own raw rows and the processed_data rows of their
/// listings (`inner_id` is unique in raw_data). Stops claiming
/// on shutdown, at `max_batches`, on the first error, or when the queue is
/// empty, and always waits for the batches in flight to end.
async fn pipeline(
    pool: &PgPool,
    options: &Options,
    shutdown: &CancellationToken,
    summary: &mut Summary,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let depth = options.pipeline_depth.max(1);
    let mut in_flight: VecDeque<JoinHandle<anyhow::Result<BatchOutcome>>> = VecDeque::new();
    // Ends when the last batch claimed has committed or rolled back.
    let mut last_turn: Option<oneshot::Receiver<()>> = None;
    let mut claimed = 0;
    // Where this drain stands in the queue (see `db::queue::claim`).
    let mut after = 0;
    let mut result = Ok(());
    loop {
        while in_flight.len() >= depth {
            let batch = in_flight.pop_front().expect("a batch in flight");
            if let Err(err) = finished(batch.await, summary, progress) {
                if result.is_ok() {
                    result = Err(err);
                }
            }
        }
        if result.is_err() {
            break;
        }
        if shutdown.is_cancelled() {
            tracing::info!("Shutdown requested: stopping between batches");
            break;
        }
        if options.max_batches.is_some_and(|max| claimed >= max) {
            break;
        }
        // The span names the batch (the raw id it starts after) on every line of it.
        let span = tracing::info_span!("run_batch", batch = after, batch_size = options.batch_size);
        let batch = match claim(pool, after, options.batch_size, options.mode)
            .instrument(span.clone())
            .await
        {
            Ok(Some(batch)) => batch,
            Ok(None) if after == 0 => break,
            Ok(None) => {
                after = 0; // once more from the head: rows may have come in behind
                continue;
            }
            Err(err) => {
                result = Err(err);
                break;
            }
        };
        after = batch.last_id();
        claimed += 1;
        let (turn, next_turn) = oneshot::channel::<()>();
        let previous = last_turn.replace(next_turn);
        let pool = pool.clone();
        in_flight.push_back(tokio::spawn(
            async move {
                // `turn` is dropped when this task ends, however it ends:
                // the next batch then writes.
                let _turn = turn;
                batch.normalise().await?.write(&pool, previous).await
            }
            .instrument(span),
        ));
    }
    while let Some(batch) = in_flight.pop_front() {
        if let Err(err) = finished(batch.await, summary, progress) {
            if result.is_ok() {
                result = Err(err);
            }
        }
    }
    result
}

/// Counts a batch that ended, prints the progress line when due.
fn finished(
    joined: Result<anyhow::Result<BatchOutcome>, tokio::task::JoinError>,
    summary: &mut Summary,
    progress: &mut Progress,
) -> anyhow::Result<()> {
    let batch = joined.context("A batch task failed")??;
    if batch.claimed == 0 {
        // A refused batch whose rows another normaliser took meanwhile.
        return Ok(());
    }
    summary.add(&batch);
    let phases = batch.phases;
    tracing::debug!(
        "Stored batch {} ({} listings, {} failed) in {} ms: claim {} ms, normalise {} ms, upsert {} ms, mark {} ms, wait {} ms, commit {} ms",
        summary.batches,
        batch.created + batch.updated,
        batch.failed,
        batch.elapsed.as_millis(),
        phases.claim.as_millis(),
        phases.normalise.as_millis(),
        phases.upsert.as_millis(),
        phases.mark.as_millis(),
        phases.wait.as_millis(),
        phases.commit.as_millis(),
    );
    if progress.last.elapsed() >= progress.interval {
        progress.last = Instant::now();
        let done = summary.processed + summary.errors;
        tracing::info!(
            "{}",
            telemetry::progress::line(done, progress.total, done, progress.started.elapsed())
        );
    }
    Ok(())
}
