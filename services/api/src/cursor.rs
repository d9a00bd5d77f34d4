//! The opaque `cursor` of `/offers`: where the previous page ended, bound to
//! the sort it was made for. Base64url of `v1.<sort>.<order>.<value>.<inner_id>`,
//! where value is `n<int>` (price, year, km_age), `t<microseconds>`
//! (listed_at) or `-` (the offers without a value, which come last).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::DateTime;
use db::offers::{Direction, Position, SortKey, SortValue};

pub fn encode(sort: SortKey, direction: Direction, position: &Position) -> String {
    let value = match position.value {
        Some(SortValue::Number(n)) => format!("n{n}"),
        Some(SortValue::Time(t)) => format!("t{}", t.timestamp_micros()),
        None => "-".to_owned(),
    };
    let text = format!(
        "v1.{}.{}.{value}.{}",
        sort.column(),
        direction_name(direction),
        position.inner_id
    );
    URL_SAFE_NO_PAD.encode(text)
}

/// Why a cursor was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("cursor is not valid: pass next_cursor from the previous page unchanged")]
    Malformed,
    #[error("cursor was made for another sort or order: keep sort and order while paging")]
    OtherSort,
}

pub fn decode(text: &str, sort: SortKey, direction: Direction) -> Result<Position, CursorError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| CursorError::Malformed)?;
    let text = String::from_utf8(bytes).map_err(|_| CursorError::Malformed)?;
    let mut parts = text.splitn(5, '.');
    let (Some("v1"), Some(cursor_sort), Some(cursor_dir), Some(value), Some(inner_id)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(CursorError::Malformed);
    };
    if inner_id.is_empty() || inner_id.len() > 64 || inner_id.chars().any(char::is_control) {
        return Err(CursorError::Malformed);
    }
    if cursor_sort != sort.column() || cursor_dir != direction_name(direction) {
        return Err(CursorError::OtherSort);
    }
    let value = match (value.split_at_checked(1), sort) {
        (Some(("-", "")), _) => None,
        (Some(("n", n)), SortKey::Price | SortKey::Year | SortKey::KmAge) => Some(
            SortValue::Number(n.parse().map_err(|_| CursorError::Malformed)?),
        ),
        (Some(("t", t)), SortKey::ListedAt) => {
            let micros: i64 = t.parse().map_err(|_| CursorError::Malformed)?;
            Some(SortValue::Time(
                DateTime::from_timestamp_micros(micros).ok_or(CursorError::Malformed)?,
            ))
        }
        _ => return Err(CursorError::Malformed),
    };
    Ok(Position {
        value,
        inner_id: inner_id.to_owned(),
    })
}

pub const fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Asc => "asc",
        Direction::Desc => "desc",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_decodes_to_the_position_it_was_made_from() {
        let positions = [
            (SortKey::Price, Some(SortValue::Number(139_800))),
            (SortKey::Year, None),
            (
                SortKey::ListedAt,
                Some(SortValue::Time(
                    DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
                )),
            ),
        ];
        for (sort, value) in positions {
            let position = Position {
                value,
                inner_id: "56234871".into(),
            };
            let text = encode(sort, Direction::Desc, &position);
            assert_eq!(decode(&text, sort, Direction::Desc), Ok(position));
        }
    }

    #[test]
    fn a_cursor_of_another_sort_or_a_garbled_one_is_refused() {
        let position = Position {
            value: Some(SortValue::Number(5)),
            inner_id: "1".into(),
        };
        let text = encode(SortKey::Price, Direction::Asc, &position);
        assert_eq!(
            decode(&text, SortKey::Price, Direction::Desc),
            Err(CursorError::OtherSort)
        );
        assert_eq!(
            decode(&text, SortKey::Year, Direction::Asc),
            Err(CursorError::OtherSort)
        );
        for bad in [
            "",
            "!!!",
            "djE",
            &URL_SAFE_NO_PAD.encode("v1.price.asc.nx.1"),
            &URL_SAFE_NO_PAD.encode("v1.price.asc.n1.1\u{0}2"),
        ] {
            assert_eq!(
                decode(bad, SortKey::Price, Direction::Asc),
                Err(CursorError::Malformed),
                "{bad}"
            );
        }
    }
}
