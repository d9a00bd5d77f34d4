//! Client of the upstream listings API (CHE168 through auto-api.com, see
//! `upstream/CONTRACT.md`): typed responses parsed tolerantly, requests paced
//! and retried by the SPEC 3.3 policy (401/403 stop at once, `Retry-After`
//! honoured), and the key never logged: logs and errors name requests as
//! `GET /offers?page=3`, never by URL.
//!
//! It owns no state and no database access; the loader and the workers decide
//! what to do with what it returns.

mod client;
pub mod describe;
mod error;
pub mod model;
pub mod validate;

pub use client::{Client, ClientConfig};
pub use error::{ParseError, UpstreamError};
pub use model::{ChangesPage, OffersPage};
