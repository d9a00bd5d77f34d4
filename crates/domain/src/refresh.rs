//! What a worker's `offer_refresh` (one `/offer?inner_id=` fetch) does to a
//! stored listing, as the daily update would write it: the fetched record
//! replaces the stored data and the listing is active; a 404 marks it
//! inactive (kept, never served). A refresh that finds what is stored
//! returns the row as it was, so the write changes no tuple.

use serde_json::{Map, Value};

use crate::change::RowState;
use crate::listing::{ActiveStatus, ChangeType};

/// The row to write for `inner_id` after a refresh, `None` when there is
/// nothing to write (a listing we never had and the upstream does not have).
/// `fetched` is `None` for a 404.
pub fn refresh(current: Option<RowState>, fetched: Option<Map<String, Value>>) -> Option<RowState> {
    match (current, fetched) {
        (Some(row), Some(data)) => {
            if row.data == data && row.active_status == ActiveStatus::Active {
                return Some(row);
            }
            Some(RowState {
                change_type: ChangeType::Changed,
                data,
                active_status: ActiveStatus::Active,
                ..row
            })
        }
        (None, Some(data)) => Some(RowState {
            upstream_id: None,
            change_type: ChangeType::Added,
            created_at: None,
            data,
            active_status: ActiveStatus::Active,
        }),
        (Some(row), None) if row.active_status == ActiveStatus::Inactive => Some(row),
        (Some(row), None) => Some(RowState {
            change_type: ChangeType::Removed,
            active_status: ActiveStatus::Inactive,
            ..row
        }),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(data: Value, active: ActiveStatus) -> RowState {
        RowState {
            upstream_id: Some(7),
            change_type: ChangeType::Added,
            created_at: None,
            data: data.as_object().cloned().unwrap(),
            active_status: active,
        }
    }

    #[test]
    fn a_fetched_record_replaces_the_data_and_keeps_the_change_fence() {
        let new = json!({"price": 2}).as_object().cloned();
        let out = refresh(Some(row(json!({"price": 1}), ActiveStatus::Inactive)), new).unwrap();
        assert_eq!(out.data, json!({"price": 2}).as_object().cloned().unwrap());
        assert_eq!(out.active_status, ActiveStatus::Active);
        assert_eq!(out.upstream_id, Some(7));
        assert_eq!(out.change_type, ChangeType::Changed);
    }

    #[test]
    fn the_same_record_again_leaves_the_row_as_it_was() {
        let stored = row(json!({"price": 1}), ActiveStatus::Active);
        let out = refresh(Some(stored.clone()), stored.data.clone().into());
        assert_eq!(out, Some(stored));
    }

    #[test]
    fn a_404_marks_a_stored_listing_inactive_and_ignores_an_unknown_one() {
        let out = refresh(Some(row(json!({"a": 1}), ActiveStatus::Active)), None).unwrap();
        assert_eq!(out.active_status, ActiveStatus::Inactive);
        assert_eq!(out.change_type, ChangeType::Removed);
        assert_eq!(out.data, json!({"a": 1}).as_object().cloned().unwrap());
        assert_eq!(refresh(None, None), None);
    }

    #[test]
    fn an_unknown_listing_found_by_a_refresh_is_added() {
        let out = refresh(None, json!({"a": 1}).as_object().cloned()).unwrap();
        assert_eq!(
            (out.change_type, out.active_status),
            (ChangeType::Added, ActiveStatus::Active)
        );
    }
}
