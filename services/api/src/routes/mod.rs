//! One module per route group; each owns its router.

pub mod docs;
pub mod filters;
pub mod health;
pub mod offers;
pub mod stats;
