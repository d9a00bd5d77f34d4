//! The normalizer service: turns `raw_data` rows into typed `processed_data`
//! rows, in transactional batches.
//!
//! - `batch`: one transaction — claim (`FOR UPDATE SKIP LOCKED`), normalise
//!   in Rust (`domain::normalize`), one UNNEST upsert, one UPDATE marking the
//!   batch processed, one UPDATE recording records that could not be
//!   normalised, commit.
//! - `drain`: batch after batch until the queue is empty, up to
//!   `pipeline_depth` of them in flight (the next claimed and normalised
//!   while the one before writes; they commit in claim order), with the
//!   progress line and one `operations_log` row per run.
//! - `serve`: drain on every NOTIFY and every poll interval until shutdown.
//!
//! `run(ctx)` is `normalizer serve`; `cli` runs the other subcommands.
//! `main.rs` only hands the command line to `bootstrap`; everything here
//! takes its shutdown token as a parameter, so tests drive it without real
//! signals.

pub mod batch;
pub mod cli;
pub mod drain;
mod requeue;
mod serve;

pub use drain::{run_once, Options, Summary};
pub use requeue::requeue;
pub use serve::serve;

use bootstrap::Context;
use db::commit::{Commit, Mode};
use settings::NormalizerSettings;

/// `normalizer serve`: normalise whenever rows are waiting, until shutdown.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let settings = &ctx.settings.normalizer;
    let mut options = Options::from_settings(settings);
    options.log_idle_runs = false;
    serve(&ctx.pool, &options, settings.poll_interval, ctx.shutdown).await
}

impl Options {
    /// The options of `settings`, draining the whole queue.
    pub fn from_settings(settings: &NormalizerSettings) -> Self {
        Self {
            batch_size: settings.batch_size,
            pipeline_depth: settings.pipeline_depth,
            max_batches: None,
            progress_interval: settings.progress_interval,
            mode: Mode::new().commit(if settings.synchronous_commit {
                Commit::Synchronous
            } else {
                Commit::Asynchronous
            }),
            log_idle_runs: true,
        }
    }
}
