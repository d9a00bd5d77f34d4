//! `processed_data`: one typed row per listing, written a batch at a time.

use chrono::{DateTime, Utc};
use domain::normalize::Listing;
use sqlx::PgConnection;

use crate::DbError;

/// One normalised listing and what the raw row says about it.
#[derive(Debug, Clone)]
pub struct ProcessedRow {
    pub raw_id: i64,
    pub listing: Listing,
    /// False for `active_status = 1` (removed upstream: kept, never served).
    pub is_active: bool,
    /// The raw row's `created_at` (from the API).
    pub listed_at: Option<DateTime<Utc>>,
}

/// What one upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Upserted {
    pub created: u64,
    pub updated: u64,
}

/// The columns of a batch, one array per column (UNNEST zips them back):
/// the typed columns a query filters, sorts or groups on, and the record
/// (migration 0018).
#[derive(Default)]
struct Columns {
    inner_id: Vec<String>,
    raw_id: Vec<i64>,
    mark: Vec<Option<String>>,
    model: Vec<Option<String>>,
    year: Vec<Option<i32>>,
    price: Vec<Option<i64>>,
    km_age: Vec<Option<i32>>,
    engine_type: Vec<Option<String>>,
    transmission_type: Vec<Option<String>>,
    body_type: Vec<Option<String>>,
    drive_type: Vec<Option<String>>,
    city: Vec<Option<String>>,
    seller_type: Vec<Option<String>>,
    is_dealer: Vec<Option<bool>>,
    record: Vec<String>,
    is_active: Vec<bool>,
    listed_at: Vec<Option<DateTime<Utc>>>,
}

impl Columns {
    fn push(&mut self, row: ProcessedRow) {
        // The record is the whole listing as JSON, every extracted field.
        self.record.push(row.listing.record_json());
        let l = row.listing;
        self.inner_id.push(l.inner_id);
        self.raw_id.push(row.raw_id);
        self.mark.push(l.mark);
        self.model.push(l.model);
        self.year.push(l.year);
        self.price.push(l.price);
        self.km_age.push(l.km_age);
        self.engine_type.push(l.engine_type);
        self.transmission_type.push(l.transmission_type);
        self.body_type.push(l.body_type);
        self.drive_type.push(l.drive_type);
        self.city.push(l.city);
        self.seller_type.push(l.seller_type);
        self.is_dealer.push(l.is_dealer);
        self.is_active.push(row.is_active);
        self.listed_at.push(row.listed_at);
    }
}

/// Inserts or overwrites a batch of listings in one statement
/// (processed_upsert.sql) and counts what was created and what updated.
pub async fn upsert(conn: &mut PgConnection, rows: Vec<ProcessedRow>) -> Result<Upserted, DbError> {
    if rows.is_empty() {
        return Ok(Upserted::default());
    }
    let mut c = Columns::default();
    for row in rows {
        c.push(row);
    }
    let created: Vec<bool> = sqlx::query_scalar(include_str!("processed_upsert.sql"))
        .bind(c.inner_id)
        .bind(c.raw_id)
        .bind(c.mark)
        .bind(c.model)
        .bind(c.year)
        .bind(c.price)
        .bind(c.km_age)
        .bind(c.engine_type)
        .bind(c.transmission_type)
        .bind(c.body_type)
        .bind(c.drive_type)
        .bind(c.city)
        .bind(c.seller_type)
        .bind(c.is_dealer)
        .bind(c.record)
        .bind(c.is_active)
        .bind(c.listed_at)
        .fetch_all(conn)
        .await?;
    let new = created.iter().filter(|c| **c).count() as u64;
    Ok(Upserted {
        created: new,
        updated: created.len() as u64 - new,
    })
}
