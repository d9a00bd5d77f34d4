//! One listing's `data` object, built from (seed, index) alone.
//!
//! The typed structs serialise straight to the bytes a page is made of (no
//! `serde_json::Value` on the hot path); field order follows the samples in
//! fixtures/upstream. Quirks of the real feed are reproduced on purpose and
//! decided per listing: numbers as JSON numbers or numeric strings, `images`
//! as an array or a string holding one, `-` placeholders, `未上牌`, an empty
//! district, `salon_id: ""` for private sellers, a phone number under
//! `extra.inspection`, and, rarely, a top-level `configuration` (a plain trim
//! string, or the whole table instead of `extra.configuration`).

use std::borrow::Cow;

use chrono::{Datelike, NaiveDateTime};
use serde::Serialize;

use crate::rng::Rng;
use crate::vocab::{self, Model, Power, Trim};

const CORE_STREAM: u64 = 1;
const DETAIL_STREAM: u64 = 2;

/// A number as the feed sends it: a JSON number on some listings, a numeric
/// string (or a placeholder) on others.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(crate) enum Num {
    Int(u64),
    Float(f64),
    Text(String),
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(crate) enum Images {
    List(Vec<String>),
    /// A string holding a JSON array (the common case in the samples).
    Text(String),
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ParamItem {
    pub name: &'static str,
    pub id: u32,
    pub value: Cow<'static, str>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ParamGroup {
    pub name: &'static str,
    pub paramitems: Vec<ParamItem>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct SpecTable {
    pub specid: u64,
    pub paramtypeitems: Vec<ParamGroup>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(crate) enum TopConfiguration {
    Trim(String),
    Table(SpecTable),
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Inspection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Extra {
    pub inspection: Inspection,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration: Option<SpecTable>,
}

/// The `data` object of one listing.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Listing {
    pub id: u64,
    pub inner_id: String,
    pub url: String,
    pub mark: &'static str,
    pub model: &'static str,
    pub title: String,
    pub year: Num,
    pub color: &'static str,
    pub price: Num,
    pub km_age: Num,
    pub engine_type: &'static str,
    pub transmission_type: &'static str,
    pub body_type: &'static str,
    pub drive_type: &'static str,
    pub address: String,
    pub seller_type: &'static str,
    pub is_dealer: bool,
    pub section: &'static str,
    pub salon_id: String,
    pub description: String,
    pub displacement: Num,
    pub power: Num,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ice_power_ps: Option<Num>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ice_power_kw: Option<Num>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub electric_power_ps: Option<Num>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub electric_power_kw: Option<Num>,
    pub vin: String,
    pub offer_created: String,
    pub first_registration: String,
    pub specid: Num,
    pub images: Images,
    pub extra: Extra,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration: Option<TopConfiguration>,
}

/// The few facts the change stream needs about a listing, cheap to compute.
#[derive(Clone, Copy)]
pub(crate) struct Core {
    pub model: &'static Model,
    pub trim: &'static Trim,
    pub year: i32,
    pub unregistered: bool,
    pub price: u64,
    pub km_age: u64,
}

/// The core facts of listing `index`, for a listing created in `ref_year`.
pub(crate) fn core(seed: u64, index: u64, ref_year: i32) -> Core {
    let mut rng = Rng::new(seed, CORE_STREAM, index);
    let model = rng.pick(vocab::MODELS);
    let trim = rng.pick(model.trims);
    let since = i32::from(model.since);
    let oldest = since.max(ref_year - 9);
    let unregistered = rng.chance(30);
    let year = if unregistered || oldest >= ref_year {
        ref_year.max(since)
    } else {
        oldest + rng.below((ref_year - oldest + 1) as u64) as i32
    };
    let age = (ref_year - year).max(0);
    let km_age = if unregistered {
        rng.range(1, 60)
    } else {
        let months = (age as u64 * 12 + rng.range(2, 11)).max(1);
        months * rng.range(600, 2200) / 100 * 100
    };
    let wear = 0.86f64.powi(age) * (0.82 + 0.22 * rng.unit());
    let price = ((f64::from(trim.msrp) * wear) as u64 / 100 * 100).max(12_000);
    Core {
        model,
        trim,
        year,
        unregistered,
        price,
        km_age,
    }
}

/// Where and when a listing appears: its ids and its creation time.
pub(crate) struct Placement {
    pub index: u64,
    pub row_id: u64,
    pub inner_id: u64,
    pub created: NaiveDateTime,
}

/// Builds the full `data` object of a listing.
pub(crate) fn build(seed: u64, at: &Placement) -> Listing {
    let ref_year = at.created.year();
    let c = core(seed, at.index, ref_year);
    let mut rng = Rng::new(seed, DETAIL_STREAM, at.index);
    let as_numbers = rng.chance(300);
    let num = |v: u64| {
        if as_numbers {
            Num::Int(v)
        } else {
            Num::Text(v.to_string())
        }
    };

    let inner_id = at.inner_id.to_string();
    let dealer = rng.chance(720);
    let salon = if dealer {
        rng.range(100_000, 599_999).to_string()
    } else {
        String::new()
    };
    let url = if dealer {
        format!("https://www.che168.com/dealer/{salon}/{inner_id}.html")
    } else {
        format!("https://www.che168.com/personal/{inner_id}.html")
    };
    let (city, districts) = rng.pick(vocab::CITIES);
    let address = if rng.chance(60) {
        format!("{city}, ")
    } else {
        format!("{city}, {}", rng.pick(districts))
    };
    let description = describe(&mut rng, dealer);
    let title = format!("{} {}款 {}", c.model.cn, c.year, c.trim.name);

    let (engine_type, displacement, ps, kw, electric) = match c.trim.power {
        Power::Ice {
            fuel, ml, ps, kw, ..
        } => {
            let litres = (f64::from(ml) / 100.0).round() / 10.0;
            let d = if as_numbers {
                Num::Float(litres)
            } else {
                Num::Text(format!("{litres:.1}"))
            };
            (fuel.engine_type(), d, u64::from(ps), u64::from(kw), false)
        }
        Power::Electric { kw, .. } => {
            let d = if as_numbers {
                Num::Int(0)
            } else {
                Num::Text("0".into())
            };
            let ps = u64::from(kw) * 136 / 100;
            ("Electric", d, ps, u64::from(kw), true)
        }
    };
    let power = if !as_numbers && rng.chance(15) {
        Num::Text("-".into())
    } else {
        num(ps)
    };
    let (ice_ps, ice_kw, el_ps, el_kw) = if electric {
        (None, None, Some(num(ps)), Some(num(kw)))
    } else if rng.chance(500) {
        (Some(num(ps)), Some(num(kw)), None, None)
    } else {
        (Some(num(ps)), None, None, None)
    };

    let first_registration = if c.unregistered {
        "未上牌".to_owned()
    } else {
        let reg_year = (c.year + rng.below(2) as i32).min(ref_year);
        format!("{reg_year}-{:02}", rng.range(1, 12))
    };
    let specid = 40_000 + trim_specid(c.model, c.trim, c.year);
    let table = crate::spec::table(&mut rng, &c, specid, &title);
    let (extra_table, top) = match rng.below(1000) {
        0..=3 => (None, Some(TopConfiguration::Table(table))),
        4..=7 => (
            Some(table),
            Some(TopConfiguration::Trim(format!(
                "{}款 {}",
                c.year, c.trim.name
            ))),
        ),
        _ => (Some(table), None),
    };
    let inspection = if rng.chance(if dealer { 20 } else { 80 }) {
        Inspection {
            contact: Some(*rng.pick(vocab::CONTACTS)),
            phone: Some(format!(
                "1{}{:09}",
                rng.pick(&[3, 5, 7, 8, 9]),
                rng.below(1_000_000_000)
            )),
        }
    } else {
        Inspection::default()
    };

    Listing {
        id: at.row_id,
        url,
        mark: c.model.mark,
        model: c.model.model,
        title,
        year: num(c.year as u64),
        color: rng.pick::<&str>(vocab::COLORS),
        price: num(c.price),
        km_age: num(c.km_age),
        engine_type,
        transmission_type: if c.trim.gearbox.manual {
            "Manual"
        } else {
            "Automatic"
        },
        body_type: c.model.body,
        drive_type: c.trim.drive.en,
        address,
        seller_type: if dealer { "dealer" } else { "private" },
        is_dealer: dealer,
        section: "Used",
        salon_id: salon,
        description,
        displacement,
        power,
        ice_power_ps: ice_ps,
        ice_power_kw: ice_kw,
        electric_power_ps: el_ps,
        electric_power_kw: el_kw,
        vin: vin(&mut rng),
        offer_created: at.created.format("%Y-%m-%d").to_string(),
        first_registration,
        specid: num(specid),
        images: images(&mut rng, at.inner_id),
        extra: Extra {
            inspection,
            configuration: extra_table,
        },
        configuration: top,
        inner_id,
    }
}

/// A stable spec id per (model, trim, year), like che168's.
fn trim_specid(model: &Model, trim: &Trim, year: i32) -> u64 {
    let m = vocab::MODELS
        .iter()
        .position(|x| std::ptr::eq(x, model))
        .unwrap_or(0) as u64;
    let t = model
        .trims
        .iter()
        .position(|x| std::ptr::eq(x, trim))
        .unwrap_or(0) as u64;
    m * 400 + t * 20 + (year.max(2010) - 2010) as u64
}

fn describe(rng: &mut Rng, dealer: bool) -> String {
    let phrases = if dealer {
        vocab::DEALER_PHRASES
    } else {
        vocab::PRIVATE_PHRASES
    };
    let n = rng.range(1, 3);
    let mut text = String::with_capacity(160);
    for _ in 0..n {
        text.push_str(rng.pick::<&str>(phrases));
    }
    text
}

fn vin(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789";
    if rng.chance(10) {
        return String::new();
    }
    let mut vin = String::with_capacity(17);
    vin.push('L');
    for _ in 0..16 {
        vin.push(char::from(*rng.pick(ALPHABET)));
    }
    vin
}

fn images(rng: &mut Rng, inner_id: u64) -> Images {
    let count = rng.range(3, 9);
    let tag = rng.next_u64();
    let urls: Vec<String> = (0..count)
        .map(|k| {
            format!(
                "https://2sc2.autoimg.cn/escimg/auto/g{}/M0{}/{:02X}/{:02X}/1024x768_c42_autohomecar__Chx{:08x}AAq9t0PZjQ1{:02}.jpg.webp",
                30 + k,
                k % 4,
                tag.rotate_right(k as u32 * 7) & 0xFF,
                tag.rotate_right(k as u32 * 7 + 3) & 0xFF,
                inner_id ^ (tag & 0xFFFF_FFFF),
                k
            )
        })
        .collect();
    if rng.chance(300) {
        Images::List(urls)
    } else {
        let quoted: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
        Images::Text(format!("[{}]", quoted.join(", ")))
    }
}
