//! The simulated world: a base catalogue of listings (what `/offers` pages
//! through) and a stream of simulated days of changes (what `/changes` serves),
//! both computed on demand from the seed. Nothing is held in memory except a
//! small index of the change stream's effects, built on the first `/offer`.
//!
//! Numbering (all increasing with the listing index, so `/offers` is ordered by
//! `inner_id` as upstream's is):
//! - listing `index` has `inner_id = 50_000_000 + 4 * index + slot(index)`,
//!   `slot` in 0..4 from the seed; catalogue listings are indices
//!   `0..listings`, the listing added by the event at position `p` of day `d`
//!   is index `listings + d * changes_per_day + p`;
//! - "listings we never saw" (changes for inner_ids neither in the catalogue
//!   nor added) use `inner_id`s below 50,000,000;
//! - event ids: catalogue items carry ids below [`Catalogue::first_change_id`];
//!   the change at position `p` of day `d` has id
//!   `first_change_id + d * changes_per_day + p`, so days follow each other.

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use serde::Serialize;
use serde_json::Value;

use crate::changes::{self, ChangeEvent, Fate};
use crate::listing::{self, Listing, Num, Placement};
use crate::rng::{hash, Rng};

/// Listings per `/offers` page and events per `/changes` page (fixed upstream).
pub const PAGE_SIZE: usize = 20;

pub(crate) const INNER_BASE: u64 = 50_000_000;
const SLOT_STREAM: u64 = 10;
const CREATED_STREAM: u64 = 11;

/// The whole simulated upstream, reproducible from its parameters alone.
#[derive(Debug)]
pub struct Catalogue {
    pub(crate) seed: u64,
    pub(crate) listings: u64,
    pub(crate) first_day: NaiveDate,
    pub(crate) days: u32,
    pub(crate) per_day: u64,
    fates: OnceLock<HashMap<u64, Fate>>,
}

/// One `/changes` answer: the events from a change id and the cursor after them.
#[derive(Debug, Clone)]
pub struct ChangesPage {
    pub events: Vec<ChangeEvent>,
    /// `None` at the tip of the feed.
    pub next_change_id: Option<u64>,
}

#[derive(Serialize)]
pub(crate) struct Envelope<'a> {
    pub id: u64,
    pub inner_id: &'a str,
    pub change_type: &'static str,
    pub created_at: String,
    pub data: &'a Listing,
}

#[derive(Serialize)]
struct OffersPage<'a> {
    result: Vec<Envelope<'a>>,
    meta: OffersMeta,
}

#[derive(Serialize)]
struct OffersMeta {
    page: u32,
    next_page: Option<u32>,
    limit: usize,
}

impl Catalogue {
    pub fn new(
        seed: u64,
        listings: usize,
        first_day: NaiveDate,
        days: u32,
        changes_per_day: usize,
    ) -> Self {
        Self {
            seed,
            listings: listings as u64,
            first_day,
            days,
            per_day: changes_per_day as u64,
            fates: OnceLock::new(),
        }
    }

    /// How many listings `/offers` pages through.
    pub fn total_listings(&self) -> usize {
        self.listings as usize
    }

    /// How many `/offers` pages there are (the last one may be short).
    pub fn pages(&self) -> u32 {
        self.listings.div_ceil(PAGE_SIZE as u64) as u32
    }

    /// The `inner_id` of listing `index` (catalogue or added).
    pub fn inner_id(&self, index: u64) -> String {
        self.inner_id_number(index).to_string()
    }

    pub(crate) fn inner_id_number(&self, index: u64) -> u64 {
        INNER_BASE + 4 * index + self.slot(index)
    }

    fn slot(&self, index: u64) -> u64 {
        hash(self.seed, SLOT_STREAM, index) % 4
    }

    /// The envelope `id` of listing `index`: below the first change id for the
    /// catalogue, the id of its `added` event beyond.
    pub(crate) fn item_id(&self, index: u64) -> u64 {
        if index < self.listings {
            1_000_000 + 4 * index + self.slot(index)
        } else {
            self.first_change_id() + (index - self.listings)
        }
    }

    /// The listing index behind an `inner_id`, if it names a catalogue listing
    /// or a listing added by the change stream.
    pub fn index_of(&self, inner_id: &str) -> Option<u64> {
        let n: u64 = inner_id.parse().ok()?;
        let index = n.checked_sub(INNER_BASE)? / 4;
        if self.inner_id_number(index) != n {
            return None;
        }
        if index < self.listings {
            return Some(index);
        }
        let k = index - self.listings;
        let (day, pos) = (k / self.per_day.max(1), k % self.per_day.max(1));
        (day < u64::from(self.days) && changes::is_added(self, day as u32, pos)).then_some(index)
    }

    /// When and under which ids listing `index` appears.
    pub(crate) fn placement(&self, index: u64) -> Placement {
        let created = if index < self.listings {
            let mut rng = Rng::new(self.seed, CREATED_STREAM, index);
            let day = self.first_day - Duration::days(rng.range(1, 120) as i64);
            day.and_time(NaiveTime::MIN) + Duration::milliseconds(rng.below(86_400_000) as i64)
        } else {
            let k = index - self.listings;
            changes::event_time(self, (k / self.per_day) as u32, k % self.per_day)
        };
        Placement {
            index,
            row_id: 2_100_000 + index,
            inner_id: self.inner_id_number(index),
            created,
        }
    }

    /// The `data` object of listing `index` as first published (the catalogue
    /// snapshot for `0..total_listings()`, the `added` payload beyond).
    pub fn listing(&self, index: u64) -> Value {
        serde_json::to_value(self.build(index)).expect("a listing always serialises")
    }

    pub(crate) fn build(&self, index: u64) -> Listing {
        listing::build(self.seed, &self.placement(index))
    }

    /// `/offers?page=N` as a JSON value (no faults applied).
    pub fn offers_page(&self, page: u32) -> Value {
        serde_json::from_slice(&self.offers_page_bytes(page, false)).expect("a page always parses")
    }

    /// The exact bytes `/offers?page=N` serves when no fault is set.
    pub fn offers_page_body(&self, page: u32) -> Vec<u8> {
        self.offers_page_bytes(page, false)
    }

    /// The body of `/offers?page=N`; `next_page_zero` ends the feed with `0`.
    pub(crate) fn offers_page_bytes(&self, page: u32, next_page_zero: bool) -> Vec<u8> {
        let pages = self.pages();
        let start = u64::from(page.saturating_sub(1)) * PAGE_SIZE as u64;
        let end = (start + PAGE_SIZE as u64).min(self.listings);
        let listings: Vec<(String, Listing, String)> = (start..end)
            .map(|index| {
                let placement = self.placement(index);
                let created = created_at(placement.created, index % 3 != 0);
                let data = listing::build(self.seed, &placement);
                (data.inner_id.clone(), data, created)
            })
            .collect();
        let result = listings
            .iter()
            .zip(start..)
            .map(|((inner_id, data, created), index)| Envelope {
                id: self.item_id(index),
                inner_id,
                change_type: "added",
                created_at: created.clone(),
                data,
            })
            .collect();
        let next_page = if page >= 1 && page < pages {
            Some(page + 1)
        } else if next_page_zero {
            Some(0)
        } else {
            None
        };
        let body = OffersPage {
            result,
            meta: OffersMeta {
                page,
                next_page,
                limit: PAGE_SIZE,
            },
        };
        serde_json::to_vec(&body).expect("a page always serialises")
    }

    pub fn first_day(&self) -> NaiveDate {
        self.first_day
    }

    pub fn days(&self) -> u32 {
        self.days
    }

    /// The last simulated day.
    pub fn today(&self) -> NaiveDate {
        self.first_day + Duration::days(i64::from(self.days.saturating_sub(1)))
    }

    pub fn changes_per_day(&self) -> usize {
        self.per_day as usize
    }

    /// The position of `date` among the simulated days.
    pub fn day_index(&self, date: NaiveDate) -> Option<u32> {
        let offset = (date - self.first_day).num_days();
        (0..i64::from(self.days))
            .contains(&offset)
            .then_some(offset as u32)
    }

    /// The id of the first change of every listing id space: one above the
    /// highest catalogue item id.
    pub fn first_change_id(&self) -> u64 {
        2_000_000 + 4 * self.listings
    }

    /// `/change_id?date=`: the first change of that date, `None` outside the days.
    pub fn change_id_of(&self, date: NaiveDate) -> Option<u64> {
        self.day_index(date)
            .map(|day| self.first_change_id() + u64::from(day) * self.per_day)
    }

    /// One past the last change: where the tip of the feed is.
    pub fn tip_change_id(&self) -> u64 {
        self.first_change_id() + u64::from(self.days) * self.per_day
    }

    /// Every event of day `day` (0-based), in id order.
    pub fn changes(&self, day: u32) -> Vec<ChangeEvent> {
        (0..self.per_day)
            .map(|pos| changes::event(self, day, pos))
            .collect()
    }

    /// `/changes?change_id=X`: up to `limit` events from `X` (ids below the
    /// first change are served from the first change).
    pub fn changes_from(&self, change_id: u64, limit: usize) -> ChangesPage {
        let start = change_id.max(self.first_change_id());
        let end = (start + limit as u64).min(self.tip_change_id());
        if start >= end {
            return ChangesPage {
                events: Vec::new(),
                next_change_id: None,
            };
        }
        let events = (start..end)
            .map(|id| {
                let k = id - self.first_change_id();
                changes::event(self, (k / self.per_day) as u32, k % self.per_day)
            })
            .collect();
        ChangesPage {
            events,
            next_change_id: Some(end),
        }
    }

    /// The listing behind `inner_id` as it stands after every simulated day
    /// (changes merged), or `None` if it never existed or was removed.
    pub fn current_listing(&self, inner_id: &str) -> Option<Value> {
        self.current(inner_id)
            .map(|(_, data)| serde_json::to_value(data).expect("a listing always serialises"))
    }

    pub(crate) fn current(&self, inner_id: &str) -> Option<(u64, Listing)> {
        let index = self.index_of(inner_id)?;
        let mut data = self.build(index);
        if let Some(fate) = self.fates().get(&self.inner_id_number(index)) {
            if fate.removed {
                return None;
            }
            if let Some(price) = fate.price {
                data.price = Num::Int(price);
            }
            if let Some(km) = fate.km_age {
                data.km_age = Num::Int(km);
            }
            if let Some(color) = fate.color {
                data.color = color;
            }
        }
        Some((index, data))
    }

    fn fates(&self) -> &HashMap<u64, Fate> {
        self.fates.get_or_init(|| changes::fates(self))
    }
}

/// ISO-8601 UTC, with or without milliseconds.
pub(crate) fn created_at(at: NaiveDateTime, millis: bool) -> String {
    if millis {
        at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    } else {
        at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }
}
