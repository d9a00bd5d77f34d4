//! The specification table (`extra.configuration`): groups of items, each
//! with a stable numeric `id`, a Chinese `name` and a string `value`.
//!
//! Items are found by id first (ids are stable across cars), then by their
//! Chinese name inside the expected group, so a tenant that drops the ids
//! still normalises. Electric cars have no 发动机 group: their engine fields
//! are None, and power falls back to the whole-car figures of 基本参数.

use serde_json::{Map, Value};

use super::fields::{self, describe};
use super::FieldError;

/// One item the normaliser reads: its group, stable id and Chinese name.
#[derive(Debug, Clone, Copy)]
pub struct Item {
    pub group: &'static str,
    pub id: i64,
    pub name: &'static str,
}

const fn item(group: &'static str, id: i64, name: &'static str) -> Item {
    Item { group, id, name }
}

pub const CAR_NAME: Item = item("基本参数", 93, "车型名称");
pub const MANUFACTURER: Item = item("基本参数", 94, "厂商");
pub const CAR_CLASS: Item = item("基本参数", 91, "级别");
pub const FUEL_TYPE: Item = item("基本参数", 90, "能源类型");
pub const EMISSION_STANDARD: Item = item("基本参数", 104, "环保标准");
pub const EMISSION_STANDARD_ENGINE: Item = item("发动机", 25, "环保标准");
pub const CAR_MAX_POWER_KW: Item = item("基本参数", 88, "最大功率(kW)");
pub const MOTOR_PS: Item = item("基本参数", 102, "电动机(Ps)");
pub const ENGINE_MODEL: Item = item("发动机", 58, "发动机型号");
pub const DISPLACEMENT_ML: Item = item("发动机", 3, "排量(mL)");
pub const DISPLACEMENT_L: Item = item("发动机", 4, "排量(L)");
pub const MAX_HORSEPOWER_PS: Item = item("发动机", 14, "最大马力(Ps)");
pub const MAX_POWER_KW: Item = item("发动机", 15, "最大功率(kW)");
pub const TRANSMISSION_TYPE: Item = item("变速箱", 40, "变速箱类型");
pub const TRANSMISSION_SHORT: Item = item("变速箱", 100, "简称");
pub const GEARS: Item = item("变速箱", 41, "挡位个数");

/// The specification table of one listing, or an empty one.
#[derive(Debug, Default)]
pub struct SpecTable<'a> {
    pub specid: Option<&'a Value>,
    groups: Vec<(&'a str, Vec<&'a Map<String, Value>>)>,
}

impl<'a> SpecTable<'a> {
    /// `extra.configuration` when it is an object, else a top-level
    /// `configuration` only when it is an object (one tenant sends a plain
    /// trim string there). A malformed table is an error.
    pub fn of(data: &'a Map<String, Value>) -> Result<Self, FieldError> {
        let from_extra = data
            .get("extra")
            .and_then(Value::as_object)
            .and_then(|extra| extra.get("configuration"))
            .filter(|c| c.is_object());
        let from_top = data.get("configuration").filter(|c| c.is_object());
        match from_extra.or(from_top).and_then(Value::as_object) {
            Some(config) => Self::parse(config),
            None => Ok(Self::default()),
        }
    }

    fn parse(config: &'a Map<String, Value>) -> Result<Self, FieldError> {
        let groups = match config.get("paramtypeitems") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(groups)) => groups
                .iter()
                .map(|group| {
                    let group = group.as_object().ok_or_else(|| {
                        FieldError::new(format!("a group is {}", describe(group)))
                    })?;
                    let name = group.get("name").and_then(Value::as_str).unwrap_or("");
                    let items = match group.get("paramitems") {
                        None | Some(Value::Null) => Vec::new(),
                        Some(Value::Array(items)) => items
                            .iter()
                            .map(|i| {
                                i.as_object().ok_or_else(|| {
                                    FieldError::new(format!("an item of {name} is {}", describe(i)))
                                })
                            })
                            .collect::<Result<_, _>>()?,
                        Some(other) => {
                            return Err(FieldError::new(format!(
                                "paramitems of {name} is {}",
                                describe(other)
                            )))
                        }
                    };
                    Ok((name, items))
                })
                .collect::<Result<_, FieldError>>()?,
            Some(other) => {
                return Err(FieldError::new(format!(
                    "paramtypeitems is {}",
                    describe(other)
                )))
            }
        };
        Ok(Self {
            specid: config.get("specid"),
            groups,
        })
    }

    /// The raw value of `item`: by id anywhere, else by name in its group.
    pub fn value(&self, item: Item) -> Option<&'a Value> {
        let by_id = self
            .groups
            .iter()
            .flat_map(|(_, items)| items.iter())
            .find(|i| i.get("id").and_then(item_id) == Some(item.id));
        let found = by_id.or_else(|| {
            self.groups
                .iter()
                .filter(|(group, _)| *group == item.group)
                .flat_map(|(_, items)| items.iter())
                .find(|i| i.get("name").and_then(Value::as_str) == Some(item.name))
        });
        found.and_then(|i| i.get("value"))
    }

    /// Whether the table has a group of this name (发动机 is missing on EVs).
    pub fn has_group(&self, name: &str) -> bool {
        self.groups.iter().any(|(g, _)| *g == name)
    }

    pub fn text(&self, item: Item) -> Result<Option<String>, FieldError> {
        fields::text(self.value(item)).map_err(|e| e.within(item.name))
    }

    /// A spec number, read as its leading number (`"7挡"` -> 7).
    pub fn number(&self, item: Item) -> Result<Option<f64>, FieldError> {
        fields::leading_number(self.value(item)).map_err(|e| e.within(item.name))
    }
}

/// An item's id, as a JSON number or a numeric string.
fn item_id(id: &Value) -> Option<i64> {
    match id {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
