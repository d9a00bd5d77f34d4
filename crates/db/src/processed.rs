//! `processed_data`: one typed row per listing, written a batch at a time.

use chrono::{DateTime, NaiveDate, Utc};
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

/// The columns of a batch, one array per column (UNNEST zips them back).
#[derive(Default)]
struct Columns {
    inner_id: Vec<String>,
    raw_id: Vec<i64>,
    url: Vec<Option<String>>,
    mark: Vec<Option<String>>,
    model: Vec<Option<String>>,
    title: Vec<Option<String>>,
    year: Vec<Option<i32>>,
    color: Vec<Option<String>>,
    price: Vec<Option<i64>>,
    km_age: Vec<Option<i32>>,
    engine_type: Vec<Option<String>>,
    transmission_type: Vec<Option<String>>,
    body_type: Vec<Option<String>>,
    drive_type: Vec<Option<String>>,
    displacement: Vec<Option<f64>>,
    power: Vec<Option<i32>>,
    address: Vec<Option<String>>,
    city: Vec<Option<String>>,
    district: Vec<Option<String>>,
    seller_type: Vec<Option<String>>,
    is_dealer: Vec<Option<bool>>,
    section: Vec<Option<String>>,
    salon_id: Vec<Option<String>>,
    description: Vec<Option<String>>,
    vin: Vec<Option<String>>,
    offer_created: Vec<Option<NaiveDate>>,
    first_registration: Vec<Option<NaiveDate>>,
    is_registered: Vec<Option<bool>>,
    images: Vec<String>,
    specid: Vec<Option<i64>>,
    car_name: Vec<Option<String>>,
    manufacturer: Vec<Option<String>>,
    car_class: Vec<Option<String>>,
    fuel_type: Vec<Option<String>>,
    emission_standard: Vec<Option<String>>,
    engine_model: Vec<Option<String>>,
    engine_displacement_l: Vec<Option<f64>>,
    max_horsepower_ps: Vec<Option<i32>>,
    max_power_kw: Vec<Option<f64>>,
    transmission_detail: Vec<Option<String>>,
    gears: Vec<Option<i32>>,
    record: Vec<String>,
    is_active: Vec<bool>,
    listed_at: Vec<Option<DateTime<Utc>>>,
}

impl Columns {
    fn push(&mut self, row: ProcessedRow) {
        // The record is the listing as JSON: exactly the typed columns.
        self.record.push(row.listing.record_json());
        self.images.push(row.listing.images_json());
        let l = row.listing;
        self.inner_id.push(l.inner_id);
        self.raw_id.push(row.raw_id);
        self.url.push(l.url);
        self.mark.push(l.mark);
        self.model.push(l.model);
        self.title.push(l.title);
        self.year.push(l.year);
        self.color.push(l.color);
        self.price.push(l.price);
        self.km_age.push(l.km_age);
        self.engine_type.push(l.engine_type);
        self.transmission_type.push(l.transmission_type);
        self.body_type.push(l.body_type);
        self.drive_type.push(l.drive_type);
        self.displacement.push(l.displacement);
        self.power.push(l.power);
        self.address.push(l.address);
        self.city.push(l.city);
        self.district.push(l.district);
        self.seller_type.push(l.seller_type);
        self.is_dealer.push(l.is_dealer);
        self.section.push(l.section);
        self.salon_id.push(l.salon_id);
        self.description.push(l.description);
        self.vin.push(l.vin);
        self.offer_created.push(l.offer_created);
        self.first_registration.push(l.first_registration);
        self.is_registered.push(l.is_registered);
        self.specid.push(l.specid);
        self.car_name.push(l.car_name);
        self.manufacturer.push(l.manufacturer);
        self.car_class.push(l.car_class);
        self.fuel_type.push(l.fuel_type);
        self.emission_standard.push(l.emission_standard);
        self.engine_model.push(l.engine_model);
        self.engine_displacement_l.push(l.engine_displacement_l);
        self.max_horsepower_ps.push(l.max_horsepower_ps);
        self.max_power_kw.push(l.max_power_kw);
        self.transmission_detail.push(l.transmission_detail);
        self.gears.push(l.gears);
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
        .bind(c.url)
        .bind(c.mark)
        .bind(c.model)
        .bind(c.title)
        .bind(c.year)
        .bind(c.color)
        .bind(c.price)
        .bind(c.km_age)
        .bind(c.engine_type)
        .bind(c.transmission_type)
        .bind(c.body_type)
        .bind(c.drive_type)
        .bind(c.displacement)
        .bind(c.power)
        .bind(c.address)
        .bind(c.city)
        .bind(c.district)
        .bind(c.seller_type)
        .bind(c.is_dealer)
        .bind(c.section)
        .bind(c.salon_id)
        .bind(c.description)
        .bind(c.vin)
        .bind(c.offer_created)
        .bind(c.first_registration)
        .bind(c.is_registered)
        .bind(c.images)
        .bind(c.specid)
        .bind(c.car_name)
        .bind(c.manufacturer)
        .bind(c.car_class)
        .bind(c.fuel_type)
        .bind(c.emission_standard)
        .bind(c.engine_model)
        .bind(c.engine_displacement_l)
        .bind(c.max_horsepower_ps)
        .bind(c.max_power_kw)
        .bind(c.transmission_detail)
        .bind(c.gears)
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
