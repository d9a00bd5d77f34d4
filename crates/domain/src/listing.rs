//! The vocabulary of a raw listing row: where it came from, what happened to
//! it upstream, whether it is still on sale.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What the upstream says happened to a listing (`change_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeType {
    Added,
    Changed,
    Removed,
}

impl ChangeType {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Changed => "changed",
            Self::Removed => "removed",
        }
    }
}

impl fmt::Display for ChangeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown change_type {0:?} (expected added, changed or removed)")]
pub struct UnknownChangeType(pub String);

impl FromStr for ChangeType {
    type Err = UnknownChangeType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "added" => Ok(Self::Added),
            "changed" => Ok(Self::Changed),
            "removed" => Ok(Self::Removed),
            other => Err(UnknownChangeType(other.to_owned())),
        }
    }
}

/// Which loader job wrote a raw row (`raw_data.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    InitialLoad,
    DailyUpdate,
}

impl Source {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InitialLoad => "initial_load",
            Self::DailyUpdate => "daily_update",
        }
    }
}

/// `raw_data.active_status`: removed listings are kept but never served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActiveStatus {
    Active = 0,
    Inactive = 1,
}

impl ActiveStatus {
    pub const fn code(self) -> i32 {
        self as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_type_round_trips_through_its_wire_name() {
        for kind in [ChangeType::Added, ChangeType::Changed, ChangeType::Removed] {
            assert_eq!(kind.as_str().parse::<ChangeType>(), Ok(kind));
        }
        assert!("deleted".parse::<ChangeType>().is_err());
    }

    #[test]
    fn removed_listings_are_inactive_with_code_one() {
        assert_eq!(ActiveStatus::Active.code(), 0);
        assert_eq!(ActiveStatus::Inactive.code(), 1);
    }
}
