//! The daily-update rules of SPEC 3.2 as pure functions: the `new_` merge of a
//! `changed` payload, what each change does to a stored row, and folding one
//! page of changes (several may name the same `inner_id`) into the final state
//! of each row it touches, so the page is written with one statement.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::listing::{ActiveStatus, ChangeType};

/// One event of `/changes` (or one item of `/offers`).
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// The event id (the change-id number space).
    pub id: i64,
    pub inner_id: String,
    pub change_type: ChangeType,
    pub created_at: Option<DateTime<Utc>>,
    /// The payload: a full record for `added`, the changed fields for
    /// `changed`, usually nothing for `removed`.
    pub data: Option<Map<String, Value>>,
}

/// One `/offers` listing as the initial load stores it: the envelope's
/// fields typed, and `data` exactly as the upstream sent it (JSON text of an
/// object). The initial load never looks inside `data`, so it is neither
/// parsed into a map nor serialised again on the way to Postgres.
#[derive(Debug, Clone)]
pub struct OfferItem {
    pub id: i64,
    pub inner_id: String,
    pub change_type: ChangeType,
    pub created_at: Option<DateTime<Utc>>,
    /// `None` when the item had no `data` object.
    pub data: Option<Box<serde_json::value::RawValue>>,
}

impl OfferItem {
    /// The JSON text to store (`{}` when the item had no data).
    pub fn data_json(&self) -> &str {
        self.data.as_deref().map_or("{}", |raw| raw.get())
    }
}

/// An upstream item the loader could not store: kept in `rejected_items`
/// instead, so one bad listing costs only itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedItem {
    /// The listing's id, when it could be read (control characters escaped,
    /// at most `MAX_REJECTED_ID_CHARS` characters).
    pub inner_id: Option<String>,
    pub reason: String,
    /// The item's JSON text as sent, cut at `MAX_REJECTED_RAW_BYTES`.
    pub raw: String,
}

/// How much of a rejected item's text is kept.
pub const MAX_REJECTED_RAW_BYTES: usize = 64 * 1024;
/// How much of a rejected item's id is kept.
pub const MAX_REJECTED_ID_CHARS: usize = 200;

impl RejectedItem {
    pub fn new(inner_id: Option<&str>, reason: impl Into<String>, raw: &str) -> Self {
        let mut cut = raw.len().min(MAX_REJECTED_RAW_BYTES);
        while !raw.is_char_boundary(cut) {
            cut -= 1;
        }
        Self {
            inner_id: inner_id.map(|id| {
                id.chars()
                    .take(MAX_REJECTED_ID_CHARS)
                    .flat_map(char::escape_debug)
                    .collect()
            }),
            reason: reason.into(),
            raw: raw[..cut].to_owned(),
        }
    }
}

/// What `raw_data` holds for one listing, as far as changes are concerned.
#[derive(Debug, Clone, PartialEq)]
pub struct RowState {
    pub upstream_id: Option<i64>,
    pub change_type: ChangeType,
    pub created_at: Option<DateTime<Utc>>,
    pub data: Map<String, Value>,
    pub active_status: ActiveStatus,
}

impl RowState {
    /// A listing's full record as `/offer` sends it, for a `changed` or
    /// `removed` event about a listing we did not have: the events of the
    /// page then apply on top of it as on a stored row.
    pub fn full_record(data: Map<String, Value>) -> Self {
        Self {
            upstream_id: None,
            change_type: ChangeType::Added,
            created_at: None,
            data,
            active_status: ActiveStatus::Active,
        }
    }
}

/// The `new_` merge: every key of `changes` is stored without its `new_`
/// prefix (`new_price` sets `price`); an unprefixed key sets itself; every
/// other stored key is untouched.
pub fn merge_changed(data: &mut Map<String, Value>, changes: &Map<String, Value>) {
    for (key, value) in changes {
        let name = key
            .strip_prefix("new_")
            .filter(|n| !n.is_empty())
            .unwrap_or(key);
        data.insert(name.to_owned(), value.clone());
    }
}

/// Applies one change to a row (`None`: we do not have the listing, and
/// `/offer` gave no full record either).
///
/// An event whose id is not above the row's `upstream_id` is already
/// reflected in the row (ids are one increasing number space) and changes
/// nothing: re-running a date, or an old date after newer ones, never
/// rewinds a listing and writes no tuples.
///
/// A `changed` event for a listing we do not have gives a row holding only
/// the changed fields: it stays inactive until a full record (`added`)
/// arrives, so a listing with only a price is never served. `created_at`
/// is kept when the event carries none, and `removed` never overwrites it.
pub fn apply(current: Option<RowState>, event: &ChangeEvent) -> RowState {
    let current = match current {
        Some(row) if row.upstream_id.is_some_and(|seen| seen >= event.id) => return row,
        other => other,
    };
    let payload = event.data.clone().unwrap_or_default();
    let stored_created_at = current.as_ref().and_then(|row| row.created_at);
    let created_at = match event.change_type {
        ChangeType::Removed => stored_created_at.or(event.created_at),
        ChangeType::Added | ChangeType::Changed => event.created_at.or(stored_created_at),
    };
    let (data, active_status) = match (event.change_type, current) {
        // A full record: it replaces whatever we had and the listing is on sale.
        (ChangeType::Added, _) => (payload, ActiveStatus::Active),
        (ChangeType::Changed, Some(row)) => {
            let mut data = row.data;
            merge_changed(&mut data, &payload);
            (data, row.active_status)
        }
        (ChangeType::Changed, None) => {
            let mut data = Map::new();
            merge_changed(&mut data, &payload);
            (data, ActiveStatus::Inactive)
        }
        (ChangeType::Removed, Some(row)) => (row.data, ActiveStatus::Inactive),
        (ChangeType::Removed, None) => (Map::new(), ActiveStatus::Inactive),
    };
    RowState {
        upstream_id: Some(event.id),
        change_type: event.change_type,
        created_at,
        data,
        active_status,
    }
}

/// Folds a page of events over the stored rows they name, in event-id order
/// (arrival order among equal ids), and returns the final state of every
/// listing the page touches, in order of first appearance.
pub fn fold_page(
    mut stored: HashMap<String, RowState>,
    events: &[ChangeEvent],
) -> Vec<(String, RowState)> {
    let mut ordered: Vec<&ChangeEvent> = events.iter().collect();
    ordered.sort_by_key(|e| e.id);
    let mut order: Vec<String> = Vec::new();
    let mut state: HashMap<String, RowState> = HashMap::new();
    for event in ordered {
        let current = match state.remove(&event.inner_id) {
            Some(row) => Some(row),
            None => {
                order.push(event.inner_id.clone());
                stored.remove(&event.inner_id)
            }
        };
        state.insert(event.inner_id.clone(), apply(current, event));
    }
    order
        .into_iter()
        .filter_map(|id| state.remove(&id).map(|row| (id, row)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn event(id: i64, inner: &str, kind: ChangeType, data: Option<Value>) -> ChangeEvent {
        ChangeEvent {
            id,
            inner_id: inner.into(),
            change_type: kind,
            created_at: None,
            data: data.map(obj),
        }
    }

    fn stored(data: Value, active: ActiveStatus) -> RowState {
        RowState {
            upstream_id: Some(1),
            change_type: ChangeType::Added,
            created_at: None,
            data: obj(data),
            active_status: active,
        }
    }

    #[test]
    fn new_price_sets_price_and_leaves_every_other_key_untouched() {
        let mut data = obj(json!({"price": 9000, "mark": "BMW", "year": 2019}));
        merge_changed(&mut data, &obj(json!({"new_price": 7500})));
        assert_eq!(
            Value::Object(data),
            json!({"price": 7500, "mark": "BMW", "year": 2019})
        );
    }

    #[test]
    fn several_new_keys_and_unprefixed_keys_are_all_stored_without_the_prefix() {
        let mut data = obj(json!({"price": 1}));
        merge_changed(
            &mut data,
            &obj(json!({"new_price": 2, "new_price_won": 3, "color": "red"})),
        );
        assert_eq!(
            Value::Object(data),
            json!({"price": 2, "price_won": 3, "color": "red"})
        );
    }

    #[test]
    fn changed_keeps_active_status_and_removed_keeps_the_data() {
        let row = stored(json!({"price": 1}), ActiveStatus::Inactive);
        let changed = apply(
            Some(row),
            &event(5, "a", ChangeType::Changed, Some(json!({"new_price": 2}))),
        );
        assert_eq!(changed.active_status, ActiveStatus::Inactive);
        assert_eq!(changed.change_type, ChangeType::Changed);
        assert_eq!(changed.upstream_id, Some(5));
        let row = stored(json!({"price": 1}), ActiveStatus::Active);
        let removed = apply(Some(row), &event(6, "a", ChangeType::Removed, None));
        assert_eq!(removed.active_status, ActiveStatus::Inactive);
        assert_eq!(Value::Object(removed.data), json!({"price": 1}));
    }

    #[test]
    fn changed_or_removed_for_an_unknown_listing_creates_it_inactive() {
        let changed = apply(
            None,
            &event(1, "a", ChangeType::Changed, Some(json!({"new_price": 2}))),
        );
        assert_eq!(changed.active_status, ActiveStatus::Inactive);
        assert_eq!(Value::Object(changed.data.clone()), json!({"price": 2}));
        let again = apply(
            Some(changed),
            &event(3, "a", ChangeType::Changed, Some(json!({"new_price": 4}))),
        );
        assert_eq!(
            again.active_status,
            ActiveStatus::Inactive,
            "still no full record"
        );
        let full = apply(
            Some(again),
            &event(
                5,
                "a",
                ChangeType::Added,
                Some(json!({"price": 4, "mark": "VW"})),
            ),
        );
        assert_eq!(full.active_status, ActiveStatus::Active);
        let removed = apply(None, &event(2, "b", ChangeType::Removed, None));
        assert_eq!(removed.active_status, ActiveStatus::Inactive);
        assert!(removed.data.is_empty());
    }

    #[test]
    fn a_full_record_from_offer_takes_the_events_of_an_unknown_listing() {
        let record = RowState::full_record(obj(json!({"price": 1, "mark": "VW"})));
        let changed = apply(
            Some(record.clone()),
            &event(7, "a", ChangeType::Changed, Some(json!({"new_price": 2}))),
        );
        assert_eq!(changed.active_status, ActiveStatus::Active);
        assert_eq!(
            Value::Object(changed.data),
            json!({"price": 2, "mark": "VW"})
        );
        let removed = apply(Some(record), &event(8, "a", ChangeType::Removed, None));
        assert_eq!(removed.active_status, ActiveStatus::Inactive);
        assert_eq!(
            Value::Object(removed.data),
            json!({"price": 1, "mark": "VW"})
        );
    }

    #[test]
    fn created_at_is_kept_when_an_event_has_none_and_removed_never_overwrites_it() {
        let at = |d: u32| {
            chrono::NaiveDate::from_ymd_opt(2024, 1, d)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
        };
        let mut row = stored(json!({"price": 1}), ActiveStatus::Active);
        row.created_at = Some(at(1));
        let changed = apply(
            Some(row),
            &event(5, "a", ChangeType::Changed, Some(json!({"new_price": 2}))),
        );
        assert_eq!(changed.created_at, Some(at(1)));
        let mut removal = event(6, "a", ChangeType::Removed, None);
        removal.created_at = Some(at(9));
        let removed = apply(Some(changed), &removal);
        assert_eq!(removed.created_at, Some(at(1)));
        let mut readded = event(7, "a", ChangeType::Added, Some(json!({"price": 3})));
        readded.created_at = Some(at(7));
        assert_eq!(apply(Some(removed), &readded).created_at, Some(at(7)));
    }

    #[test]
    fn added_replaces_the_record_and_reactivates_the_listing() {
        let row = stored(json!({"price": 1, "old": true}), ActiveStatus::Inactive);
        let added = apply(
            Some(row),
            &event(3, "a", ChangeType::Added, Some(json!({"price": 5}))),
        );
        assert_eq!(added.active_status, ActiveStatus::Active);
        assert_eq!(Value::Object(added.data), json!({"price": 5}));
    }

    #[test]
    fn an_event_the_row_already_reflects_changes_nothing() {
        let mut row = stored(json!({"price": 3}), ActiveStatus::Active);
        row.upstream_id = Some(50);
        let old = apply(
            Some(row.clone()),
            &event(40, "a", ChangeType::Changed, Some(json!({"new_price": 1}))),
        );
        assert_eq!(old, row);
        let same = apply(
            Some(row.clone()),
            &event(50, "a", ChangeType::Removed, None),
        );
        assert_eq!(same, row);
    }

    #[test]
    fn several_changes_for_one_listing_in_a_page_apply_in_id_order() {
        let events = [
            event(12, "a", ChangeType::Removed, None),
            event(
                10,
                "a",
                ChangeType::Added,
                Some(json!({"price": 1, "mark": "VW"})),
            ),
            event(11, "a", ChangeType::Changed, Some(json!({"new_price": 2}))),
            event(13, "b", ChangeType::Changed, Some(json!({"new_price": 9}))),
        ];
        let rows = fold_page(HashMap::new(), &events);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, "a");
        assert_eq!(
            Value::Object(rows[0].1.data.clone()),
            json!({"price": 2, "mark": "VW"})
        );
        assert_eq!(rows[0].1.active_status, ActiveStatus::Inactive);
        assert_eq!(rows[0].1.change_type, ChangeType::Removed);
        assert_eq!(rows[0].1.upstream_id, Some(12));
        assert_eq!(rows[1].0, "b");
    }

    #[test]
    fn folding_a_page_starts_from_the_stored_row() {
        let mut existing = HashMap::new();
        existing.insert(
            "a".to_owned(),
            stored(json!({"price": 1, "mark": "VW"}), ActiveStatus::Active),
        );
        let rows = fold_page(
            existing,
            &[event(
                2,
                "a",
                ChangeType::Changed,
                Some(json!({"new_price": 3})),
            )],
        );
        assert_eq!(
            Value::Object(rows[0].1.data.clone()),
            json!({"price": 3, "mark": "VW"})
        );
    }

    fn arb_event() -> impl Strategy<Value = ChangeEvent> {
        (0i64..40, 0u8..4, 0u8..3, 0i64..100).prop_map(|(id, who, kind, price)| {
            let kind = [ChangeType::Added, ChangeType::Changed, ChangeType::Removed][kind as usize];
            let data = match kind {
                ChangeType::Added => Some(json!({"price": price, "mark": "VW"})),
                ChangeType::Changed => Some(json!({"new_price": price})),
                ChangeType::Removed => None,
            };
            event(id, &format!("l{who}"), kind, data)
        })
    }

    proptest! {
        #[test]
        fn folding_a_page_equals_applying_its_events_one_by_one(events in proptest::collection::vec(arb_event(), 0..30)) {
            let folded: HashMap<_, _> = fold_page(HashMap::new(), &events).into_iter().collect();
            let mut sorted = events.clone();
            sorted.sort_by_key(|e| e.id);
            let mut one_by_one: HashMap<String, RowState> = HashMap::new();
            for e in &sorted {
                let next = apply(one_by_one.remove(&e.inner_id), e);
                one_by_one.insert(e.inner_id.clone(), next);
            }
            prop_assert_eq!(folded, one_by_one);
        }

        #[test]
        fn reapplying_a_page_to_its_own_result_changes_nothing(events in proptest::collection::vec(arb_event(), 1..30)) {
            let first: HashMap<_, _> = fold_page(HashMap::new(), &events).into_iter().collect();
            let again: HashMap<_, _> = fold_page(first.clone(), &events).into_iter().collect();
            prop_assert_eq!(first, again);
        }

        #[test]
        fn merge_never_keeps_a_new_prefixed_key(keys in proptest::collection::vec("[a-z]{1,6}", 1..6)) {
            let changes: Map<String, Value> = keys.iter().map(|k| (format!("new_{k}"), json!(1))).collect();
            let mut data = Map::new();
            merge_changed(&mut data, &changes);
            for k in &keys {
                prop_assert!(data.contains_key(k));
            }
            prop_assert!(data.keys().all(|k| !k.starts_with("new_") || keys.iter().any(|x| x == k)));
        }
    }
}
