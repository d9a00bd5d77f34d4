//! An oracle for loader tests: what `raw_data` should hold after the initial
//! load and some simulated days, by SPEC 3.1/3.2 as the simulator reads it,
//! written independently of the loader's own code.
//!
//! Choices where the spec is silent (the same as crates/domain's `apply`):
//! a `changed` for an inner_id we do not have creates a row holding just the
//! merged fields; a `removed` one creates a row with `{}`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::{Catalogue, ChangeKind};

/// One `raw_data` row as it should be.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedRow {
    /// The envelope id of the last event applied (the catalogue item id after
    /// the initial load).
    pub upstream_id: u64,
    pub change_type: ChangeKind,
    pub data: Map<String, Value>,
    /// `active_status = 0`.
    pub active: bool,
    /// `"initial_load"` or `"daily_update"`: who created the row.
    pub source: &'static str,
}

impl Catalogue {
    /// Every row after the initial load of the whole catalogue followed by
    /// the first `days` simulated days, keyed by inner_id. Builds every
    /// listing: meant for small catalogues.
    pub fn expected_rows(&self, days: u32) -> BTreeMap<String, ExpectedRow> {
        let mut rows = BTreeMap::new();
        for index in 0..self.listings {
            let Value::Object(data) = self.listing(index) else {
                unreachable!("a listing is an object")
            };
            let row = ExpectedRow {
                upstream_id: self.item_id(index),
                change_type: ChangeKind::Added,
                data,
                active: true,
                source: "initial_load",
            };
            rows.insert(self.inner_id(index), row);
        }
        for day in 0..days.min(self.days) {
            for event in self.changes(day) {
                let payload = match event.data() {
                    Some(Value::Object(map)) => map,
                    _ => Map::new(),
                };
                let row = rows
                    .entry(event.inner_id.clone())
                    .or_insert_with(|| ExpectedRow {
                        upstream_id: event.id,
                        change_type: event.change_type,
                        data: Map::new(),
                        // A `changed` or `removed` for a listing the loader
                        // does not have is kept inactive until a full record
                        // arrives (`/offer` knows only the catalogue's).
                        active: event.change_type == ChangeKind::Added,
                        source: "daily_update",
                    });
                row.upstream_id = event.id;
                row.change_type = event.change_type;
                match event.change_type {
                    ChangeKind::Added => {
                        row.data = payload;
                        row.active = true;
                    }
                    ChangeKind::Changed => {
                        for (key, value) in payload {
                            let name = key
                                .strip_prefix("new_")
                                .filter(|n| !n.is_empty())
                                .unwrap_or(&key);
                            row.data.insert(name.to_owned(), value);
                        }
                    }
                    ChangeKind::Removed => row.active = false,
                }
            }
        }
        rows
    }
}
