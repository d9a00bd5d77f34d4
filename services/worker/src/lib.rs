//! The worker service (SPEC 6): a fetch fleet sharing tasks and proxies
//! through Postgres.
//!
//! `worker run` claims (task, proxy) pairs for its free slots, fetches each
//! task through its proxy, and writes the outcomes in group-committed,
//! lease-fenced transactions (`completer`). `cleanup` reclaims what dead
//! workers held. The command-line tools upload tasks and proxies, show the
//! fleet's status and export results. `run(ctx)` is `worker run`; `cli`
//! runs the other subcommands. `main.rs` only hands the command line to
//! `bootstrap`; everything here takes its shutdown as a parameter so tests
//! drive it without signals.

pub mod browser;
pub mod cleanup;
pub mod cli;
mod completer;
mod done;
pub mod export;
pub mod extract;
mod fetch;
mod fleet;
mod guard;
pub mod health;
pub mod outcome;
pub mod page;
mod refresh;
mod registry;
mod render;
pub mod slots;
pub mod status;
mod target;
pub mod upload;

/// `worker run`: claim tasks and proxies for the free slots, fetch, store
/// the results, until shutdown (then the soft stop of `fleet`).
pub async fn run(ctx: bootstrap::Context) -> anyhow::Result<()> {
    fleet::run(&ctx.settings, ctx.pool, ctx.shutdown).await
}
