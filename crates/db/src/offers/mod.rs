//! `processed_data` as the api reads it: active offers, filtered, sorted and
//! paged by keyset, returned as the stored `record` JSON text (never parsed
//! and re-serialised here).
//!
//! Keyset pages: rows come in `(sort column, inner_id)` order, both in the
//! requested direction, and a page starts strictly after the last row of the
//! previous one, so page 1,000 is one index range scan like page 1. Offers
//! whose sort column is NULL come after all others in both directions; a page
//! that reaches the end of the non-NULL offers continues into the NULL ones
//! with a second statement.

use chrono::{DateTime, Utc};

mod facets;
mod page;
mod record;

pub use facets::{facets, FacetRow};
pub use page::{page, statements, Planning, Shape, Statement};
pub use record::record;

/// What the list is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortKey {
    Price,
    Year,
    KmAge,
    ListedAt,
}

impl SortKey {
    pub const ALL: [SortKey; 4] = [Self::Price, Self::Year, Self::KmAge, Self::ListedAt];

    /// The column, which is also the name the api uses.
    pub const fn column(self) -> &'static str {
        match self {
            Self::Price => "price",
            Self::Year => "year",
            Self::KmAge => "km_age",
            Self::ListedAt => "listed_at",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Asc,
    Desc,
}

impl Direction {
    const fn sql(self) -> &'static str {
        match self {
            Self::Asc => "ASC",
            Self::Desc => "DESC",
        }
    }

    const fn after(self) -> &'static str {
        match self {
            Self::Asc => ">",
            Self::Desc => "<",
        }
    }
}

/// The sort column's value of one offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortValue {
    Number(i64),
    Time(DateTime<Utc>),
}

/// Where a page ends: the last row's sort value (None: in the NULL tail)
/// and inner_id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub value: Option<SortValue>,
    pub inner_id: String,
}

/// Filters of the list; an empty list or `None` means not filtered, several
/// values of one filter mean any of them. Text filters on mark, model and
/// city ignore case; the others match exactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OfferFilter {
    pub mark: Vec<String>,
    pub model: Vec<String>,
    pub year_from: Option<i32>,
    pub year_to: Option<i32>,
    pub price_from: Option<i64>,
    pub price_to: Option<i64>,
    pub km_age_to: Option<i32>,
    pub city: Vec<String>,
    pub body_type: Vec<String>,
    pub engine_type: Vec<String>,
    pub transmission_type: Vec<String>,
    pub drive_type: Vec<String>,
    pub seller_type: Vec<String>,
    pub is_dealer: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest {
    pub filter: OfferFilter,
    pub sort: SortKey,
    pub direction: Direction,
    pub after: Option<Position>,
    pub limit: u32,
}

/// One page: each offer's `record` as JSON text, and where the next page
/// starts (None on the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<String>,
    pub next: Option<Position>,
}
