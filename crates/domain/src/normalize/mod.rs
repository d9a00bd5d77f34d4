//! Normalisation: one raw listing (`raw_data.data`, any JSON) into a typed
//! [`Listing`] whose fields map 1:1 to the typed columns of `processed_data`,
//! or a [`NormalizeError`] naming every field that could not be typed.
//!
//! The rules (SPEC section 4, upstream CONTRACT.md):
//! - numbers arrive as JSON numbers or numeric strings; `""`, `"-"` and the
//!   other placeholders of [`fields::is_placeholder`] become None;
//! - a value of the wrong kind (`"price": "call us"`, an object for a text
//!   field) is an error for the whole record, reported with the field name:
//!   a record is stored correct or not at all;
//! - `images` from an array or a string holding one;
//! - the spec table from `extra.configuration`, else a top-level
//!   `configuration` only when it is an object; items by stable id, Chinese
//!   name as fallback; spec values are free text, read by their leading number;
//! - `first_registration` `YYYY-MM` is the first of the month, `未上牌` is
//!   "not registered";
//! - the city and district from `address`;
//! - `extra` is never copied (it holds `extra.inspection`, seller phones):
//!   only the named fields are read.
//!
//! Pure functions only; property tests feed them arbitrary JSON.

pub mod fields;
pub mod spec;
#[cfg(test)]
mod tests;

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Map, Value};

use spec::SpecTable;

/// One normalised listing: the typed columns of `processed_data`, and, as
/// JSON, its `record` column (what the API returns).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listing {
    pub inner_id: String,
    pub url: Option<String>,
    pub mark: Option<String>,
    pub model: Option<String>,
    pub title: Option<String>,
    pub year: Option<i32>,
    pub color: Option<String>,
    /// CNY, whole yuan.
    pub price: Option<i64>,
    /// Kilometres.
    pub km_age: Option<i32>,
    pub engine_type: Option<String>,
    pub transmission_type: Option<String>,
    pub body_type: Option<String>,
    pub drive_type: Option<String>,
    /// Litres (0 for electric cars, as the upstream says).
    pub displacement: Option<f64>,
    /// Horsepower.
    pub power: Option<i32>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub district: Option<String>,
    pub seller_type: Option<String>,
    pub is_dealer: Option<bool>,
    pub section: Option<String>,
    pub salon_id: Option<String>,
    pub description: Option<String>,
    pub vin: Option<String>,
    pub offer_created: Option<NaiveDate>,
    /// First day of the registration month.
    pub first_registration: Option<NaiveDate>,
    /// False for `未上牌` (not registered yet).
    pub is_registered: Option<bool>,
    pub images: Vec<String>,
    pub specid: Option<i64>,
    pub car_name: Option<String>,
    pub manufacturer: Option<String>,
    pub car_class: Option<String>,
    pub fuel_type: Option<String>,
    pub emission_standard: Option<String>,
    pub engine_model: Option<String>,
    pub engine_displacement_l: Option<f64>,
    pub max_horsepower_ps: Option<i32>,
    pub max_power_kw: Option<f64>,
    pub transmission_detail: Option<String>,
    pub gears: Option<i32>,
}

impl Listing {
    /// The listing as JSON text: the `record` column, what the API returns.
    pub fn record_json(&self) -> String {
        // String keys and plain values only (non-finite floats cannot occur:
        // every number passed a finiteness check), so this cannot fail.
        serde_json::to_string(self).expect("a Listing always serialises")
    }
}

/// Why one field could not be typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub reason: String,
}

impl FieldError {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    /// Prefixes the reason with where it happened (a spec item's name).
    pub fn within(self, place: &str) -> Self {
        Self::new(format!("{place}: {}", self.reason))
    }
}

/// A record that cannot be normalised, with every field that failed, e.g.
/// `price: expected a number, got "call us"; year: 3021 is outside 1885..=2100`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.iter().map(|(f, r)| format!("{f}: {r}")).collect::<Vec<_>>().join("; "))]
pub struct NormalizeError {
    pub problems: Vec<(&'static str, String)>,
}

/// Collects field errors while the record is read, so one run reports all.
#[derive(Default)]
struct Problems(Vec<(&'static str, String)>);

impl Problems {
    fn take<T: Default>(&mut self, field: &'static str, result: Result<T, FieldError>) -> T {
        result.unwrap_or_else(|e| {
            self.0.push((field, e.reason));
            T::default()
        })
    }
}

// Bounds of the typed columns: anything outside is an error, not a clamp.
const MAX_PRICE: i64 = 1_000_000_000_000;
const MAX_POWER: i32 = 100_000;
const MAX_LITRES: f64 = 100.0;

/// Normalises the `data` of the raw row `inner_id` (the row's column is the
/// key; `data.inner_id` may be missing on changes). `data` that is JSON null
/// (a `removed` event with no data) gives a listing with no fields set.
pub fn normalize(inner_id: &str, data: &Value) -> Result<Listing, NormalizeError> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    let data = match data {
        Value::Object(map) => map,
        Value::Null => EMPTY.get_or_init(Map::new),
        other => {
            return Err(NormalizeError {
                problems: vec![(
                    "data",
                    format!("expected an object, got {}", fields::describe(other)),
                )],
            })
        }
    };
    let mut p = Problems::default();
    if inner_id.trim().is_empty() || inner_id.contains('\0') {
        p.0.push(("inner_id", format!("invalid inner_id {inner_id:?}")));
    }
    let get = |key: &str| data.get(key);
    let text = |p: &mut Problems, key: &'static str| p.take(key, fields::text(get(key)));

    let address = p.take("address", fields::address(get("address")));
    let (first_registration, is_registered) = p.take(
        "first_registration",
        fields::registration(get("first_registration")),
    );
    let seller_type = text(&mut p, "seller_type");
    let is_dealer = p
        .take("is_dealer", fields::boolean(get("is_dealer")))
        .or_else(|| {
            match seller_type
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("dealer") => Some(true),
                Some("private") => Some(false),
                _ => None,
            }
        });

    let table = p.take("configuration", SpecTable::of(data));
    let specid = match table.specid.filter(|v| !v.is_null()) {
        Some(v) => p.take(
            "configuration.specid",
            fields::integer(Some(v), 0, i64::MAX >> 11),
        ),
        None => p.take("specid", fields::integer(get("specid"), 0, i64::MAX >> 11)),
    };
    let spec_text = |p: &mut Problems, item: spec::Item| p.take("configuration", table.text(item));
    let spec_number = |p: &mut Problems, item: spec::Item, max: f64| {
        let value = p.take("configuration", table.number(item));
        match value {
            Some(v) if !(0.0..=max).contains(&v) => {
                p.0.push((
                    "configuration",
                    format!("{}: {v} is outside 0..={max}", item.name),
                ));
                None
            }
            other => other,
        }
    };
    let spec_int = |p: &mut Problems, item: spec::Item| {
        spec_number(p, item, f64::from(MAX_POWER)).and_then(|v| {
            if v.fract() == 0.0 {
                Some(v as i32)
            } else {
                p.0.push((
                    "configuration",
                    format!("{}: expected a whole number, got {v}", item.name),
                ));
                None
            }
        })
    };

    let car_name = spec_text(&mut p, spec::CAR_NAME);
    let manufacturer = spec_text(&mut p, spec::MANUFACTURER);
    let car_class = spec_text(&mut p, spec::CAR_CLASS);
    let fuel_type = spec_text(&mut p, spec::FUEL_TYPE);
    let emission_standard = spec_text(&mut p, spec::EMISSION_STANDARD)
        .or_else(|| spec_text(&mut p, spec::EMISSION_STANDARD_ENGINE));
    let engine_model = spec_text(&mut p, spec::ENGINE_MODEL);
    let engine_displacement_l =
        spec_number(&mut p, spec::DISPLACEMENT_L, MAX_LITRES).or_else(|| {
            spec_number(&mut p, spec::DISPLACEMENT_ML, MAX_LITRES * 1000.0)
                .map(|ml| (ml / 100.0).round() / 10.0)
        });
    let max_horsepower_ps =
        spec_int(&mut p, spec::MAX_HORSEPOWER_PS).or_else(|| spec_int(&mut p, spec::MOTOR_PS));
    let max_power_kw = spec_number(&mut p, spec::MAX_POWER_KW, f64::from(MAX_POWER))
        .or_else(|| spec_number(&mut p, spec::CAR_MAX_POWER_KW, f64::from(MAX_POWER)));
    let transmission_detail = spec_text(&mut p, spec::TRANSMISSION_TYPE)
        .or_else(|| spec_text(&mut p, spec::TRANSMISSION_SHORT));
    let gears = spec_int(&mut p, spec::GEARS);

    let listing = Listing {
        inner_id: inner_id.trim().to_owned(),
        url: text(&mut p, "url"),
        mark: text(&mut p, "mark"),
        model: text(&mut p, "model"),
        title: text(&mut p, "title"),
        year: p.take(
            "year",
            fields::int32(get("year"), fields::MIN_YEAR, fields::MAX_YEAR),
        ),
        color: text(&mut p, "color"),
        price: p.take("price", fields::integer(get("price"), 0, MAX_PRICE)),
        km_age: p.take("km_age", fields::int32(get("km_age"), 0, i32::MAX)),
        engine_type: text(&mut p, "engine_type"),
        transmission_type: text(&mut p, "transmission_type"),
        body_type: text(&mut p, "body_type"),
        drive_type: text(&mut p, "drive_type"),
        displacement: p.take(
            "displacement",
            fields::float(get("displacement"), MAX_LITRES),
        ),
        power: p.take("power", fields::int32(get("power"), 0, MAX_POWER)),
        address: address.full,
        city: address.city,
        district: address.district,
        seller_type,
        is_dealer,
        section: text(&mut p, "section"),
        salon_id: text(&mut p, "salon_id"),
        description: text(&mut p, "description"),
        vin: text(&mut p, "vin"),
        offer_created: p.take("offer_created", fields::date(get("offer_created"))),
        first_registration,
        is_registered,
        images: p.take("images", fields::images(get("images"))),
        specid,
        car_name,
        manufacturer,
        car_class,
        fuel_type,
        emission_standard,
        engine_model,
        engine_displacement_l,
        max_horsepower_ps,
        max_power_kw,
        transmission_detail,
        gears,
    };
    if p.0.is_empty() {
        Ok(listing)
    } else {
        Err(NormalizeError { problems: p.0 })
    }
}
