//! carfeed's Postgres layer.
//!
//! Owns the pool, the one schema history (`MIGRATOR`, from `/migrations`), the
//! schema-version check every service runs at start, and plain async functions
//! grouped by table. Callers own transactions: functions take an executor or a
//! `&mut PgConnection` and never begin or commit on their own.
//!
//! Queries are runtime-checked (`sqlx::query_as`); every one is exercised by a
//! test against a real Postgres.

pub mod claims;
pub mod commit;
pub mod copy;
mod error;
pub mod initial_pages;
pub mod isolate;
pub mod load_state;
pub mod offers;
pub mod operations;
mod pool;
pub mod processed;
pub mod proxies;
pub mod queue;
pub mod raw;
pub mod rejected;
pub mod results;
pub mod roles;
pub mod schema;
pub mod stats;
pub mod status;
pub mod sync_state;
pub mod sync_tables;
pub mod tasks;
pub mod tokens;
pub mod workers;

pub use error::DbError;
pub use pool::{connect, PoolOptions};
pub use schema::{migrate, SchemaStatus, MIGRATOR};
pub use sqlx::{PgConnection, PgPool, Postgres, Transaction};
