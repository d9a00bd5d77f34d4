//! Draining the queue: batch after batch until it is empty (or a limit or
//! shutdown), with a progress line and one `operations_log` row per run.

use std::time::{Duration, Instant};

use anyhow::Context;
use db::PgPool;
use domain::operation::{Details, OperationStatus, OperationType};
use tokio_util::sync::CancellationToken;

use crate::batch::{run_batch, BatchOutcome};
use db::commit::Mode;
use telemetry::progress;

/// How a drain runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub batch_size: i64,
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
}

impl Summary {
    fn add(&mut self, b: &BatchOutcome) {
        self.processed += b.created + b.updated;
        self.created += b.created;
        self.updated += b.updated;
        self.errors += b.failed;
        self.batches += 1;
        self.batch_times.push(b.elapsed);
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
    let mut last_progress = Instant::now();
    // Where this drain stands in the queue (see `db::queue::claim`).
    let mut after = 0;
    let result = loop {
        if shutdown.is_cancelled() {
            tracing::info!("Shutdown requested: stopping between batches");
            break Ok(());
        }
        if options
            .max_batches
            .is_some_and(|max| summary.batches >= max)
        {
            break Ok(());
        }
        let batch = match run_batch(pool, after, options.batch_size, options.mode).await {
            Ok(batch) => batch,
            Err(err) => break Err(err),
        };
        if batch.claimed == 0 {
            if after == 0 {
                break Ok(());
            }
            after = 0; // once more from the head: rows may have come in behind
            continue;
        }
        after = batch.last_id;
        summary.add(&batch);
        tracing::debug!(
            "Stored batch {} ({} listings, {} failed) in {} ms",
            summary.batches,
            batch.created + batch.updated,
            batch.failed,
            batch.elapsed.as_millis()
        );
        if last_progress.elapsed() >= options.progress_interval {
            last_progress = Instant::now();
            let done = summary.processed + summary.errors;
            tracing::info!("{}", progress::line(done, total, done, started.elapsed()));
        }
    };

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
