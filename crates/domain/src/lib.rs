//! Pure types and rules of carfeed: what a listing is, the kinds of change the
//! upstream sends, the operations we log.
//!
//! This crate must stay free of I/O: no sqlx, axum, tokio or reqwest. Everything
//! here is a value or a pure function, unit-tested in place.

pub mod change;
pub mod fleet;
pub mod listing;
pub mod normalize;
pub mod operation;
pub mod refresh;
pub mod retry;
pub mod token;
