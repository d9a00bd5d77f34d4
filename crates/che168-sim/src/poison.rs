//! The "poison" fault: a share of listings sent with a value the loader must
//! reject on its own (the rest of their page stays good). Which listings are
//! poisoned, and how, follows from the seed and the listing's id alone, so a
//! listing is poisoned the same way every time it is sent.

use serde_json::{json, Value};

use crate::rng::hash;

const POISON_STREAM: u64 = 41;
/// Stands for `1e400` until the body is serialised (serde_json cannot hold it).
const HUGE_MARK: &str = "__sim_poison_huge_number__";
/// Stands for a lone surrogate escape until the body is serialised.
const SURROGATE_MARK: &str = "__sim_poison_lone_surrogate__";

/// How a poisoned listing is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoisonKind {
    /// A `\u0000` escape in `data.title` (jsonb refuses it).
    NulEscape,
    /// An `inner_id` of 70 characters (longer than the column).
    LongInnerId,
    /// `created_at` in 5000 BC (outside Postgres' range).
    AncientTimestamp,
    /// `data.price` of `1e400` (outside f64's range).
    HugeNumber,
    /// `data.extra_nesting` 200 arrays deep (beyond serde_json's limit).
    DeepNesting,
    /// A lone `\ud800` surrogate escape in `data.title`: well-formed JSON
    /// text to a reader that only checks it, refused by Postgres' jsonb.
    LoneSurrogate,
}

impl PoisonKind {
    pub const ALL: [PoisonKind; 6] = [
        Self::NulEscape,
        Self::LongInnerId,
        Self::AncientTimestamp,
        Self::HugeNumber,
        Self::DeepNesting,
        Self::LoneSurrogate,
    ];
}

/// The listing `inner_id`'s poison under `rate` and `kinds`, if any.
pub fn kind_for(seed: u64, inner_id: &str, rate: f64, kinds: &[PoisonKind]) -> Option<PoisonKind> {
    if rate <= 0.0 || kinds.is_empty() {
        return None;
    }
    let index = inner_id.parse::<u64>().unwrap_or(0);
    let draw = hash(seed, POISON_STREAM, index);
    #[allow(clippy::cast_precision_loss)]
    let unit = (draw >> 11) as f64 / (1u64 << 53) as f64;
    if unit >= rate {
        return None;
    }
    let pick =
        usize::try_from(hash(seed, POISON_STREAM + 1, index) % kinds.len() as u64).unwrap_or(0);
    Some(kinds[pick])
}

/// Poisons the items (`result`) of an `/offers` or `/changes` body and
/// serialises it. Items without a `data` object are left alone.
pub fn poison_body(seed: u64, body: &[u8], rate: f64, kinds: &[PoisonKind]) -> Vec<u8> {
    let Ok(mut page) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    let mut poisoned_any = false;
    if let Some(items) = page.get_mut("result").and_then(Value::as_array_mut) {
        for item in items {
            let Some(id) = item
                .get("inner_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
            else {
                continue;
            };
            if !item.get("data").is_some_and(Value::is_object) {
                continue;
            }
            if let Some(kind) = kind_for(seed, &id, rate, kinds) {
                poison(item, &id, kind);
                poisoned_any = true;
            }
        }
    }
    if !poisoned_any {
        return body.to_vec();
    }
    let text = page.to_string();
    text.replace(&format!("\"{HUGE_MARK}\""), "1e400")
        .replace(SURROGATE_MARK, r"poisoned\ud800title")
        .into_bytes()
}

fn poison(item: &mut Value, inner_id: &str, kind: PoisonKind) {
    match kind {
        PoisonKind::NulEscape => item["data"]["title"] = json!("poisoned\u{0}title"),
        PoisonKind::LongInnerId => item["inner_id"] = json!(format!("{inner_id:0>70}")),
        PoisonKind::AncientTimestamp => item["created_at"] = json!("-5000-01-01T00:00:00"),
        PoisonKind::HugeNumber => item["data"]["price"] = json!(HUGE_MARK),
        PoisonKind::DeepNesting => {
            let mut deep = json!([]);
            for _ in 0..200 {
                deep = json!([deep]);
            }
            item["data"]["extra_nesting"] = deep;
        }
        PoisonKind::LoneSurrogate => item["data"]["title"] = json!(SURROGATE_MARK),
    }
}
