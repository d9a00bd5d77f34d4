//! The sync service: replicates the final tables from the working database
//! to production (`push`), reference tables back (`pull`), compares both
//! sides (`verify`), copies whole tables between any two databases (`copy`,
//! the table migration) and runs all of it on a schedule (`serve`).
//!
//! `main.rs` wires settings, logs and the pools; everything the service does
//! lives here and takes its shutdown signal as a parameter.

mod copy_split;
pub mod run;
mod serve;
pub mod sql;
pub mod tables;
mod transfer;

pub use run::{run, Ends, RunOptions, TableReport};
pub use serve::serve;
