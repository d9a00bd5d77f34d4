//! The worker service (SPEC 6): a fetch fleet sharing tasks and proxies
//! through Postgres.
//!
//! `worker run` claims (task, proxy) pairs for its free slots, fetches each
//! task through its proxy, and writes the outcomes in group-committed,
//! lease-fenced transactions (`completer`). `cleanup` reclaims what dead
//! workers held. The command-line tools upload tasks and proxies, show the
//! fleet's status and export results. `main.rs` only wires; everything here
//! takes its shutdown as a parameter so tests drive it without signals.

pub mod browser;
pub mod cleanup;
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

pub use fleet::run;
