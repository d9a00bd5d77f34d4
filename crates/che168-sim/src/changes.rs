//! The change stream: each simulated day is `changes_per_day` events with
//! contiguous ids, each a pure function of (seed, day, position).
//!
//! Mix per event (per mille): 60 `added` (a new listing, full data); 30
//! follow-ups of an earlier `added` or `changed` in the same 20-event block
//! (so one `/changes` page holds several events for one inner_id); 680
//! `changed` and 90 `removed` of catalogue listings; 40 `changed` of a listing
//! added on an earlier day; 40 `changed` and 25 `removed` of inner_ids nobody
//! ever saw; 35 `changed` with several `new_*` keys.
//!
//! `changed` data is `{"new_price": N}`, sometimes with `new_km_age`,
//! `new_color` and (a quarter of the time) the `inner_id`; `removed` has no
//! `data` key, or `data: null`, or `data: {}`.

use std::collections::HashMap;

use chrono::{Datelike, Duration, NaiveDateTime, NaiveTime};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;

use crate::catalogue::{created_at, Catalogue, PAGE_SIZE};
use crate::listing::{self, Listing};
use crate::rng::{hash, Rng};
use crate::vocab;

const KIND_STREAM: u64 = 20;
const TARGET_STREAM: u64 = 21;
const PAYLOAD_STREAM: u64 = 22;

/// `added` | `changed` | `removed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Changed,
    Removed,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Changed => "changed",
            ChangeKind::Removed => "removed",
        }
    }
}

/// Which listing an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A listing of the base catalogue (`/offers`), by index.
    Catalogue(u64),
    /// A listing added by the change stream, by index.
    Added(u64),
    /// An inner_id neither in the catalogue nor ever added.
    Unknown,
}

/// The `data` of an event, with the feed's three ways of saying "none".
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    Absent,
    Null,
    Empty,
    Listing(Box<Listing>),
    Changes(ChangeFields),
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChangeFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner_id: Option<String>,
    pub new_price: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_km_age: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_color: Option<&'static str>,
}

/// One item of `/changes`.
#[derive(Debug, Clone)]
pub struct ChangeEvent {
    pub id: u64,
    pub inner_id: String,
    pub change_type: ChangeKind,
    pub created_at: String,
    pub origin: Origin,
    pub(crate) payload: Payload,
}

impl ChangeEvent {
    /// The event exactly as `/changes` serves it.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("an event always serialises")
    }

    /// `data`: `None` when the key is absent, else its value (maybe `null`).
    pub fn data(&self) -> Option<Value> {
        match &self.payload {
            Payload::Absent => None,
            Payload::Null => Some(Value::Null),
            Payload::Empty => Some(Value::Object(serde_json::Map::new())),
            Payload::Listing(l) => {
                Some(serde_json::to_value(l).expect("a listing always serialises"))
            }
            Payload::Changes(c) => Some(serde_json::to_value(c).expect("changes always serialise")),
        }
    }
}

impl Serialize for ChangeEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("inner_id", &self.inner_id)?;
        map.serialize_entry("change_type", &self.change_type)?;
        map.serialize_entry("created_at", &self.created_at)?;
        match &self.payload {
            Payload::Absent => {}
            Payload::Null => map.serialize_entry("data", &())?,
            Payload::Empty => map.serialize_entry("data", &serde_json::Map::new())?,
            Payload::Listing(l) => map.serialize_entry("data", l)?,
            Payload::Changes(c) => map.serialize_entry("data", c)?,
        }
        map.end()
    }
}

/// What the whole stream did to one inner_id (for `/offer`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Fate {
    pub removed: bool,
    pub price: Option<u64>,
    pub km_age: Option<u64>,
    pub color: Option<&'static str>,
}

/// The kind of an event and whom it targets, without its payload.
#[derive(Debug, Clone, Copy)]
struct Skeleton {
    kind: ChangeKind,
    origin: Origin,
    inner_id: u64,
    multi_key: bool,
}

fn roll(cat: &Catalogue, day: u32, pos: u64) -> u64 {
    hash(cat.seed, KIND_STREAM, u64::from(day) * cat.per_day + pos) % 1000
}

pub(crate) fn is_added(cat: &Catalogue, day: u32, pos: u64) -> bool {
    roll(cat, day, pos) < 60
}

/// When the event at `pos` of `day` happened: spread over the day, in order.
pub(crate) fn event_time(cat: &Catalogue, day: u32, pos: u64) -> NaiveDateTime {
    let date = cat.first_day + Duration::days(i64::from(day));
    let step = 86_400_000 / cat.per_day.max(1);
    let jitter = hash(
        cat.seed,
        TARGET_STREAM ^ 0xFF,
        u64::from(day) * cat.per_day + pos,
    ) % step.max(1);
    date.and_time(NaiveTime::MIN) + Duration::milliseconds((pos * step + jitter) as i64)
}

fn catalogue_target(cat: &Catalogue, h: u64) -> Origin {
    if cat.listings == 0 {
        Origin::Unknown
    } else {
        Origin::Catalogue(h % cat.listings)
    }
}

fn skeleton(cat: &Catalogue, day: u32, pos: u64) -> Skeleton {
    let global = u64::from(day) * cat.per_day + pos;
    let h = hash(cat.seed, TARGET_STREAM, global);
    let r = roll(cat, day, pos);
    let (kind, origin) = match r {
        0..=59 => (ChangeKind::Added, Origin::Added(cat.listings + global)),
        60..=89 => follow_up(cat, day, pos, h),
        90..=769 | 965..=999 => (ChangeKind::Changed, catalogue_target(cat, h)),
        770..=859 => (ChangeKind::Removed, catalogue_target(cat, h)),
        860..=899 => (
            ChangeKind::Changed,
            earlier_added(cat, day, h).unwrap_or_else(|| catalogue_target(cat, h)),
        ),
        900..=939 => (ChangeKind::Changed, Origin::Unknown),
        _ => (ChangeKind::Removed, Origin::Unknown),
    };
    let inner_id = match origin {
        Origin::Catalogue(i) | Origin::Added(i) => cat.inner_id_number(i),
        Origin::Unknown => 40_000_000 + (h >> 20) % 9_999_999,
    };
    Skeleton {
        kind,
        origin,
        inner_id,
        multi_key: r >= 965,
    }
}

/// A second event for an inner_id already in the same block of 20: the
/// nearest earlier `added` if there is one, else the nearest catalogue
/// `changed` (or a plain change if neither).
fn follow_up(cat: &Catalogue, day: u32, pos: u64, h: u64) -> (ChangeKind, Origin) {
    let kind = if h % 10 < 7 {
        ChangeKind::Changed
    } else {
        ChangeKind::Removed
    };
    let block_start = pos - pos % PAGE_SIZE as u64;
    let global = |p: u64| u64::from(day) * cat.per_day + p;
    if let Some(added) = (block_start..pos).rev().find(|&p| roll(cat, day, p) < 60) {
        return (kind, Origin::Added(cat.listings + global(added)));
    }
    if let Some(changed) = (block_start..pos)
        .rev()
        .find(|&p| (90..770).contains(&roll(cat, day, p)))
    {
        return (
            kind,
            catalogue_target(cat, hash(cat.seed, TARGET_STREAM, global(changed))),
        );
    }
    (ChangeKind::Changed, catalogue_target(cat, h))
}

/// A listing added on a day before `day`, if one is found near a random spot.
fn earlier_added(cat: &Catalogue, day: u32, h: u64) -> Option<Origin> {
    if day == 0 || cat.per_day == 0 {
        return None;
    }
    let d = (h >> 8) % u64::from(day);
    let start = (h >> 24) % cat.per_day;
    (start..(start + 200).min(cat.per_day))
        .find(|&p| is_added(cat, d as u32, p))
        .map(|p| Origin::Added(cat.listings + d * cat.per_day + p))
}

fn change_fields(cat: &Catalogue, sk: &Skeleton, rng: &mut Rng) -> ChangeFields {
    let (price, km) = match sk.origin {
        Origin::Catalogue(i) | Origin::Added(i) => {
            let year = cat.placement(i).created.year();
            let core = listing::core(cat.seed, i, year);
            (core.price, core.km_age)
        }
        Origin::Unknown => (rng.range(300, 4000) * 100, rng.range(1_000, 150_000)),
    };
    let new_price = (price as f64 * (0.88 + 0.14 * rng.unit())) as u64 / 100 * 100;
    let extra_km = sk.multi_key || rng.chance(40);
    ChangeFields {
        inner_id: rng.chance(250).then(|| sk.inner_id.to_string()),
        new_price: new_price.max(5_000),
        new_km_age: extra_km.then(|| km + rng.range(1, 30) * 100),
        new_color: (sk.multi_key && rng.chance(500)).then(|| *rng.pick(vocab::COLORS)),
    }
}

/// The event at position `pos` of day `day`, with its payload.
pub(crate) fn event(cat: &Catalogue, day: u32, pos: u64) -> ChangeEvent {
    let sk = skeleton(cat, day, pos);
    let global = u64::from(day) * cat.per_day + pos;
    let mut rng = Rng::new(cat.seed, PAYLOAD_STREAM, global);
    let payload = match sk.kind {
        ChangeKind::Added => {
            let Origin::Added(index) = sk.origin else {
                unreachable!("added events target added listings")
            };
            Payload::Listing(Box::new(cat.build(index)))
        }
        ChangeKind::Changed => Payload::Changes(change_fields(cat, &sk, &mut rng)),
        ChangeKind::Removed => match rng.below(10) {
            0..=5 => Payload::Absent,
            6..=7 => Payload::Null,
            _ => Payload::Empty,
        },
    };
    ChangeEvent {
        id: cat.first_change_id() + global,
        inner_id: sk.inner_id.to_string(),
        change_type: sk.kind,
        created_at: created_at(event_time(cat, day, pos), !rng.chance(200)),
        origin: sk.origin,
        payload,
    }
}

/// The net effect of every simulated day on each inner_id it touched.
pub(crate) fn fates(cat: &Catalogue) -> HashMap<u64, Fate> {
    let mut fates: HashMap<u64, Fate> = HashMap::new();
    for day in 0..cat.days {
        for pos in 0..cat.per_day {
            let sk = skeleton(cat, day, pos);
            if matches!(sk.origin, Origin::Unknown) || sk.kind == ChangeKind::Added {
                continue;
            }
            let fate = fates.entry(sk.inner_id).or_default();
            match sk.kind {
                ChangeKind::Removed => fate.removed = true,
                ChangeKind::Changed => {
                    let global = u64::from(day) * cat.per_day + pos;
                    let mut rng = Rng::new(cat.seed, PAYLOAD_STREAM, global);
                    let fields = change_fields(cat, &sk, &mut rng);
                    fate.price = Some(fields.new_price);
                    fate.km_age = fields.new_km_age.or(fate.km_age);
                    fate.color = fields.new_color.or(fate.color);
                }
                ChangeKind::Added => {}
            }
        }
    }
    fates
}
