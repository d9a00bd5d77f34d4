//! The sync service: replicates the final tables from the working database
//! to production (`push`), reference tables back (`pull`), compares both
//! sides (`verify`, and every table with `cutover-check`), copies whole tables between any two databases (`copy`,
//! the table migration) and runs all of it on a schedule (`serve`).
//!
//! `run(ctx)` is `sync serve`; `cli` runs the other subcommands. `main.rs`
//! only hands the command line to `bootstrap`; everything the service does
//! lives here and takes its shutdown token as a parameter. Modules call
//! downwards only: `cli` -> `commands` -> `serve` -> `job` -> `run`.

pub mod cli;
pub mod commands;
mod copy_split;
pub mod cutover;
pub mod job;
mod lock;
mod report;
pub mod run;
mod serve;
pub mod sql;
pub mod table_copy;
pub mod tables;
mod transfer;
pub mod verify;

pub use run::{Ends, RunOptions, TableReport};

/// `sync serve`: pull on `sync.pull_schedule`, push every
/// `sync.push_interval` and after each normaliser run, until shutdown.
pub async fn run(ctx: bootstrap::Context) -> anyhow::Result<()> {
    serve::serve(&ctx.settings, ctx.pool, ctx.shutdown).await
}
