//! `che168-sim`: a simulator of the CHE168 upstream API (see
//! /work/shared/upstream/CONTRACT.md) for tests, benchmarks and development.
//!
//! It owns a deterministic, seeded catalogue of listings and a stream of
//! simulated days of changes, both computed on demand from (seed, index) so
//! that any page costs O(page) and nothing big is held in memory, and serves
//! them over real HTTP under `/api/v2/che168` with the upstream's quirks and
//! failures on demand ([`Faults`]). Tests start it on port 0 with [`spawn`]
//! and compute what they expect with [`Catalogue`].
//!
//! It must not touch a database or any real network: it is a dev/test tool,
//! not a carfeed service.

mod catalogue;
mod changes;
mod expected;
mod faults;
mod listing;
mod poison;
mod rng;
mod serve;
mod server;
mod spec;
mod vocab;

use std::collections::HashSet;
use std::time::Duration;

pub use catalogue::{Catalogue, ChangesPage, PAGE_SIZE};
pub use changes::{ChangeEvent, ChangeKind, Origin};
pub use expected::ExpectedRow;
pub use poison::{kind_for as poison_kind, PoisonKind};
pub use serve::{spawn, spawn_on, RunningSim};

/// The path every endpoint lives under, as on the real host.
pub const PATH_PREFIX: &str = "/api/v2/che168";

/// What to simulate. `Default`: seed 168, 250,000 listings, key `sim-key`,
/// seven days ending today (UTC), 15,000 changes a day, no faults.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    /// Listings in the base catalogue (`/offers`).
    pub listings: usize,
    /// The only `api_key` accepted.
    pub api_key: String,
    /// The first simulated day; the last one ("today") is `first_day + days - 1`.
    pub first_day: chrono::NaiveDate,
    pub days: u32,
    pub changes_per_day: usize,
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        let days: u32 = 7;
        let today = chrono::Utc::now().date_naive();
        Self {
            seed: 168,
            listings: 250_000,
            api_key: "sim-key".to_owned(),
            first_day: today - chrono::Duration::days(i64::from(days) - 1),
            days,
            changes_per_day: 15_000,
            faults: Faults::default(),
        }
    }
}

impl SimConfig {
    /// The catalogue this configuration describes (what tests compare to).
    pub fn catalogue(&self) -> Catalogue {
        Catalogue::new(
            self.seed,
            self.listings,
            self.first_day,
            self.days,
            self.changes_per_day,
        )
    }
}

/// Failures on demand; each share is a probability in `0.0..=1.0`, drawn
/// independently per request from the seed and the request's sequence number.
/// `Default` is no faults at all.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Added before every answer.
    pub latency: Duration,
    /// Share of 502/503 answers (half each).
    pub server_error_rate: f64,
    /// Share of 429 answers carrying `Retry-After: retry_after_secs`.
    pub rate_limit_rate: f64,
    pub retry_after_secs: u64,
    /// Share of requests that hang for `timeout` before answering.
    pub timeout_rate: f64,
    pub timeout: Duration,
    /// Share of HTTP 200 answers whose JSON body is cut in half.
    pub truncated_rate: f64,
    /// Share of requests whose connection is dropped without an answer.
    pub reset_rate: f64,
    /// `/changes` always answers the tip: `result: []`, `next_change_id: null`.
    pub empty_tip: bool,
    /// The last `/offers` page says `next_page: 0` instead of `null`.
    pub next_page_zero: bool,
    /// These `/offers` pages always answer 503.
    pub fail_pages: HashSet<u32>,
    /// These `/offers` pages name themselves as `next_page` (a feed that
    /// would loop).
    pub next_page_not_after: HashSet<u32>,
    /// These `/offers` pages have no `next_page` in their `meta`.
    pub next_page_missing: HashSet<u32>,
    /// `/changes?change_id=` with these ids always answers 503.
    pub fail_change_ids: HashSet<u64>,
    /// Share of listings (in `/offers` and `/changes`) sent with a value the
    /// loader must reject; the same listings every time (see `poison_kind`).
    pub poison_rate: f64,
    /// The ways a poisoned listing is broken (one per listing, by its id).
    pub poison_kinds: Vec<PoisonKind>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            server_error_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after_secs: 1,
            timeout_rate: 0.0,
            timeout: Duration::from_secs(300),
            truncated_rate: 0.0,
            reset_rate: 0.0,
            empty_tip: false,
            next_page_zero: false,
            fail_pages: HashSet::new(),
            next_page_not_after: HashSet::new(),
            next_page_missing: HashSet::new(),
            fail_change_ids: HashSet::new(),
            poison_rate: 0.0,
            poison_kinds: PoisonKind::ALL.to_vec(),
        }
    }
}
